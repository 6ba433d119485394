"""Running an interpretation's label conditions against what a space stores.

A condition names a finding's task; whether it can be used, and how, depends on the task's kind in
the space's recorded task file: a binary task answers with its stored yes/no decision (or its score
at the calibrated threshold), a categorical task with its class (class names read as grades through
the lexicon: "Small" is mild, "Large" severe), a regression task with its value. A condition the
space cannot answer is dropped with a note, never turned into an empty result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from echosearch.labels.scoring import expected_grade
from echosearch.query.interpret import EF_TOLERANCE, Condition
from echosearch.query.lexicon import GRADE_SPAN, Lexicon, words_of
from echosearch.store import queries as q


@dataclass
class LabelSource:
    """How one stored task answers a condition."""

    kind: str  # binary | categorical | regression
    decision: str | None = None  # "<task>.positive" when the space stores decisions
    probability: str | None = None  # "<task>.probability" when the space stores calibrated ones
    threshold: float = 0.0
    class_grades: dict[str, str] = field(default_factory=dict)  # class name -> plain grade
    #: the space's raw scores, sorted, per ``videos.view`` (a clip's is its labels' "view")
    by_view: dict[str | None, np.ndarray] | None = None
    #: categorical: the stored expected class index ("TASK.grade") and the classes in their order
    grade: str | None = None
    classes: list[str] = field(default_factory=list)
    #: a grade read at query time (a ``text_grade`` condition): one unit text vector per class, in
    #: order; the Engine puts each candidate's expected class index under ``grade`` in its labels
    class_vectors: np.ndarray | None = None


def text_grade_source(cond: Condition, phrase_vectors: list[np.ndarray]) -> LabelSource:
    """How a ``text_grade`` condition is answered: a categorical source whose classes are the grades
    (normal to severe), each the mean of its phrases' unit vectors."""
    means = np.stack([v.mean(axis=0) for v in phrase_vectors]).astype(np.float32)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    grades = list(cond.grade_phrases)
    return LabelSource(
        "categorical",
        class_grades={g: g for g in grades},
        grade=f"{cond.finding}.text_grade",
        classes=grades,
        class_vectors=means,
    )


def text_grades(vectors: np.ndarray, source: LabelSource) -> np.ndarray:
    """Each clip's expected grade under a softmax of its similarities to the grades' vectors, as a
    stored categorical task's ``.grade`` is computed from its class scores."""
    return expected_grade(vectors.astype(np.float32) @ source.class_vectors.T)


#: Fewest clips of a view whose own score distribution ranks its clips (else all views' together).
MIN_VIEW_CLIPS = 20


def view_percentile(value: float, view: Any, by_view: dict[str | None, np.ndarray]) -> float:
    """Where a raw score sits among the space's scores of clips of the same view, in [0, 1].

    Why: a zero-shot score also measures how much a view looks like the finding's sentence (every
    A3C clip of the demo model scores "pacemaker" higher than an A4C with a lead); ranked within its
    view, a clip is compared with clips that look like it.
    """
    scores = by_view.get(view)
    if scores is None or scores.size < MIN_VIEW_CLIPS:
        scores = by_view.get("*")
    if scores is None or scores.size == 0:
        return 0.5
    return float(np.searchsorted(scores, value, side="right")) / scores.size


def class_grades(classes: list[str], lex: Lexicon) -> dict[str, str]:
    """Read class names as grades: "normal", "mild", ... directly; "Small"/"Large" via the lexicon."""
    out = {}
    for name in classes:
        key = tuple(w.lower() for w in words_of(name))
        grades = [v for kind, v, _upper in lex.surfaces.get(key, []) if kind == "grade"]
        if grades and len(GRADE_SPAN[grades[0]]) == 1:
            out[name] = grades[0]
    return out


def _in_range(value: float, low: float | None, high: float | None) -> float:
    """How likely the true value lies in [low, high) given the estimate, its error taken as normal
    with a spread of 0.8 * EF_TOLERANCE (8 EF points): graded, so an estimate of 75 ranks above one
    of 62 for "EF > 60", and one just outside a range still counts a little."""
    sigma = 0.8 * EF_TOLERANCE
    upper = 1.0 if high is None else 0.5 * (1.0 + math.erf((high - value) / (sigma * math.sqrt(2))))
    lower = 0.0 if low is None else 0.5 * (1.0 + math.erf((low - value) / (sigma * math.sqrt(2))))
    return max(0.0, upper - lower)


