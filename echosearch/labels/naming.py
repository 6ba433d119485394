"""Labels as people name and read them: filter conditions from typed names, and readable label text.

Why a module of its own: a label is stored under its task's name (``ejection_fraction``,
``pacemaker.positive``), but people type ``EF < 40``, ``pacemaker = yes``, ``lv_size >= moderate``
and want to read "pacemaker: yes, 0.97" or "EF ≈ 48% (model estimate, ±7)", not ``mitraclip -0.15``.
Both directions need the same knowledge of the tasks (kind, classes, aliases, display name, which
derived labels the index stores), so it lives here once, for the CLI, the UI and the Python API.
What the index stores per task kind is :mod:`echosearch.labels.encoding`'s to say.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from echosearch.errors import UsageError
from echosearch.labels.calibration import binary_threshold
from echosearch.labels.encoding import POSITIVE, PROBABILITY, positive_key, probability_key
from echosearch.labels.tasks import Task, label_key
from echosearch.store.queries import LabelCondition

SCORE = "score"
FIELDS = (POSITIVE, PROBABILITY, SCORE)
YES = frozenset({"yes", "y", "true", "present", "positive"})
NO = frozenset({"no", "n", "false", "absent", "negative"})
#: The non-label keys a ``--where`` condition understands (see :func:`echosearch.search.parse_where`).
OTHER_KEYS = ("view", "date", "manufacturer", "study", "mrn")


def find_task(key: str, tasks: Sequence[Task]) -> tuple[Task, str | None]:
    """The task a typed name means (its name or an alias, any case; ``TASK.positive`` etc. give the
    field too). An unknown name is a usage error that lists the names this index knows."""
    base, field = key, None
    if "." in key:
        base, _, suffix = key.rpartition(".")
        field = suffix.strip().lower()
        if field not in FIELDS:
            raise UsageError(f"unknown label field {suffix!r} in {key!r} (use {', '.join(FIELDS)})")
    by_name = {label_key(n): t for t in tasks for n in t.names}
    task = by_name.get(label_key(base))
    if task is None:
        raise UsageError(f"unknown label {base.strip()!r}; {known_names(tasks)}")
    return task, field


def known_names(tasks: Sequence[Task]) -> str:
    """One line naming every label of an index with its aliases, and the other filter keys."""
    names = [t.name + (f" ({', '.join(t.aliases)})" if t.aliases else "") for t in tasks]
    return f"labels: {', '.join(names) or 'none in this index'}; other keys: {', '.join(OTHER_KEYS)}"


def conditions_for(
    key: str,
    op: str,
    value: str,
    tasks: Sequence[Task],
    stored: Collection[str],
    thresholds: Mapping[str, Any] | None = None,
) -> list[LabelCondition]:
    """The stored-label conditions of one typed ``key op value`` (see the module doc for the forms).

    ``stored`` are the label names the index holds (which decide whether ``pacemaker > 0.5`` means a
    probability or a raw score); ``thresholds`` the space's calibrated thresholds (a decision for a
    binary task indexed without a stored ``.positive`` label).
    """
    task, field = find_task(key, tasks)
    op = "=" if op == "==" else op
    word = value.strip().lower()
    if task.kind == "binary":
        return _binary(task, field, op, word, set(stored), dict(thresholds or {}))
    if field is not None:
        raise UsageError(f"{task.name} is a {task.kind} label: '.{field}' is for yes/no labels")
    if op not in ("<", "<=", ">", ">=", "="):
        raise UsageError(f"cannot use {op!r} with {task.name} (use <, <=, >, >=, =)")
    if task.kind == "categorical":
        index = {label_key(c): i for i, c in enumerate(task.class_names)}
        if label_key(word) not in index:
            raise UsageError(
                f"{task.name} is one of {', '.join(task.class_names)} (in that order), not {value!r}"
            )
        return [LabelCondition(task.name, op, float(index[label_key(word)]))]
    return [LabelCondition(task.name, op, _number(task, value))]


def _binary(task: Task, field: str | None, op: str, word: str, stored: set[str], thresholds) -> list:
    name = task.name
    decided = word in YES or word in NO or (field == POSITIVE and word in ("0", "1"))
    if decided or field == POSITIVE:
        if field not in (None, POSITIVE):
            raise UsageError(f"{name}.{field} is a number; use {name} = yes|no for the decision")
        if not decided:
            raise UsageError(f"{positive_key(name)} is yes/no (or 1/0), not {word!r}")
        if op not in ("=", "!="):
            raise UsageError(f"compare {name} with = yes or = no, not {op!r}")
        yes = (word in YES or word == "1") != (op == "!=")
        return [_decision(task, yes, stored, thresholds)]
    if op not in ("<", "<=", ">", ">=", "="):
        raise UsageError(f"cannot use {op!r} with {name} (use <, <=, >, >=, =, or = yes|no)")
    number = _number(task, word)
    if field == SCORE:
        return [LabelCondition(name, op, number)]
    has_probability = probability_key(name) in stored
    if field == PROBABILITY or has_probability:
        if not has_probability:
            raise UsageError(f"{name} has no calibrated probability in this index; use {name}.score or = yes")
        if not 0.0 <= number <= 1.0:
            raise UsageError(f"{name} is a probability between 0 and 1, not {number:g}")
        return [LabelCondition(probability_key(name), op, number)]
    return [LabelCondition(name, op, number)]  # an index without probabilities: the raw score


def _decision(task: Task, yes: bool, stored: set[str], thresholds: Mapping[str, Any]) -> LabelCondition:
    """``TASK = yes|no`` on what the index has: the stored decision, else probability 0.5, else the
    score at its threshold."""
    name = task.name
    if positive_key(name) in stored:
        return LabelCondition(positive_key(name), "=", 1.0 if yes else 0.0)
    if probability_key(name) in stored:
        return LabelCondition(probability_key(name), ">=" if yes else "<", 0.5)
    threshold = binary_threshold(thresholds.get(name, task.threshold))
    if threshold is None:
        raise UsageError(
            f"{name} has no calibrated threshold in this index, so no yes/no; "
            f"compare its score instead (e.g. '{name}.score > 0.1') or run echosearch calibrate"
        )
    return LabelCondition(name, ">=" if yes else "<", threshold)


def _number(task: Task, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        what = "a number" + (" or yes/no" if task.kind == "binary" else "")
        raise UsageError(f"{task.name} takes {what}, not {text!r}")
    return value


# ---------------------------------------------------------------- reading labels


def errors_of(tasks: Sequence[Task], thresholds: Mapping[str, Any], probes: Sequence[Any] = ()) -> dict:
    """The error to show next to each regression estimate: the calibration MAE of a zero-shot task
    (``calibrate`` writes ``{mae}``), the cross-validated MAE of a probe."""
    out = {}
    for t in tasks:
        entry = thresholds.get(t.name)
        if t.kind == "regression" and isinstance(entry, Mapping) and "mae" in entry:
            out[t.name] = float(entry["mae"])
    for p in probes:
        if p.kind == "regression" and "mae" in p.metric:
            out[p.name] = float(p.metric["mae"])
    return out


@dataclass(frozen=True)
class ReadableLabel:
    """One task's label as a person reads it: ``str()`` is the phrase ("Pacemaker: yes, 0.97");
    ``value_text`` the part after the name ("yes, 0.97"), for a table column named by ``title``."""

    task: str
    title: str
    kind: str
    phrase: str
    value_text: str
    present: bool | None = None  # a binary task's decision (None: not a yes/no label, or undecided)
    probability: float | None = None  # a binary task's calibrated probability
    estimate: float | None = None  # a regression task's value
    calibrated: bool = True  # False: a binary task shown by its raw score (never calibrated)
    assessable: bool = True  # False: the clip's view does not image the finding (no value shown)

    def __str__(self) -> str:
        return self.phrase


#: What a card says of a finding the clip's view cannot image.
NOT_SEEN = "not seen in this view"


def readable_items(
    labels: Mapping[str, Any],
    tasks: Sequence[Task],
    errors: Mapping[str, float] | None = None,
    estimates: Collection[str] = (),
    unseen: Collection[str] = (),
) -> list[ReadableLabel]:
    """A clip's labels as :class:`ReadableLabel` items, one per task that has a value, in task order
    (what :func:`readable` says, with the parts a card or a table needs kept apart).

    ``unseen`` names tasks whose finding the clip's view does not image (a TAVR in a PSAX at the
    papillary muscles): their value is a model's guess from a view it was not calibrated on, so the
    item says "not seen in this view" instead of a yes/no or an estimate."""
    errors = errors or {}
    out = []
    for task in tasks:
        name, title = task.name, task.title
        value = labels.get(name)
        has_value = value is not None or labels.get(positive_key(name)) is not None
        if name in unseen and has_value:
            out.append(
                ReadableLabel(name, title, task.kind, f"{title}: {NOT_SEEN}", NOT_SEEN, assessable=False)
            )
        elif task.kind == "binary":
            decision, prob = labels.get(positive_key(name)), labels.get(probability_key(name))
            prob = prob if isinstance(prob, int | float) else None
            if isinstance(decision, int | float) or prob is not None:
                yes = decision >= 0.5 if isinstance(decision, int | float) else prob >= 0.5
                text = ("yes" if yes else "no") + (f", {prob:.2f}" if prob is not None else "")
                out.append(ReadableLabel(name, title, "binary", f"{title}: {text}", text, yes, prob))
            elif isinstance(value, int | float):
                text = f"score {value:.2f} (not calibrated)"
                out.append(ReadableLabel(name, title, "binary", f"{title}: {text}", text, calibrated=False))
        elif task.kind == "regression" and isinstance(value, int | float):
            digits = 0 if task.unit == "%" or abs(value) >= 10 else 1
            source = "probe estimate" if name in estimates else "model estimate"
            err = errors.get(name)
            spread = f", ±{err:.{digits}f}" if err is not None else ""
            text = f"≈ {value:.{digits}f}{task.unit} ({source}{spread})"
            out.append(
                ReadableLabel(name, title, "regression", f"{title} {text}", text, estimate=float(value))
            )
        elif task.kind == "categorical" and value is not None:
            out.append(ReadableLabel(name, title, "categorical", f"{title}: {value}", str(value)))
    return out


def readable(
    labels: Mapping[str, Any],
    tasks: Sequence[Task],
    errors: Mapping[str, float] | None = None,
    estimates: Collection[str] = (),
) -> list[str]:
    """A clip's labels as a person reads them, one phrase per task in task order:
    "Pacemaker: yes, 0.97" (decision, calibrated probability), "EF ≈ 48% (model estimate, ±7)",
    "LV size: moderate". ``estimates`` names probe tasks ("probe estimate"). A binary task without a
    decision or probability (never calibrated) shows its raw score, marked as such; raw scores of
    calibrated tasks are left to a details view (the stored labels themselves)."""
    return [item.phrase for item in readable_items(labels, tasks, errors, estimates)]
