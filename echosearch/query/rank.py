"""Running an interpretation's label conditions against what a space stores.

A condition names a finding's task; whether it can be used, and how, depends on the task's kind in
the space's recorded task file: a binary task answers with its stored yes/no decision (or its score
at the calibrated threshold), a categorical task with its class (class names read as grades through
the lexicon: "Small" is mild, "Large" severe), a regression task with its value. A condition the
space cannot answer is dropped with a note, never turned into an empty result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from echosearch.query.interpret import EF_TOLERANCE, Condition
from echosearch.query.lexicon import GRADE_SPAN, Lexicon, words_of
from echosearch.store import queries as q


@dataclass
class LabelSource:
    """How one stored task answers a condition."""

    kind: str  # binary | categorical | regression
    decision: str | None = None  # "<task>.positive" when the space stores decisions
    threshold: float = 0.0
    class_grades: dict[str, str] = field(default_factory=dict)  # class name -> plain grade


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
    """1 inside [low, high), fading to 0 over EF_TOLERANCE outside (the estimate's error)."""
    below = (low - value) if low is not None and value < low else 0.0
    above = (value - high) if high is not None and value >= high else 0.0
    return max(0.0, 1.0 - max(below, above) / EF_TOLERANCE) if (below or above) else 1.0


def signal(cond: Condition, source: LabelSource, labels: dict[str, Any]) -> float:
    """How well one clip's stored labels satisfy a preference, in [0, 1]."""
    value = labels.get(cond.task)
    if cond.kind == "range":
        return _in_range(float(value), cond.low, cond.high) if isinstance(value, (int, float)) else 0.0
    if source.kind == "binary":
        decision = labels.get(source.decision) if source.decision else None
        if decision is None and isinstance(value, (int, float)):
            decision = float(value >= source.threshold)
        if decision is None:
            return 0.0
        return float((decision >= 0.5) == cond.present)
    if source.kind == "categorical":
        return float(source.class_grades.get(value) in cond.grades)
    return 0.0


def sql_condition(cond: Condition, source: LabelSource, classes: list[str]) -> list[q.LabelCondition]:
    """The same condition as a hard filter on stored labels (ANDed conditions), or [] if none fits."""
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


def combined_scores(similarity: np.ndarray, signals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Text similarity plus each preference's weight times its signal ([N] + [N, P] @ [P])."""
    if signals.size == 0:
        return similarity
    return similarity + signals @ weights
