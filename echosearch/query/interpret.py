"""From the findings of a query to what the model reads and how results are ranked.

An :class:`Interpretation` is a ranking plan, not only a text:

- ``phrases``: what the text tower reads, each with a weight (template models: filled phrases of
  their vocabulary, never a raw ``<#>``; BPE models: the same clinical sentences);
- ``negatives``: phrases subtracted from the query vector ("not pacer");
- ``filters``: hard conditions the user stated (a number, "no pacemaker" where the space has a yes/no
  decision, a view where the space stores views);
- ``preferences``: stored labels that measure a finding better than text similarity ranks it
  (measured per model: ``weight`` in the model's lexicon), added to the similarity of each candidate;
- ``unmatched``: words that were not understood, so that an empty result can say why.

Which filters and preferences apply is decided against what the space stores when the Engine runs
the plan; ``interpret`` itself needs no index.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from echosearch.query.lexicon import ABNORMAL_GRADES, GRADE_SPAN, Lexicon, Realisation
from echosearch.query.parse import Mention, Number, parse_query
from echosearch.reports import SLOT

#: How much a negated finding's phrases are subtracted, relative to a positive one.
NEGATIVE_WEIGHT = 0.5
#: How many EF points around a stated value ("EF 25%") a filter on the EF estimate lets through.
EF_TOLERANCE = 10.0


@dataclass
class Phrase:
    text: str
    weight: float
    finding: str | None = None


@dataclass
class Condition:
    """A filter or a preference on one stored label or on the view.

    ``kind``: ``label`` (the finding's grades: ``["normal"]`` means absent, the abnormal grades mean
    present; the Engine matches them to the task's kind: a yes/no decision, class names, or nothing),
    ``range`` (``low``..``high`` of a numeric label such as the EF estimate, either may be None),
    ``view`` (``views``; ``exclude`` for "not A4C") or ``text_grade`` (the wanted ``grades`` of a
    graded finding, read off each candidate clip at query time from its likeness to the vocabulary's
    phrase for every grade, ``grade_phrases``: for a space that stores no grade of the finding).
    """

    kind: str
    task: str | None
    finding: str
    weight: float = 0.0
    grades: list[str] = field(default_factory=list)
    low: float | None = None
    high: float | None = None
    views: list[str] = field(default_factory=list)
    exclude: bool = False
    display: str | None = None  # the task's display name, where the space's task file gives one
    grade_phrases: dict[str, list[str]] = field(default_factory=dict)  # grade -> phrases, in order

    @property
    def present(self) -> bool:
        return any(g != "normal" for g in self.grades)

    def describe(self) -> str:
        name = self.display or (self.task or self.finding).replace("_", " ")
        if self.kind == "view":
            return ("view not " if self.exclude else "view ") + "/".join(self.views)
        if self.kind == "text_grade":
            return f"{name} {'/'.join(self.grades)} (graded by sentence likeness)"
        if self.kind == "label":
            if self.grades == ["normal"]:
                return f"{name}: no"
            if set(self.grades) == set(ABNORMAL_GRADES):
                return f"{name}: yes"
            return f"{name} {'/'.join(self.grades)}"
        if self.low is not None and self.high is not None:
            return f"{name} {self.low:g}-{self.high:g}"
        return f"{name} < {self.high:g}" if self.high is not None else f"{name} > {self.low:g}"


@dataclass
class Interpretation:
    query: str
    lexicon: str
    phrases: list[Phrase] = field(default_factory=list)
    negatives: list[Phrase] = field(default_factory=list)
    filters: list[Condition] = field(default_factory=list)
    preferences: list[Condition] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)
    mentions: list[Mention] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exact: bool = False

    @property
    def understood(self) -> bool:
        return bool(self.phrases or self.filters or self.preferences)

    def summary(self) -> str:
        """One line a user can read: ``searched as: A. · B. · filter EF < 40 · prefer pacemaker: yes``."""
        parts = [p.text for p in self.phrases]
        parts += [f"not {p.text}" for p in self.negatives]
        parts += [f"filter {c.describe()}" for c in self.filters]
        parts += [f"prefer {c.describe()}" for c in self.preferences]
        return "searched as: " + " · ".join(parts) if parts else "nothing understood"

    def edited(
        self, phrases: list[str], keep_filters: list[bool], keep_preferences: list[bool]
    ) -> Interpretation:
        """This reading as a user changed it: their phrases (equal weights, blank lines dropped) and
        only the filters and preferences they kept (flags in order; a missing flag keeps nothing)."""
        lines = [line.strip() for line in phrases if line.strip()]
        return replace(
            self,
            phrases=[Phrase(line, 1.0 / len(lines)) for line in lines],
            filters=[c for c, keep in zip(self.filters, keep_filters, strict=False) if keep],
            preferences=[c for c, keep in zip(self.preferences, keep_preferences, strict=False) if keep],
            exact=False,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "lexicon": self.lexicon,
            "phrases": [{"text": p.text, "weight": round(p.weight, 4)} for p in self.phrases],
            "negatives": [{"text": p.text, "weight": round(p.weight, 4)} for p in self.negatives],
            "filters": [_condition_dict(c) for c in self.filters],
            "preferences": [_condition_dict(c) for c in self.preferences],
            "unmatched": self.unmatched,
            "corrections": self.corrections,
            "findings": [m.to_dict() for m in self.mentions],
            "notes": self.notes,
            "exact": self.exact,
            "summary": self.summary(),
        }


def _condition_dict(c: Condition) -> dict[str, Any]:
    out = {k: v for k, v in asdict(c).items() if v not in (None, [], False, {})}
    out["text"] = c.describe()
    return out


def _grades_of(mention: Mention) -> tuple[str, ...]:
    if mention.negated:
        return ("normal",)
    if mention.grade is None:
        return ABNORMAL_GRADES
    return (mention.grade,)


def _filled(real: Realisation, grade: str, lex: Lexicon) -> list[str]:
    """The vocabulary's phrases for one grade of a finding ("normal" gives the absent phrases)."""
    if grade == "normal":
        return list(real.absent)
    if grade in real.present:
        return list(real.present[grade])
    out = list(real.present.get("any", ()))
    for phrase in real.slotted:
        out += [phrase.replace(SLOT, v, 1) for v in lex.severity_values.get(grade, ())]
    return out


def _present_phrases(mention: Mention, real: Realisation, lex: Lexicon) -> list[str]:
    """The phrases saying the finding is there, at the grade asked for (every abnormal grade if none)."""
    grades = (mention.grade,) if mention.grade not in (None, "normal") else ABNORMAL_GRADES
    out: list[str] = []
    for grade in grades:
        out += _filled(real, grade, lex)
    return list(dict.fromkeys(out))


def _value_phrases(number: Number, real: Realisation, lex: Lexicon) -> list[str]:
    """Phrases for a number: the value itself, or representative values inside a bound or range."""
    if not real.value:
        return []
    if number.op == "=":
        values = [number.value]
    elif number.op == "between":
        values = [(number.value + number.high) / 2]
    elif number.op == "<":
        values = [max(number.value - 10, 5.0)]
    else:
        values = [min(number.value + 10, 95.0)]
    return [p.replace(SLOT, f"{round(v):d}", 1) for v in values for p in real.value]


def _number_condition(mention: Mention, real: Realisation) -> Condition | None:
    if real.task is None or mention.number is None:
        return None
    n = mention.number
    if n.op == "=":
        low, high = n.value - EF_TOLERANCE, n.value + EF_TOLERANCE
    elif n.op == "between":
        low, high = n.value, n.high
    elif n.op == "<":
        low, high = None, n.value
    else:
        low, high = n.value, None
    if mention.negated:  # "EF not below 40": flip a one-sided bound; a negated value is left as text
        if n.op in ("<", ">"):
            low, high = high, low
        else:
            return None
    return Condition("range", real.task, mention.finding, low=low, high=high)


def _graded_by_value(mention: Mention, bound: Condition, lex: Lexicon) -> list[Condition]:
    """A stated EF also asks for the LV function grades it spans ("EF < 30%" is severely reduced):
    the grades of ``ef_grades`` that the range covers at least half of, through the graded finding."""
    rule = lex.rules[mention.finding]
    real = lex.findings.get(rule.graded_as or "")
    if real is None or real.task is None:
        return []
    low = bound.low if bound.low is not None else -1e9
    high = bound.high if bound.high is not None else 1e9
    grades = [
        g
        for g, (g_low, g_high) in lex.ef_grades.items()
        if (min(high, g_high) - max(low, g_low)) >= 0.5 * (g_high - g_low)
    ]
    if mention.number is not None and mention.number.op == "=":  # "EF 60": the grade 60 is in, not its +-10
        value = mention.number.value
        grades = [g for g, (g_low, g_high) in lex.ef_grades.items() if g_low <= value < g_high] or grades
    if not grades:
        return []
    return [Condition("label", real.task, rule.graded_as, real.weight, grades=grades)]


def _label_conditions(mention: Mention, real: Realisation, lex: Lexicon) -> list[Condition]:
    """The stored labels that measure a finding: its own task, the EF estimate, or the view."""
    if real.views:
        return [Condition("view", None, mention.finding, views=list(real.views), exclude=mention.negated)]
    grades = _grades_of(mention) if lex.rules[mention.finding].graded or mention.negated else ABNORMAL_GRADES
    plain = sorted({g for grade in grades for g in GRADE_SPAN[grade]}, key=list(GRADE_SPAN).index)
    out = []
    if real.task is not None:
        out.append(Condition("label", real.task, mention.finding, real.weight, grades=plain))
    spans = [lex.ef_grades[g] for g in plain if g in lex.ef_grades] if real.ef_task else []
    if spans:
        low, high = min(s[0] for s in spans), max(s[1] for s in spans)
        out.append(Condition("range", real.ef_task, mention.finding, real.weight, low=low, high=high))
    if not mention.negated:
        out += _text_grade_condition(mention.finding, plain, real, lex)
    return out


def _text_grade_condition(
    finding: str, grades: list[str], real: Realisation, lex: Lexicon
) -> list[Condition]:
    """A graded finding ("severely dilated RV", "large effusion") ranked by degree even where the
    space stores no grade of it: the vocabulary's phrases for each grade, normal to severe, let the
    Engine grade every candidate clip the way a zero-shot categorical task would.

    Why: the text similarity to "SEVERE DILATED RIGHT VENTRICLE." also rewards a mildly dilated RV
    (the sentences differ in one word); compared with its likeness to the other grades' phrases, a
    clip's degree stands out. Only for findings the lexicon grades and writes at every grade, and not
    for a negated one (a "no" is the stored label's or the absent phrase's job).
    """
    if lex.text_grade_weight <= 0 or not lex.rules[finding].graded or not real.absent:
        return []
    phrases = {grade: _filled(real, grade, lex) for grade in ("normal", *ABNORMAL_GRADES)}
    if not all(phrases.values()):
        return []
    weight = lex.text_grade_weight
    return [Condition("text_grade", None, finding, weight, grades=grades, grade_phrases=phrases)]


def _add_mention(interp: Interpretation, mention: Mention, lex: Lexicon) -> None:
    real = lex.findings.get(mention.finding)
    if real is None:
        interp.notes.append(f"the model's vocabulary has nothing for '{mention.words}'")
        return
    if mention.number is not None:
        texts = _value_phrases(mention.number, real, lex)
        interp.phrases += [Phrase(t, 1.0 / len(texts), mention.finding) for t in texts]
        condition = _number_condition(mention, real)
        if condition is not None:
            interp.filters.append(condition)
            interp.preferences += _graded_by_value(mention, condition, lex)
        return
    rule = lex.rules[mention.finding]
    if mention.negated and not rule.graded and not real.absent:
        positives: list[str] = []
    elif mention.negated or mention.grade == "normal":
        positives = list(real.absent)
    else:
        positives = _present_phrases(mention, real, lex)
    interp.phrases += [Phrase(t, 1.0 / len(positives), mention.finding) for t in positives]
    if mention.negated:
        negatives = _present_phrases(Mention(mention.finding), real, lex)
        interp.negatives += [Phrase(t, NEGATIVE_WEIGHT / len(negatives), mention.finding) for t in negatives]
    for condition in _label_conditions(mention, real, lex):
        # What the user excluded or named as a view is a filter; the rest is a preference.
        if condition.kind == "view" or (mention.negated and not rule.graded):
            interp.filters.append(condition)
        else:
            interp.preferences.append(condition)


def _all_normal_conditions(findings: list[str], lex: Lexicon) -> list[Condition]:
    """What "a structurally normal heart" says of each finding it covers: the finding normal or
    absent, as preferences (the stored labels rank clips normal on all of them first; a label's
    error never hides a clip). Why: the vocabulary's "normal study" sentence alone ranks by how a
    clip looks like that one sentence, while every label of the space knows its own finding better."""
    out: list[Condition] = []
    for finding in findings:
        real = lex.findings.get(finding)
        if real is not None and not real.views:
            graded = lex.rules[finding].graded
            normal = Mention(finding, grade="normal") if graded else Mention(finding, negated=True)
            out += _label_conditions(normal, real, lex)
    return out


def interpret(text: str, lex: Lexicon, tokenizer: Any = None) -> Interpretation:
    """Interpret free clinical text for a model whose vocabulary ``lex`` describes.

    ``tokenizer`` (the model's) lets a template model read exactly what the user typed when it is a
    run of whole vocabulary phrases: such text is searched as it is, the layer only adds the labels.
    """
    parsed = parse_query(text, lex)
    interp = Interpretation(
        query=text,
        lexicon=lex.name,
        unmatched=parsed.unmatched,
        corrections=parsed.corrections,
        mentions=parsed.mentions,
        notes=parsed.notes,
    )
    for mention in parsed.mentions:
        _add_mention(interp, mention, lex)
    named = {m.finding for m in parsed.mentions}
    for mention in parsed.mentions:  # "normal study": every other finding it covers normal
        if not mention.negated and mention.number is None:
            covered = [f for f in lex.rules[mention.finding].all_normal if f not in named]
            interp.preferences += _all_normal_conditions(covered, lex)
    explanation = tokenizer.explain(text) if tokenizer is not None and text.strip() else None
    if explanation is not None and explanation.phrases and not explanation.unmatched:
        # Every word of the query is a phrase of the vocabulary: read it as typed.
        interp.phrases = [Phrase(" ".join(explanation.phrases), 1.0)]
        interp.unmatched, interp.corrections, interp.exact = [], {}, True
        # A value inside a report sentence ranks; it filters only when the user states it as a bound.
        for cond in [c for c in interp.filters if c.kind == "range"]:
            cond.weight = lex.findings[cond.finding].weight
            interp.filters.remove(cond)
            interp.preferences.append(cond)
    if explanation is not None and explanation.phrases is not None and not interp.exact:
        _keep_readable(interp, tokenizer)
    _merge_duplicates(interp)
    return interp


def _keep_readable(interp: Interpretation, tokenizer: Any) -> None:
    """Drop phrases a template model's own vocabulary cannot read (a lexicon may know wordings an older
    model was not trained with); a finding keeps its weight through the phrases that remain."""

    def readable(text: str) -> bool:
        ex = tokenizer.explain(text)
        return bool(ex.phrases) and not ex.unmatched

    for name in ("phrases", "negatives"):
        kept: list[Phrase] = []
        for finding in dict.fromkeys(p.finding for p in getattr(interp, name)):
            group = [p for p in getattr(interp, name) if p.finding == finding]
            ok = [p for p in group if readable(p.text)]
            total, share = sum(p.weight for p in group), sum(p.weight for p in ok)
            kept += [Phrase(p.text, p.weight * total / share, p.finding) for p in ok] if ok else []
            if not ok and name == "phrases":
                interp.notes.append(f"the model's vocabulary has no phrase for {finding.replace('_', ' ')}")
        setattr(interp, name, kept)


def _merge_duplicates(interp: Interpretation) -> None:
    for name in ("phrases", "negatives"):
        merged: dict[str, Phrase] = {}
        for p in getattr(interp, name):
            if p.text in merged:
                merged[p.text].weight += p.weight
            else:
                merged[p.text] = Phrase(p.text, p.weight, p.finding)
        setattr(interp, name, list(merged.values()))
    positive = {p.text for p in interp.phrases}
    interp.negatives = [p for p in interp.negatives if p.text not in positive]
