"""Lexicons: what clinicians' words mean, and what a model reads for each finding. Data, not code.

Two YAML files make one :class:`Lexicon` (both in ``configs/lexicon/``):

- ``clinical.yaml``, shared by every model: stop words, negation cues, severities, comparators, the
  concept atoms with their abbreviations and synonyms, and the findings built from atoms;
- ``<name>.yaml``, one per vocabulary: the phrases of that vocabulary for each finding, and the stored
  label that measures it. The registry names a model's lexicon (``lexicon:`` in ``models.yaml``).

Both are validated strictly (unknown or missing keys, unknown atoms or findings), with the file
named, so a typo in a lexicon is an error on load and never a query that silently finds nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml

from echosearch.errors import ConfigError, UsageError
from echosearch.paths import configs_dir
from echosearch.reports import SLOT

GRADES = ("normal", "mild", "mild-moderate", "moderate", "moderate-severe", "severe")
#: The grades a query without a severity word asks for ("dilated LV": any abnormal grade).
ABNORMAL_GRADES = ("mild", "moderate", "severe")
#: Which plain grades a combined grade covers (for labels with normal/mild/moderate/severe classes).
GRADE_SPAN = {
    "normal": ("normal",),
    "mild": ("mild",),
    "mild-moderate": ("mild", "moderate"),
    "moderate": ("moderate",),
    "moderate-severe": ("moderate", "severe"),
    "severe": ("severe",),
}
_CLINICAL_KEYS = {
    "version",
    "stopwords",
    "negations",
    "post_negations",
    "separators",
    "severities",
    "comparators",
    "terms",
    "findings",
    "ef_grades",
    "default_organ",
    "organ_findings",
    "subjects",
}
_FINDING_RULE_KEYS = {"when", "graded", "number", "graded_as", "all_normal", "seen_in", "means"}
_MODEL_KEYS = {"version", "vocabulary", "severity_values", "findings", "study_share", "text_grade_weight"}
_REALISATION_KEYS = {"present", "absent", "value", "label", "weight"}
_LABEL_KEYS = {"task", "view", "ef_task"}


def lexicon_dir() -> Path:
    return configs_dir() / "lexicon"


def words_of(text: str) -> list[str]:
    """How queries and lexicon surfaces are split into words: lower case; hyphens between words become
    spaces ("edge-to-edge" = "edge to edge"); ``/`` stays inside a word ("s/p", "mild/moderate")."""
    text = re.sub(r"(?<=[A-Za-z0-9])-(?=[A-Za-z])|(?<=[A-Za-z])-(?=[A-Za-z0-9])", " ", text)
    return re.findall(r"[<>≤≥]=?|[A-Za-z0-9][A-Za-z0-9'/.]*[A-Za-z0-9%]|[A-Za-z0-9%]|[&+]", text)


@dataclass(frozen=True)
class FindingRule:
    """A finding as clinical.yaml defines it: the atom sets that name it."""

    name: str
    when: tuple[frozenset[str], ...]
    graded: bool = False
    number: bool = False
    graded_as: str | None = None
    all_normal: tuple[str, ...] = ()  # findings this one says are all normal or absent ("normal study")
    seen_in: frozenset[str] = frozenset()  # the views that image it (stored view codes); empty: all
    means: tuple[str, ...] = ()  # a group word's findings ("devices"): read as each of them


@dataclass(frozen=True)
class Realisation:
    """A finding as one vocabulary writes it, and the label that measures it."""

    present: dict[str, tuple[str, ...]]  # grade ("any" for an ungraded list with <#>) -> phrases
    slotted: tuple[str, ...]  # present phrases with a <#> severity slot
    absent: tuple[str, ...]
    value: tuple[str, ...]
    task: str | None = None
    ef_task: str | None = None
    views: tuple[str, ...] = ()
    weight: float = 0.3


@dataclass
class Lexicon:
    """Everything query interpretation needs for one vocabulary."""

    name: str
    surfaces: dict[tuple[str, ...], list[tuple[str, str, bool]]]  # words -> [(kind, value, upper only)]
    rules: dict[str, FindingRule]
    ef_grades: dict[str, tuple[float, float]]
    default_organ: str
    organ_findings: dict[str, tuple[str, ...]]
    severity_values: dict[str, tuple[str, ...]]
    findings: dict[str, Realisation]
    known_words: set[str] = field(default_factory=set)
    max_surface: int = 1
    study_share: float = 0.0  # how much a clip's score is its study's mean score (rank.study_pooled)
    text_grade_weight: float = 0.0  # a graded finding the space stores no grade of: see interpret
    subjects: set[str] = field(default_factory=set)  # atoms naming what is measured ("size", "EF")
    source: str = ""

    @cached_property
    def organs(self) -> set[str]:
        return set(self.organ_findings)

    @cached_property
    def correction_targets(self) -> list[str]:
        """The words a typo may be corrected to (see ``parse.MIN_CORRECTED``), listed once."""
        from echosearch.query.parse import MIN_CORRECTED

        return sorted(w for w in self.known_words if len(w) >= MIN_CORRECTED - 1)

    @cached_property
    def attribute_atoms(self) -> set[str]:
        """Atoms that describe a chamber (DILATED, REDUCED, ...): those sharing a rule with an organ."""
        out: set[str] = set()
        for rule in self.rules.values():
            for group in rule.when:
                if group & self.organs:
                    out |= group - self.organs
        return out

    @cached_property
    def _spelled_out(self) -> dict[str, list[str]]:
        """{atom: its surfaces of two or more words}, e.g. LV -> "left ventricle", "left ventricular"."""
        out: dict[str, list[str]] = {}
        for words, marks in self.surfaces.items():
            for kind, value, _upper in marks:
                if kind == "atom" and len(words) > 1:
                    out.setdefault(value, []).append(" ".join(words))
        return out

    def spelled_out(self, word: str) -> list[str]:
        """The multi-word forms of what a word names ("lv" -> "left ventricle", "left ventricular"),
        so that a word can be matched against vocabulary phrases that spell it out (suggestions)."""
        out: list[str] = []
        for kind, value, _upper in self.surfaces.get((word.lower(),), []):
            if kind == "atom":
                out.extend(self._spelled_out.get(value, []))
        return out

    def phrases(self) -> list[str]:
        """Every phrase this lexicon can produce, slots filled with every severity value it uses."""
        out: list[str] = []
        for real in self.findings.values():
            for grade_phrases in real.present.values():
                out.extend(grade_phrases)
            for phrase in real.slotted:
                for values in self.severity_values.values():
                    out.extend(phrase.replace(SLOT, v, 1) for v in values)
            out.extend(real.absent)
            out.extend(p.replace(SLOT, "35") for p in real.value)
        return list(dict.fromkeys(out))


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"lexicon not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"lexicon {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"lexicon {path} must be a mapping")
    return data


def _check_keys(where: str, data: dict, allowed: set[str], required: set[str] = frozenset()) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    missing = set(required) - set(data)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(sorted(missing))}")


def _str_list(where: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of words")
    for v in value:
        if isinstance(v, bool):  # YAML reads a bare no / on / yes as a boolean
            raise ConfigError(f"{where}: {str(v).lower()!r} was read as a boolean; quote the word")
        if not isinstance(v, (str, int, float)):
            raise ConfigError(f"{where}: expected a list of words, got {v!r}")
    return [str(v) for v in value]


def _add_surface(lex: Lexicon, surface: str, kind: str, value: str) -> None:
    words = tuple(words_of(surface))
    if not words:
        return
    upper_only = surface.isupper() and len(surface) > 1  # "AS" is aortic stenosis, "as" is not
    key = tuple(w.lower() for w in words)
    marks = lex.surfaces.setdefault(key, [])
    if (kind, value, upper_only) not in marks:
        marks.append((kind, value, upper_only))
    lex.max_surface = max(lex.max_surface, len(key))
    lex.known_words.update(w for w in key if w.isalpha())


def _read_clinical(path: Path, lex: Lexicon) -> None:
    data = _load_yaml(path)
    _check_keys(str(path), data, _CLINICAL_KEYS, _CLINICAL_KEYS - {"version", "post_negations", "subjects"})
    for word in _str_list(f"{path}: stopwords", data["stopwords"]):
        _add_surface(lex, word, "stop", "")
    for word in _str_list(f"{path}: negations", data["negations"]):
        _add_surface(lex, word, "neg", "")
    for word in _str_list(f"{path}: post_negations", data.get("post_negations", [])):
        _add_surface(lex, word, "postneg", "")
    for word in _str_list(f"{path}: separators", data["separators"]):
        _add_surface(lex, word, "sep", word.lower())
    for grade, words in (data["severities"] or {}).items():
        if grade not in GRADES:
            raise ConfigError(f"{path}: severities: unknown grade {grade!r} (use {', '.join(GRADES)})")
        for word in _str_list(f"{path}: severities.{grade}", words):
            _add_surface(lex, word, "grade", grade)
    for op, words in (data["comparators"] or {}).items():
        if op not in ("<", ">"):
            raise ConfigError(f"{path}: comparators: use '<' and '>' as keys, not {op!r}")
        for word in _str_list(f"{path}: comparators.{op}", words):
            _add_surface(lex, word, "cmp", op)
    atoms = set()
    for atom, words in (data["terms"] or {}).items():
        atoms.add(atom)
        for word in _str_list(f"{path}: terms.{atom}", words):
            _add_surface(lex, word, "atom", atom)
    for name, rule in (data["findings"] or {}).items():
        where = f"{path}: findings.{name}"
        if not isinstance(rule, dict):
            raise ConfigError(f"{where}: expected a mapping")
        _check_keys(where, rule, _FINDING_RULE_KEYS, {"when"})
        sets = []
        for group in rule["when"]:
            unknown = set(_str_list(where, group)) - atoms
            if unknown:
                raise ConfigError(f"{where}: unknown atom(s) {', '.join(sorted(unknown))}")
            sets.append(frozenset(group))
        lex.rules[name] = FindingRule(
            name,
            tuple(sets),
            bool(rule.get("graded")),
            bool(rule.get("number")),
            rule.get("graded_as"),
            tuple(_str_list(f"{where}.all_normal", rule.get("all_normal", []))),
            frozenset(_str_list(f"{where}.seen_in", rule.get("seen_in", []))),
            tuple(_str_list(f"{where}.means", rule.get("means", []))),
        )
    for rule in lex.rules.values():
        if rule.graded_as is not None and rule.graded_as not in lex.rules:
            raise ConfigError(f"{path}: findings.{rule.name}: graded_as names no finding")
        for key in ("all_normal", "means"):
            unknown = set(getattr(rule, key)) - set(lex.rules)
            if unknown:
                raise ConfigError(
                    f"{path}: findings.{rule.name}.{key}: not findings: {', '.join(sorted(unknown))}"
                )
    for grade, bounds in (data["ef_grades"] or {}).items():
        if grade not in GRADES or not isinstance(bounds, list) or len(bounds) != 2:
            raise ConfigError(f"{path}: ef_grades.{grade}: expected a known grade and [low, high]")
        lex.ef_grades[grade] = (float(bounds[0]), float(bounds[1]))
    lex.subjects = set(_str_list(f"{path}: subjects", data.get("subjects", [])))
    if lex.subjects - atoms:
        raise ConfigError(f"{path}: subjects: unknown atom(s) {', '.join(sorted(lex.subjects - atoms))}")
    lex.default_organ = str(data["default_organ"])
    for organ, findings in (data["organ_findings"] or {}).items():
        if organ not in atoms:
            raise ConfigError(f"{path}: organ_findings: unknown atom {organ!r}")
        unknown = set(_str_list(path, findings)) - set(lex.rules)
        if unknown:
            raise ConfigError(f"{path}: organ_findings.{organ}: unknown finding(s) {', '.join(unknown)}")
        lex.organ_findings[organ] = tuple(findings)
    if lex.default_organ not in lex.organ_findings:
        raise ConfigError(f"{path}: default_organ {lex.default_organ!r} is not in organ_findings")


def _phrase_list(where: str, value: Any) -> tuple[str, ...]:
    phrases = _str_list(where, value)
    for p in phrases:
        if not p.strip():
            raise ConfigError(f"{where}: empty phrase")
    return tuple(p.strip() for p in phrases)


def _read_realisation(where: str, raw: Any, lex: Lexicon) -> Realisation:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    _check_keys(where, raw, _REALISATION_KEYS)
    present: dict[str, tuple[str, ...]] = {}
    slotted: tuple[str, ...] = ()
    if isinstance(raw.get("present"), dict):
        for grade, phrases in raw["present"].items():
            if grade not in GRADES:
                raise ConfigError(f"{where}: present: unknown grade {grade!r}")
            present[grade] = _phrase_list(f"{where}.present.{grade}", phrases)
    elif raw.get("present") is not None:
        phrases = _phrase_list(f"{where}.present", raw["present"])
        slotted = tuple(p for p in phrases if SLOT in p)
        if any(p.count(SLOT) > 1 for p in slotted):
            raise ConfigError(f"{where}: a present phrase may have one <#> (the severity)")
        plain = tuple(p for p in phrases if SLOT not in p)
        if plain:
            present["any"] = plain
    value = _phrase_list(f"{where}.value", raw.get("value", []))
    if any(p.count(SLOT) != 1 for p in value):
        raise ConfigError(f"{where}: every value phrase needs exactly one <#> (the number)")
    label = raw.get("label") or {}
    if not isinstance(label, dict):
        raise ConfigError(f"{where}.label: expected a mapping")
    _check_keys(f"{where}.label", label, _LABEL_KEYS)
    views = label.get("view", [])
    views = tuple(views if isinstance(views, list) else [views])
    weight = raw.get("weight", 0.3)
    if not isinstance(weight, (int, float)) or weight < 0:
        raise ConfigError(f"{where}.weight: expected a number >= 0")
    return Realisation(
        present=present,
        slotted=slotted,
        absent=_phrase_list(f"{where}.absent", raw.get("absent", [])),
        value=value,
        task=label.get("task"),
        ef_task=label.get("ef_task"),
        views=tuple(str(v) for v in views),
        weight=float(weight),
    )


def _read_model(path: Path, lex: Lexicon) -> None:
    data = _load_yaml(path)
    _check_keys(str(path), data, _MODEL_KEYS, {"findings", "severity_values"})
    for grade, values in (data["severity_values"] or {}).items():
        if grade not in GRADES:
            raise ConfigError(f"{path}: severity_values: unknown grade {grade!r}")
        lex.severity_values[grade] = tuple(_str_list(f"{path}: severity_values.{grade}", values))
    lex.study_share = _number(path, data, "study_share", high=1.0)
    lex.text_grade_weight = _number(path, data, "text_grade_weight")
    for name, raw in (data["findings"] or {}).items():
        if name not in lex.rules:
            raise ConfigError(f"{path}: findings.{name}: not a finding of clinical.yaml")
        lex.findings[name] = _read_realisation(f"{path}: findings.{name}", raw, lex)
    for phrase in lex.phrases():
        lex.known_words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", phrase))


@lru_cache(maxsize=16)
def _load(model_path: Path, clinical_path: Path) -> Lexicon:
    lex = Lexicon(
        name=model_path.stem,
        surfaces={},
        rules={},
        ef_grades={},
        default_organ="",
        organ_findings={},
        severity_values={},
        findings={},
        source=str(model_path),
    )
    _read_clinical(clinical_path, lex)
    _read_model(model_path, lex)
    return lex


def load_lexicon(name_or_path: str | Path) -> Lexicon:
    """A lexicon by name (``demo``, ``echoclip-r``: files in ``configs/lexicon/``) or by YAML path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        path = candidate
        if not path.is_file():
            raise UsageError(f"lexicon file not found: {path}")
    else:
        path = lexicon_dir() / f"{name_or_path}.yaml"
        if not path.is_file() or path.stem == "clinical":
            names = ", ".join(available_lexicons())
            raise UsageError(f"unknown lexicon {str(name_or_path)!r} (have: {names})")
    clinical = path.parent / "clinical.yaml"
    if not clinical.is_file():
        clinical = lexicon_dir() / "clinical.yaml"
    return _load(path.resolve(), clinical.resolve())


