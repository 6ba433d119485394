"""Reading a clinician's query into findings: clauses, atoms, severities, numbers, negation, typos.

The query is split into clauses (at , ; . and at words such as "and", "with"); each clause is read
as a bag of marks found by longest match against the lexicon's surfaces (so "heart failure with
reduced ejection fraction" stays one term although it contains "with"). A finding fires in a clause
when all atoms of one of its sets are there; when one finding's atoms are a strict subset of
another's, the more specific one wins ("PSAX papillary" is the papillary view, not any PSAX).

Clauses lean on their neighbours the way clinicians write: "dilated LV and RV" (the RV clause borrows
"dilated"), "dilated RV with reduced function" (the function clause borrows the RV), "no pacer or
ICD" (the ICD clause borrows the negation), "severely dilated LV and RV" and "nl LA and RA size" (a
grade said once for chambers joined by "and" grades each), "LV size is not enlarged" (a negation
after what is measured negates the clause, not a new one). A group word ("no devices") is read as
each finding it stands for. Words that are not in the lexicon are corrected to the
nearest lexicon word within a small edit distance ("pacmaker" -> "pacemaker").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from echosearch.query.lexicon import Lexicon, words_of

_CLAUSE_BREAK = re.compile(r"[,;!?\n]|\.(?!\d)")
_RANGE = re.compile(
    r"\bbetween\s+(\d+(?:\.\d+)?)\s*%?\s*and\s+(\d+(?:\.\d+)?)(\s*%)?"  # "between 40 and 50"
    r"|(?:\bfrom\s+)?(\d+(?:\.\d+)?)\s*%?\s*(?:-|–|to|/)\s*(\d+(?:\.\d+)?)(\s*%)?",  # "30-40%", "from 30 to 40", "35/40"
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)(%?)$")
_SPACED_PERCENT = re.compile(r"(\d)\s+%")  # "45 %"
_DECADE = re.compile(r"\b(?:in\s+the\s+)?(\d)0'?s\b", re.IGNORECASE)  # "EF in the 30s": 30 to 39
_PERCENT_WORD = r"(?:\s*(?:%|percent\b|pct\b))?"  # "35 percent or less"
_OR_LESS = re.compile(
    r"(\d+(?:\.\d+)?)" + _PERCENT_WORD + r"\s+(?:or|and)\s+(?:less|lower|below|under)\b", re.I
)
_OR_MORE = re.compile(
    r"(\d+(?:\.\d+)?)"
    + _PERCENT_WORD
    + r"(?:\s+(?:or|and)\s+(?:more|greater|higher|above|over)\b|\+(?=\s|$))",
    re.I,
)
_PLUS_MINUS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:±|\+/-|\+-)\s*(\d+(?:\.\d+)?)")  # "EF 55±5%": 50-60
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
}
_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_SPELLED = re.compile(
    rf"\b({'|'.join(_TENS)})(?:[\s-]({'|'.join(_UNITS)}))?\b", re.IGNORECASE
)  # "thirty five"
#: A regurgitation graded as clinicians write it: "MR 3+", "TR 2/4", "grade II" (1 mild ... 4 severe).
_GRADE_WORDS = {"1": "mild", "2": "moderate", "3": "moderate-to-severe", "4": "severe"}
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4"}
_PLUS_GRADE = re.compile(
    r"(?<![\d.])([1-4])\s*\+(?![\d+])|(?<![\d.])([1-4])\s*/\s*4\b|\bgrade\s+(iv|iii|ii|i|[1-4])\b", re.I
)
#: Words after which a chamber says where something is ("a lead in the RA"), not a finding of its own.
PLACE_WORDS = frozenset({"in", "into", "at", "within", "through", "across", "inside", "from"})
_GLUED_NUMBER = re.compile(r"^([a-z]+)(\d+(?:\.\d+)?%?)$", re.IGNORECASE)  # "ef45", "lvef35%"
_RANGE_TOKEN = re.compile(r"^range(\d+(?:\.\d+)?)to(\d+(?:\.\d+)?)$")
_MEASURE = re.compile(r"\b\d+(?:\.\d+)?\s*(?:mm|cm|ml|mmhg)\b", re.IGNORECASE)  # "26 mm Sapien": not a value


@dataclass(frozen=True)
class Number:
    """A number a query gives for a finding: ``=`` a value, ``<``/``>`` a bound, or a ``between`` range."""

    op: str
    value: float
    high: float | None = None

    def describe(self) -> str:
        if self.op == "between":
            return f"{self.value:g}-{self.high:g}"
        return f"{self.op} {self.value:g}" if self.op != "=" else f"{self.value:g}"


@dataclass
class Mention:
    """One finding the query names, as the clinician said it."""

    finding: str
    grade: str | None = None
    negated: bool = False
    number: Number | None = None
    words: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Parsed:
    mentions: list[Mention] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Clause:
    atoms: list[str] = field(default_factory=list)
    grades: list[str] = field(default_factory=list)
    negated: bool = False
    numbers: list[Number] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    joined_by_or: bool = False
    joined_by: str | None = None  # the separator word before the clause ("and", "or", ...); None: , ;
    after_subject: bool = False  # opened by a negation that followed what is measured ("LV size is not")
    # the grades and atoms added since the clause's findings last changed ("severe LV" in "no pacer severe LV ...")
    tail: list[tuple[str, str, str]] = field(default_factory=list)
    size_words: list[str] = field(default_factory=list)  # atoms of a word that is also a grade ("large")
    pending_op: str | None = None


#: Shortest word corrected, and shortest lexicon word a typo is corrected to. Why: a four-letter
#: English word is one edit from too many short lexicon words ("rate" -> RAE, "flow" -> "low",
#: "load" -> LVAD, "nine" -> "none"), while the typos clinicians make are in the long words.
MIN_CORRECTED = 5


def _max_typo_distance(word: str) -> int:
    return 0 if len(word) < MIN_CORRECTED else 1 if len(word) < 7 else 2


def _correct(word: str, lex: Lexicon, corrections: dict[str, str]) -> str:
    """The lexicon word nearest an unknown word, within an edit distance that grows with its length."""
    low = word.lower()
    if not low.isalpha() or low in lex.known_words or (low,) in lex.surfaces:
        return word
    limit = _max_typo_distance(low)
    if limit == 0:
        return word
    best = process.extractOne(low, lex.correction_targets, scorer=Levenshtein.distance, score_cutoff=limit)
    if best is None:
        return word
    corrections[word] = best[0]
    return best[0]


def _plus_grade(m: re.Match) -> str:
    digit = m.group(1) or m.group(2) or _ROMAN.get((m.group(3) or "").lower(), m.group(3))
    return f" {_GRADE_WORDS[digit]} "


def _spelled(m: re.Match) -> str:
    return str(_TENS[m.group(1).lower()] + (_UNITS[m.group(2).lower()] if m.group(2) else 0))


def _tokens(chunk: str, lex: Lexicon, corrections: dict[str, str]) -> list[str]:
    chunk = _SPELLED.sub(_spelled, chunk)
    chunk = _PLUS_MINUS.sub(
        lambda m: f"{float(m.group(1)) - float(m.group(2)):g}-{float(m.group(1)) + float(m.group(2)):g}",
        chunk,
    )
    chunk = _PLUS_GRADE.sub(_plus_grade, chunk)
    chunk = _SPACED_PERCENT.sub(r"\1%", chunk)
    chunk = _DECADE.sub(lambda m: f" {m.group(1)}0-{m.group(1)}9 ", chunk)
    chunk = _OR_LESS.sub(r"< \1%", _OR_MORE.sub(r"> \1%", chunk))
    chunk = _MEASURE.sub(" ", chunk)
    chunk = _RANGE.sub(lambda m: f" range{m.group(1) or m.group(4)}to{m.group(2) or m.group(5)} ", chunk)
    return [_correct(w, lex, corrections) for w in _glued_split(_slashes_split(words_of(chunk), lex), lex)]


def _glued_split(words: list[str], lex: Lexicon) -> list[str]:
    """ "ef45", "lvef35%": a lexicon word glued to its number is the word and the number."""
    out: list[str] = []
    for word in words:
        m = _GLUED_NUMBER.match(word)
        if m and (word.lower(),) not in lex.surfaces and (m.group(1).lower(),) in lex.surfaces:
            out.extend([m.group(1), m.group(2)])
        else:
            out.append(word)
    return out


def _slashes_split(words: list[str], lex: Lexicon) -> list[str]:
    """ "LV/RV", "RA/RV dilated": lexicon words joined by a slash are chambers joined by "and" (a
    slash the lexicon knows stays one word: "s/p", "mild/moderate", "w/o")."""
    out: list[str] = []
    for word in words:
        parts = word.split("/")
        if (
            len(parts) > 1
            and (word.lower(),) not in lex.surfaces
            and all((p.lower(),) in lex.surfaces for p in parts)
        ):
            for n, part in enumerate(parts):
                out.extend(["and", part] if n else [part])
        else:
            out.append(word)
    return out


def _marks(tokens: list[str], lex: Lexicon) -> list[tuple[str, str, str]]:
    """(kind, value, surface text) for each longest lexicon match; numbers and unknown words too.
    The surface text is given with the first mark of a match only (one match, one word)."""
    out: list[tuple[str, str, str]] = []
    i = 0
    while i < len(tokens):
        for n in range(min(lex.max_surface, len(tokens) - i), 0, -1):
            original = tuple(tokens[i : i + n])
            upper = all(w.isupper() for w in original)
            marks = [
                (kind, value)
                for kind, value, upper_only in lex.surfaces.get(tuple(w.lower() for w in original), ())
                if upper or not upper_only
            ]
            if marks:
                text = " ".join(original)
                out.extend((kind, value, text if k == 0 else "") for k, (kind, value) in enumerate(marks))
                i += n
                break
        else:
            word = tokens[i]
            if _NUMBER.match(word) or _RANGE_TOKEN.match(word):
                out.append(("num", word, word))
            else:
                out.append(("word", word, word))
            i += 1
    return out


def _clauses(text: str, lex: Lexicon, parsed: Parsed) -> list[_Clause]:
    clauses: list[_Clause] = []
    text = unicodedata.normalize("NFKC", text)  # full-width "ＥＦ＜４０" is "EF<40"
    for chunk in _CLAUSE_BREAK.split(text):
        current = _Clause()
        clauses.append(current)
        match_kinds: set[str] = set()
        place = False  # the words since the last finding word say where: "in the"
        for kind, value, surface in _marks(_tokens(chunk, lex, parsed.corrections), lex):
            match_kinds = {kind} if surface else match_kinds | {kind}
            size_word = kind == "atom" and "grade" in match_kinds  # "large", "big": a grade first
            at_place = (
                place and kind == "atom" and value in lex.organs and bool(_fire(set(current.atoms), lex))
            )
            place = (place and kind == "stop") or (kind == "stop" and surface.lower() in PLACE_WORDS)
            if kind == "sep" and current.negated and not current.atoms and not current.grades:
                continue  # "excluding patients with a MitraClip": the negation reaches the finding
            if kind == "sep":
                current = _Clause(joined_by_or=value == "or", joined_by=value)
                clauses.append(current)
                continue
            splits = kind == "atom" and not size_word and not at_place
            opened = _starts_another_finding(current, value, lex) if splits else set()
            if opened:  # "no effusion pacer", "RV dilated LV normal"
                current = _run_on_split(current, opened, lex)
                clauses.append(current)
            if surface:
                current.words.append(surface)
            if kind == "atom":
                before = set(_fire(_with_organ(set(current.atoms), lex), lex))
                current.atoms.append(value)
                if size_word:
                    current.size_words.append(value)
                changed = set(_fire(_with_organ(set(current.atoms), lex), lex)) != before
                if changed:
                    current.tail = []
                elif not at_place:
                    current.tail.append((kind, value, surface))
            elif kind == "grade":
                current.grades.append(value)
                current.tail.append((kind, value, surface))
            elif kind == "postneg" and (current.atoms or current.grades):  # "pacer absent"
                current.negated = True
            elif kind in ("neg", "postneg"):
                if current.atoms or current.grades:  # "pacemaker without effusion": a new clause
                    if surface:
                        current.words.pop()
                    subject = _names_subject_only(current, lex)
                    current = _Clause(words=[surface] if surface else [], after_subject=subject)
                    clauses.append(current)
                current.negated = True
            elif kind == "cmp":
                current.pending_op = value
            elif kind == "num":
                current.numbers.append(_number(value, current.pending_op))
                current.pending_op = None
            elif kind == "word":
                parsed.unmatched.append(surface)
    clauses = _chambers_left_over_split([c for c in clauses if c.words], lex)
    return _trailing_grades_merged(_negated_predicates_merged(clauses, lex))


def _chambers_left_over_split(clauses: list[_Clause], lex: Lexicon) -> list[_Clause]:
    """ "mild MR normal right ventricle": a chamber said after a whole finding, that no finding of
    the clause is about (and not where something is: "lead in the RV"), is a clause of its own."""
    out: list[_Clause] = []
    for clause in clauses:
        out.append(clause)
        fired = _fire(set(clause.atoms), lex)
        used = set().union(*fired.values()) if fired else set()
        loose = [a for kind, a, _ in clause.tail if kind == "atom" and a in lex.organs and a not in used]
        if fired and loose and not clause.negated:
            out.append(_run_on_split(clause, set(), lex))
    return out


def _trailing_grades_merged(clauses: list[_Clause]) -> list[_Clause]:
    """ "left atrial dilatation, moderate": a grade alone after a comma grades the clause before it."""
    out: list[_Clause] = []
    for clause in clauses:
        alone = clause.grades and not clause.atoms and not clause.numbers and not clause.negated
        if alone and out and out[-1].atoms and not out[-1].grades:
            out[-1].grades += clause.grades
            out[-1].words += clause.words
            continue
        out.append(clause)
    return out


def _with_organ(atoms: set[str], lex: Lexicon) -> set[str]:
    """A state said without a chamber ("dilated", "reduced function") is of the default chamber."""
    if atoms & lex.attribute_atoms and not atoms & lex.organs:
        return atoms | {lex.default_organ}
    return atoms


def _starts_another_finding(clause: _Clause, atom: str, lex: Lexicon) -> set[str]:
    """Whether a word begins a second finding in a clause that already names a whole one ("no
    effusion pacer", "RV dilated LV normal", "no pacer severe LV dysfunction"): search-box queries
    often have no commas. A chamber after a state said without one ("dilated LA") and a word that
    only narrows the finding ("EF reduced") do not."""
    atoms = set(clause.atoms) - set(clause.size_words)
    if not atoms or (atom in lex.organs and not atoms & lex.organs):
        return set()
    before = _fire(_with_organ(atoms, lex), lex)
    if not before:
        return set()
    if any(atom in g and g <= atoms | {atom} for name in before for g in lex.rules[name].when):
        return set()  # "reduced EF": the word is part of a finding already named
    together = _with_organ(atoms | {atom}, lex)
    opened = set()
    for name in _fire(together, lex):
        if name in before or lex.rules[name].means:  # "MitraClip device": not another finding
            continue
        groups = [g for g in lex.rules[name].when if g <= together]
        if not any(b <= g for g in groups for b in before.values()):  # "EF reduced" narrows "EF"
            opened.add(name)
    return opened


def _run_on_split(clause: _Clause, opened: set[str], lex: Lexicon) -> _Clause:
    """The clause that a run-on query's next finding opens. The words said since the first finding
    was whole ("severe LV" in "no pacer severe LV dysfunction") go with the next one, except a grade
    the first finding needs when the next one takes none ("effusion large pacer")."""
    old = _fire(_with_organ(set(clause.atoms), lex), lex)
    graded = lambda names: any(lex.rules[n].graded for n in names)  # noqa: E731
    tail = clause.tail
    own_grades = len(clause.grades) - sum(1 for kind, _, _ in tail if kind == "grade")
    if graded(old) and not own_grades and not graded(opened):
        tail = [m for m in tail if m[0] != "grade"]
    moved = _Clause()
    for kind, value, surface in tail:
        (clause.atoms if kind == "atom" else clause.grades).remove(value)
        (moved.atoms if kind == "atom" else moved.grades).append(value)
        if surface and surface in clause.words:
            clause.words.remove(surface)
            moved.words.append(surface)
    clause.tail = []
    return moved


def _names_subject_only(clause: _Clause, lex: Lexicon) -> bool:
    """The clause names only what is measured ("LV size", "EF"), nothing said of it yet."""
    atoms = set(clause.atoms)
    return bool(atoms) and not clause.grades and not clause.negated and atoms <= lex.organs | lex.subjects


def _negated_predicates_merged(clauses: list[_Clause], lex: Lexicon) -> list[_Clause]:
    """ "LV size is not enlarged", "EF not reduced": a negated clause that only says a state
    (attributes, no chamber or other finding) after a clause that only names what is measured is
    that clause's predicate: one negated clause, not "LV size" and "not enlarged"."""
    out: list[_Clause] = []
    for clause in clauses:
        atoms = set(clause.atoms)
        if (
            clause.after_subject
            and out
            and atoms
            and atoms <= lex.attribute_atoms | lex.subjects
            and not atoms & lex.organs
            and not clause.numbers
        ):
            head = out[-1]
            head.atoms += clause.atoms
            head.grades += clause.grades
            head.words += clause.words
            head.negated = True
            continue
        out.append(clause)
    return out


def _number(token: str, op: str | None) -> Number:
    m = _RANGE_TOKEN.match(token)
    if m:
        low, high = sorted((float(m.group(1)), float(m.group(2))))
        return Number("between", low, high)
    return Number(op or "=", float(_NUMBER.match(token).group(1)))


def _fire(atoms: set[str], lex: Lexicon) -> dict[str, frozenset[str]]:
    """Findings whose atom sets the clause holds, the most specific kept. A chamber's finding that
    matched without naming a chamber ("reduced function") does not fire when the clause names
    another chamber ("reduced RV function" is not LV function)."""
    hits: dict[str, frozenset[str]] = {}
    named = atoms & lex.organs
    for rule in lex.rules.values():
        chamber_rule = any(group & lex.organs for group in rule.when)
        for group in rule.when:
            if not group <= atoms or len(group) <= len(hits.get(rule.name, ())):
                continue
            if chamber_rule and named and not group & lex.organs:
                continue
            hits[rule.name] = group
    return {n: g for n, g in hits.items() if not any(g < other for other in hits.values())}


def _read_clause(
    clause: _Clause, previous: _Clause | None, following: _Clause | None, lex: Lexicon
) -> dict[str, frozenset[str]]:
    atoms = set(clause.atoms)
    prev_atoms = set(previous.atoms) if previous is not None else set()
    if (
        atoms and atoms <= lex.attribute_atoms and prev_atoms & lex.organs
    ):  # "dilated RV with reduced function"
        hits = _fire(atoms | (prev_atoms & lex.organs), lex)
        if hits:
            clause.atoms = sorted(atoms | set().union(*hits.values()))
            return hits
    hits = _fire(atoms, lex)
    if hits:
        return hits
    organs, attributes = atoms & lex.organs, atoms & lex.attribute_atoms
    if attributes and not organs:
        borrowed = prev_atoms & lex.organs or {lex.default_organ}
        hits = _fire(atoms | borrowed, lex)
    elif organs and not attributes:
        if _names_a_place(previous, lex) and not clause.grades:  # "a lead in the RA and RV": where it is
            return {}
        hits = _fire(atoms | (prev_atoms & lex.attribute_atoms), lex)
        next_atoms = set(following.atoms) if following is not None else set()
        lends = next_atoms & lex.attribute_atoms and not next_atoms & lex.organs  # "LV not dilated"
        if not hits and _coordinated(following) and next_atoms & lex.organs:  # "LV and RV dilated"
            hits = _fire(atoms | (next_atoms & lex.attribute_atoms), lex)
        if not hits and not lends:
            hits = {f: frozenset(organs) for o in organs for f in lex.organ_findings[o]}
    if hits:
        clause.atoms = sorted(atoms | set().union(*hits.values()))
    return hits


def _names_a_place(clause: _Clause | None, lex: Lexicon) -> bool:
    """The clause names chambers none of its findings is about: where a device is ("lead in the RA")."""
    if clause is None:
        return False
    atoms = set(clause.atoms)
    used = set().union(*_fire(atoms, lex).values())
    return bool(atoms & lex.organs) and bool(used) and not atoms & lex.organs & used


def _coordinated(clause: _Clause | None) -> bool:
    """Joined to the clause before by "and" (or "&", "+", "as well as"): one phrase of two chambers."""
    return clause is not None and clause.joined_by in ("and", "&", "+", "as well as")


def _grade(clause: _Clause) -> str | None:
    abnormal = [g for g in clause.grades if g != "normal"]
    return abnormal[0] if abnormal else (clause.grades[0] if clause.grades else None)


def parse_query(text: str, lex: Lexicon) -> Parsed:
    """The findings a free-text query names, with their grades, numbers and negation."""
    parsed = Parsed()
    previous: _Clause | None = None
    seen: set[tuple[str, bool]] = set()
    clauses = _clauses(text, lex, parsed)
    chamber_only = [bool(c.atoms) and set(c.atoms) <= lex.organs for c in clauses]
    state_only = [bool(c.atoms) and set(c.atoms) <= lex.attribute_atoms for c in clauses]
    for i, clause in enumerate(clauses):
        if clause.joined_by_or and previous is not None and previous.negated:
            clause.negated = True
        hits = _read_clause(clause, previous, clauses[i + 1] if i + 1 < len(clauses) else None, lex)
        grade = _grade(clause)
        if (  # "severely dilated LV and RV", "nl LA and RA size", "normal LV size and function"
            grade is None
            and not clause.negated
            and _coordinated(clause)
            and (chamber_only[i] or chamber_only[i - 1] or state_only[i])
        ):
            grade = _grade(clauses[i - 1])
        negated = clause.negated
        if negated and grade == "normal":  # "not normal LV function": abnormal, any grade
            grade, negated = None, False
        number_rules = [lex.rules[h] for h in hits if lex.rules[h].number]
        if clause.numbers and not number_rules:  # "reduced LVEF (30%)": the value is the EF's too
            number_rules = [  # also "reduced ejection fraction below 35": the finding the value grades
                r
                for r in lex.rules.values()
                if r.number and (any(g <= set(clause.atoms) for g in r.when) or r.graded_as in hits)
            ]
            hits = {**hits, **{r.name: frozenset() for r in number_rules}}
        if not hits and clause.numbers and any(w.endswith("%") for w in clause.words):
            number_rules = [r for r in lex.rules.values() if r.number][:1]
            hits = {r.name: frozenset() for r in number_rules}
        named = [
            m
            for h in hits
            if not set(lex.rules[h].means) & set(hits)  # "MitraClip device": the clip, not every device
            for m in (lex.rules[h].means or (h,))
        ]
        for name in named:
            rule = lex.rules[name]
            mention = Mention(name, grade if rule.graded else None, negated, words=" ".join(clause.words))
            if rule.number:
                if clause.numbers:
                    mention.number = _as_percent(_one_number(clause.numbers))
                elif grade is not None and rule.graded_as:
                    mention = Mention(rule.graded_as, grade, negated, words=mention.words)
                else:
                    parsed.notes.append(f"'{mention.words}': give a value, e.g. '{mention.words} < 40'")
                    continue
            if (mention.finding, mention.negated) not in seen:
                seen.add((mention.finding, mention.negated))
                parsed.mentions.append(mention)
        if clause.numbers and not number_rules:
            parsed.notes.append(
                f"the number in '{' '.join(clause.words)}' was not used (no finding takes it)"
            )
        previous = clause
    positive = {m.finding for m in parsed.mentions if not m.negated}
    parsed.mentions = [  # "effusion without tamponade": the effusion; negating a complication is not negating it
        m
        for m in parsed.mentions
        if not (m.negated and m.grade is None and m.number is None and m.finding in positive)
    ]
    return parsed


def _one_number(numbers: list[Number]) -> Number:
    """The clause's value: "EF 35 40" (two bare values) is the range between them."""
    if len(numbers) >= 2 and numbers[0].op == numbers[1].op == "=":
        low, high = sorted((numbers[0].value, numbers[1].value))
        return Number("between", low, high)
    return numbers[0]


def _as_percent(number: Number) -> Number:
    """An EF written as a fraction ("LVEF 0.35") is that many percent."""
    if 0 < number.value <= 1 and (number.high is None or number.high <= 1):
        return Number(number.op, number.value * 100, None if number.high is None else number.high * 100)
    return number