def signal(cond: Condition, source: LabelSource, labels: dict[str, Any]) -> float:
    """How well one clip's stored labels satisfy a preference, in [0, 1]."""
    value = labels.get(cond.task)
    if cond.kind == "range":
        return _in_range(float(value), cond.low, cond.high) if isinstance(value, (int, float)) else 0.0
    if source.kind == "binary":
        if source.by_view is not None and isinstance(value, (int, float)):
            p = view_percentile(float(value), labels.get("view"), source.by_view)
            return p if cond.present else 1.0 - p
        probability = labels.get(source.probability) if source.probability else None
        if isinstance(probability, (int, float)):  # graded evidence ranks better than a yes/no
            return float(probability) if cond.present else 1.0 - float(probability)
        decision = labels.get(source.decision) if source.decision else None
        if decision is None and isinstance(value, (int, float)):
            decision = float(value >= source.threshold)
        if decision is None:
            return 0.0
        return float((decision >= 0.5) == cond.present)
    if source.kind == "categorical":
        expected = labels.get(source.grade) if source.grade else None
        wanted = [i for i, c in enumerate(source.classes) if source.class_grades.get(c) in cond.grades]
        # by degree: 1 while the expected grade lies within the wanted grades, 0 a class away
        if isinstance(expected, (int, float)) and wanted:
            gap = max(0.0, wanted[0] - float(expected), float(expected) - wanted[-1])
            return max(0.0, 1.0 - gap)
        return float(source.class_grades.get(value) in cond.grades)
    return 0.0


def sql_condition(cond: Condition, source: LabelSource, classes: list[str]) -> list[q.LabelCondition]:
    """The same condition as a hard filter on stored labels (ANDed conditions), or [] if none fits."""
    if cond.task is None:  # a grade read at query time is no stored label
        return []
    if cond.kind == "range":
        out = []
        if cond.low is not None:
            out.append(q.LabelCondition(cond.task, ">=", cond.low))
        if cond.high is not None:
            out.append(q.LabelCondition(cond.task, "<", cond.high))
        return out
    if source.kind == "binary":
        if source.decision:
            return [q.LabelCondition(source.decision, ">=" if cond.present else "<", 0.5)]
        return [q.LabelCondition(cond.task, ">=" if cond.present else "<", source.threshold)]
    if source.kind == "categorical":
        index = [i for i, c in enumerate(classes) if source.class_grades.get(c) in cond.grades]
        if index and index == list(range(index[0], index[-1] + 1)):  # a run of classes: one range
            return [q.LabelCondition(cond.task, ">=", index[0]), q.LabelCondition(cond.task, "<=", index[-1])]
    return []


def study_pooled(
    signals: np.ndarray,
    own: list[int],
    members: list[list[int]],
    share: float,
    seen: np.ndarray | None = None,
) -> np.ndarray:
    """Each candidate's signals (row ``own[i]`` of ``signals``) mixed with the mean over its study's
    clips (rows ``members[i]``): ``(1 - share) * own + share * study mean``. Used for the label
    evidence and the text similarity alike.

    ``seen`` (same shape as ``signals``, optional) says which clips' views show each signal's finding:
    the study mean is then taken over those clips only, and a clip whose view does not show the
    finding takes the study mean for its own signal (where no clip of the study shows it, all count).

    Why: a finding belongs to the study (its report says it), while one clip often cannot show it
    (a lead is not cut by every view, an EF read off a PSAX at the aortic valve is noise, a dilated
    RV shows little in a PLAX); the study's other clips are more evidence about the same heart, as
    multi-view models pool them, and a view that cannot image the finding is no evidence at all
    (a PSAX at the papillary muscles "scores" TAVR from its likeness to other views, not a valve).
    """
    mine = signals[own] if signals.size else signals.reshape(len(own), 0)
    if mine.size == 0 or (share <= 0 and seen is None):
        return mine
    if seen is None:
        study = np.stack([signals[m].mean(axis=0) for m in members])
        return (1.0 - share) * mine + share * study
    out = np.empty_like(mine)
    for i, (row, rows) in enumerate(zip(own, members, strict=True)):
        shown = seen[rows]  # [m, P]
        counted = shown.any(axis=0)  # per signal: does any clip of the study show it
        weights = np.where(counted, shown, True).astype(np.float32)
        study = (weights * signals[rows]).sum(axis=0) / weights.sum(axis=0)
        own_value = np.where(seen[row] | ~counted, signals[row], study)
        out[i] = (1.0 - share) * own_value + share * study
    return out


def combined_scores(similarity: np.ndarray, signals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Text similarity plus each preference's weight times its signal ([N] + [N, P] @ [P])."""
    if signals.size == 0:
        return similarity
    return similarity + signals @ weights