def available_lexicons() -> list[str]:
    return sorted(p.stem for p in lexicon_dir().glob("*.yaml") if p.stem != "clinical")


def lexicon_for(model_name: str, tokenizer: Any = None) -> Lexicon:
    """The lexicon of a model: its registry entry's ``lexicon``; else, for a template model, the
    lexicon whose phrases its vocabulary holds best; else EchoCLIP's (BPE models read report text)."""
    from echosearch.models.registry import load_registry

    try:
        entry = load_registry().get(model_name)
    except ConfigError:
        entry = None
    if entry is not None and entry.lexicon:
        return load_lexicon(entry.lexicon)
    vocabulary = {p.strip() for p in getattr(tokenizer, "phrases", None) or []}
    if vocabulary:
        best, best_share = None, 0.0
        for name in available_lexicons():
            lex = load_lexicon(name)
            templates = [p for r in lex.findings.values() for p in (*r.slotted, *r.absent, *r.value)]
            share = sum(p in vocabulary for p in templates) / max(len(templates), 1)
            if share > best_share:
                best, best_share = lex, share
        if best is not None and best_share >= 0.5:
            return best
    return load_lexicon("echoclip-r")


def _number(path: Path, data: dict, key: str, high: float | None = None) -> float:
    """A number >= 0 (and <= ``high``) at the top of a lexicon file; 0 when not given."""
    value = data.get(key, 0.0)
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or value < 0
        or (high is not None and value > high)
    ):
        raise ConfigError(f"{path}: {key}: expected a number from 0{'' if high is None else f' to {high:g}'}")
    return float(value)
