"""Stored labels: the one place that turns scores into the label rows an index keeps, and knows their keys.

Why a module of its own: the indexer (:mod:`indexer.mapper`), ``relabel`` (:mod:`indexer.relabel`),
linear probes (:mod:`echosearch.probes`) and the labels of a new clip (``Engine.clip_labels``) must
store and show the same thing, and filters, cards and the UI must find it under the same names. So
the key names ``TASK.positive`` / ``TASK.probability`` are spelled here and nowhere else; everyone
else calls :func:`positive_key`, :func:`probability_key` or :func:`is_derived`.

Stored labels per task kind (a row is ``(task, value, category)``; the store adds the clip and the
space):

- binary: ``TASK`` the raw score (a cosine difference for a zero-shot task, a logit for a probe),
  ``TASK.positive`` the 0/1 decision at the calibrated threshold (where the task has one),
  ``TASK.probability`` the calibrated probability (where ``calibrate`` fitted one, and for every
  probe);
- regression: ``TASK`` the estimate;
- categorical: ``TASK`` the class index in ``value`` and the class name in ``category``; the class
  of a task named ``view`` also becomes the clip's ``Video.view``; ``TASK.grade`` (zero-shot tasks
  but the view) the expected class index, how far along its classes' scale the clip is (a search
  for "severe" ranks clips by it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: The suffix words of a binary task's derived labels (``TASK.positive``, ``TASK.probability``).
POSITIVE = "positive"
PROBABILITY = "probability"
GRADE = "grade"
DERIVED = (POSITIVE, PROBABILITY, GRADE)
#: The categorical task whose class becomes ``Video.view`` when a model has it.
VIEW_TASK = "view"

#: One stored label: ``(task, value, category)``.
Row = tuple[str, float | None, str | None]


def positive_key(task: str) -> str:
    """The stored 0/1 decision of a binary task: ``TASK.positive``."""
    return f"{task}.{POSITIVE}"


def probability_key(task: str) -> str:
    """The stored calibrated probability of a binary task: ``TASK.probability``."""
    return f"{task}.{PROBABILITY}"


def grade_key(task: str) -> str:
    """The stored expected class index of a categorical task: ``TASK.grade``."""
    return f"{task}.{GRADE}"


def derived_keys(task: str) -> tuple[str, ...]:
    """Every label stored beside a task's own value (to delete them with it)."""
    return positive_key(task), probability_key(task), grade_key(task)


def is_derived(key: str) -> bool:
    """Whether a stored label is a task's decision, probability or grade, not a task of its own."""
    return key.endswith(tuple(f".{field}" for field in DERIVED))


def score_rows(task: str, value: Any, decision: Any = None, probability: Any = None) -> list[Row]:
    """A numeric task's rows: its value (raw score or estimate), then for a binary task its decision
    and its probability, each where it has one."""
    rows: list[Row] = [(task, float(value), None)]
    if decision is not None:
        rows.append((positive_key(task), float(bool(decision)), None))
    if probability is not None:
        rows.append((probability_key(task), float(probability), None))
    return rows


def class_row(task: str, index: Any, classes: Sequence[str]) -> Row:
    """A categorical task's row: the class index and its name."""
    return task, float(int(index)), classes[int(index)]


def result_rows(results: Any, j: int) -> tuple[list[Row], str | None]:
    """The rows of video ``j`` in :func:`~echosearch.labels.scoring.score_tasks` results, in task
    order, and its view (the class of a ``view`` task, where the model has one)."""
    rows: list[Row] = []
    view = None
    for name, values in results.items():
        if name in results.classes:
            row = class_row(name, values[j], results.classes[name])
            rows.append(row)
            if name in results.grades:
                rows.append((grade_key(name), float(results.grades[name][j]), None))
            if name == VIEW_TASK:
                view = row[2]
        else:
            decision = results.decisions[name][j] if name in results.decisions else None
            prob = results.probabilities[name][j] if name in results.probabilities else None
            rows.extend(score_rows(name, values[j], decision, prob))
    return rows, view


def as_values(rows: Iterable[Row]) -> dict[str, float | str | None]:
    """Rows as a clip's labels read them: ``{task: value}``, a categorical task's class name."""
    return {task: category if category is not None else value for task, value, category in rows}
