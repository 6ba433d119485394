"""Calibration of zero-shot labels: the numbers fitted on labelled clips that make a raw score mean
something, and the thresholds files that carry them.

Why a module of its own: a zero-shot score is a raw cosine difference; what turns it into a decision
(:func:`f1_threshold`), a probability (:func:`platt_scaling`) or a fairer class pick
(:func:`accuracy_offsets`) is fitted per site and per model by ``echosearch calibrate``, written to a
thresholds file (:func:`save_thresholds`), and read back by indexing, ``relabel``, filters and cards.
Which thresholds hold for which tasks (:func:`carried_thresholds`, :func:`resolve_tasks`) and how one
file entry reads (:func:`binary_calibration`, :func:`class_offsets`, :func:`binary_threshold`) live
here too, so every reader agrees.

Thresholds file: ``{binary task: threshold}`` or ``{binary task: {threshold, slope, intercept}}``
(optionally ``views: {view code: {threshold, slope, intercept}}``: a view's own sigmoid, used for
the clips the model places in that view), ``{categorical task: {class: offset}}``,
``{regression task: {mae}}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from echosearch.errors import ConfigError, UsageError
from echosearch.labels.arrays import as_numpy
from echosearch.labels.files import read_structured, write_structured
from echosearch.labels.tasks import Task, load_tasks


class CalibrationError(UsageError):
    """Scores and labels cannot give a threshold (no positives, mismatched lengths, NaNs)."""


def f1_threshold(scores: Any, labels: Any) -> float:
    """The decision threshold that maximises F1 for the rule ``score >= threshold``.

    The threshold is always one of the observed scores (equal scores cannot be split, so ties are
    decided together). Where several thresholds reach the same best F1, the highest one wins: it
    calls fewer videos positive for the same F1. Raises :class:`CalibrationError` when there is no
    positive label (F1 is 0 for every threshold, so no threshold is better than another), when the
    lengths differ, the input is empty, a score is not finite or a label is not 0/1.
    """
    s = as_numpy(scores).astype(np.float64).reshape(-1)
    y = as_numpy(labels).reshape(-1)
    if s.shape[0] != y.shape[0]:
        raise CalibrationError(f"{s.shape[0]} scores but {y.shape[0]} labels")
    if s.size == 0:
        raise CalibrationError("cannot calibrate a threshold on no videos")
    if not np.isfinite(s).all():
        raise CalibrationError("scores contain NaN or infinite values")
    if not np.isin(y, (0, 1)).all():
        raise CalibrationError("labels must be 0/1 (or booleans)")
    y = y.astype(bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        raise CalibrationError("labels contain no positive case; F1 is 0 for every threshold")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    # Only the last position of each run of equal scores is a reachable cut.
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp, fp, cut = tp[last], fp[last], s_sorted[last]
    f1 = 2 * tp / (2 * tp + fp + (n_pos - tp))
    best = int(np.argmax(f1))  # cuts run from highest to lowest threshold: first max = highest
    return float(cut[best])


def platt_scaling(
    scores: Any, labels: Any, iters: int = 50, midpoint: float | None = None
) -> tuple[float, float]:
    """Platt's sigmoid ``p = 1 / (1 + exp(-(slope * score + intercept)))`` fitted to 0/1 labels.

    Why: a binary zero-shot score is a raw cosine difference (the demo model's never pass 0.29), so
    neither "0.12" nor a rule like ``> 0.5`` means anything to a reader; a probability fitted on
    labelled clips does ("pacemaker: yes, 0.97"). Newton's method on the log-loss, with Platt's
    smoothed targets ((N+ + 1) / (N+ + 2) and 1 / (N- + 2)) so separable data does not drive the
    slope to infinity. With ``midpoint`` (``calibrate`` passes the F1-optimal threshold) only the
    slope is fitted and the sigmoid is 0.5 at the midpoint: a decision and its probability never
    disagree ("effusion: no, 0.66" would), at the price of a less free fit. Raises
    :class:`CalibrationError` without both classes.
    """
    s = as_numpy(scores).astype(np.float64).reshape(-1)
    y = as_numpy(labels).reshape(-1).astype(bool)
    if s.shape[0] != y.shape[0] or s.size == 0 or not np.isfinite(s).all():
        raise CalibrationError("need as many finite scores as labels to fit probabilities")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        raise CalibrationError("probabilities need positive and negative clips")
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    centre, spread = (float(s.mean()) if midpoint is None else float(midpoint)), float(s.std()) or 1.0
    z = (s - centre) / spread  # fit on standardised scores: the raw ones are tiny
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(a * z + b, -40, 40)))
        g = np.array([((p - t) * z).sum(), (p - t).sum()])
        w = p * (1 - p) + 1e-12
        h = np.array([[(w * z * z).sum(), (w * z).sum()], [(w * z).sum(), w.sum()]]) + 1e-9 * np.eye(2)
        if midpoint is not None:  # the intercept stays 0 on the centred scores
            step = np.array([g[0] / h[0, 0], 0.0])
        else:
            step = np.linalg.solve(h, g)
        step = np.clip(step, -10.0, 10.0)  # a damped Newton step: far from the optimum h can be tiny
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return float(a / spread), float(b - a * centre / spread)


def probability(scores: Any, slope: float, intercept: float) -> np.ndarray:
    """Platt probabilities of raw scores (see :func:`platt_scaling`)."""
    z = slope * as_numpy(scores).astype(np.float64) + intercept
    return (1 / (1 + np.exp(-np.clip(z, -40, 40)))).astype(np.float32)


def accuracy_offsets(class_scores: Any, labels: Any, sweeps: int = 4, steps: int = 81) -> np.ndarray:
    """Per-class offsets added to a categorical task's class scores that maximise accuracy.

    Why: a zero-shot class score also measures how close a clip is to the class sentence's wording,
    so one class can win too often (the demo model called most moderately dilated LVs severe). A
    bias per class, fitted on labelled data like a binary threshold, corrects that (the
    "calibrate before use" idea of zero-shot classifiers). Coordinate ascent: class 0 stays at 0,
    each other class tries ``steps`` offsets across the score range, ``sweeps`` times; an offset
    moves only when accuracy strictly improves, so a calibration set without a class leaves it at 0.
    """
    s = as_numpy(class_scores).astype(np.float64)
    y = as_numpy(labels).reshape(-1)
    if s.ndim != 2 or s.shape[0] != y.shape[0] or s.shape[0] == 0:
        raise CalibrationError(f"need class scores [N, C] and N labels, got {s.shape} and {y.shape[0]}")
    if not np.isfinite(s).all():
        raise CalibrationError("class scores contain NaN or infinite values")
    y = y.astype(np.int64)
    spread = float(s.max() - s.min()) or 1.0
    grid = np.linspace(-spread, spread, steps)
    offsets = np.zeros(s.shape[1])
    best = float(((s + offsets).argmax(1) == y).mean())
    for _ in range(sweeps):
        for c in range(1, s.shape[1]):
            for value in grid:
                trial = offsets.copy()
                trial[c] = value
                acc = float(((s + trial).argmax(1) == y).mean())
                if acc > best + 1e-12:
                    best, offsets = acc, trial
    return offsets


# ------------------------------------------------------------------------------------------- thresholds files


def class_offsets(task: Task, value: Any) -> np.ndarray | None:
    """A categorical task's class offsets from a thresholds-file entry (classes it omits get 0)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"task '{task.name}' is categorical: give class offsets, not one threshold")
    unknown = sorted(set(value) - set(task.class_names))
    if unknown:
        raise ConfigError(f"task '{task.name}': offsets for unknown classes {', '.join(map(str, unknown))}")
    return np.asarray([float(value.get(c, 0.0)) for c in task.class_names], dtype=np.float32)


#: Keys of a binary task's thresholds-file mapping (a plain number is the threshold alone).
BINARY_KEYS = ("threshold", "slope", "intercept", "views")
#: Keys of one view's entry under ``views``.
VIEW_KEYS = ("threshold", "slope", "intercept")


def binary_calibration(task: Task, entry: Any) -> tuple[float | None, tuple[float, float] | None]:
    """A binary task's threshold (the file's, else the task's own) and Platt (slope, intercept)."""
    if not isinstance(entry, Mapping):
        return (task.threshold if entry is None else entry), None
    unknown = sorted(set(entry) - set(BINARY_KEYS))
    if unknown:
        raise ConfigError(
            f"task '{task.name}' is binary: its entry takes {', '.join(BINARY_KEYS)}, not {', '.join(unknown)}"
        )
    platt = (
        (float(entry["slope"]), float(entry["intercept"])) if {"slope", "intercept"} <= set(entry) else None
    )
    return entry.get("threshold", task.threshold), platt


def view_calibrations(task: Task, entry: Any) -> dict[str, tuple[float, float, float]]:
    """``{view code: (threshold, slope, intercept)}`` of a binary task's per-view sigmoids (or {})."""
    views = entry.get("views") if isinstance(entry, Mapping) else None
    if views is None:
        return {}
    if not isinstance(views, Mapping):
        raise ConfigError(f"task '{task.name}': views must map view codes to {{{', '.join(VIEW_KEYS)}}}")
    out = {}
    for view, fit in views.items():
        if not isinstance(fit, Mapping) or set(fit) != set(VIEW_KEYS):
            raise ConfigError(f"task '{task.name}': views.{view} needs exactly {', '.join(VIEW_KEYS)}")
        out[str(view)] = (float(fit["threshold"]), float(fit["slope"]), float(fit["intercept"]))
    return out


def fit_binary(scores: Any, labels: Any) -> dict[str, float]:
    """``{threshold, slope, intercept}``: a free Platt sigmoid and the score where it crosses 0.5, so
    "yes" means "more likely than not" and a decision never disagrees with its probability.

    Why not the F1-optimal threshold (as before): pinning the sigmoid's midpoint to it left the
    probabilities badly calibrated (held-out ECE 0.27 for the demo's MitraClip, 0.10 free); a
    clinician reads "yes, 0.97" as a probability first. A sigmoid that does not rise with the score
    (a task that learnt nothing) keeps the F1 threshold for its decisions.
    """
    slope, intercept = platt_scaling(scores, labels)
    threshold = -intercept / slope if slope > 0 else f1_threshold(scores, labels)
    return {"threshold": float(threshold), "slope": slope, "intercept": intercept}


def binary_threshold(value: Any) -> float | None:
    """A binary task's threshold from a thresholds-file entry (a number, or ``{threshold: ...}``)."""
    if isinstance(value, Mapping):
        value = value.get("threshold")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def carried_thresholds(
    tasks: Sequence[Task], calibrated_for: Sequence[Task], thresholds: Mapping[str, Any]
) -> dict[str, Any]:
    """The thresholds calibrated for ``calibrated_for`` (e.g. a bundle's tasks) that hold for ``tasks``.

    A threshold lives on its task's score scale, which the prompts and negative prompts set. So it
    carries over to a task of the same name that scores the same sentences (a site file that copies
    the bundle's task and edits its description) and never to a changed one, which needs its own
    calibration (``echosearch calibrate --tasks FILE --out FILE``).
    """

    def scoring(t: Task) -> tuple:
        return t.kind, t.prompts, t.negative_prompts, tuple(t.classes.items()), t.templates, t.value_range

    calibrated = {t.name: scoring(t) for t in calibrated_for}
    return {
        t.name: thresholds[t.name]
        for t in tasks
        if t.name in thresholds and calibrated.get(t.name) == scoring(t)
    }


def resolve_tasks(
    bundle, tasks_file: str | Path | None = None, thresholds_file: str | Path | None = None
) -> tuple[list[Task], dict[str, Any]]:
    """The tasks to score and their thresholds: a model bundle's own, or a site's task file.

    Thresholds, later ones winning: each task's own ``threshold`` (applied by
    :func:`~echosearch.labels.scoring.score_tasks`), the bundle's calibrated thresholds that still
    hold (:func:`carried_thresholds`), then a site's thresholds file (what ``echosearch calibrate
    --out`` writes).
    """
    own = bundle.load_tasks()
    tasks = load_tasks(tasks_file) if tasks_file else own
    thresholds = carried_thresholds(tasks, own, bundle.thresholds)
    if thresholds_file:
        thresholds.update(load_thresholds(thresholds_file))
    return tasks, thresholds


def load_thresholds(path: str | Path) -> dict[str, Any]:
    """Read a thresholds file (YAML or JSON): ``{binary task: threshold}`` and, for a calibrated
    categorical task, ``{task: {class: offset}}``."""
    path = Path(path)
    data = read_structured(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of task name -> threshold")

    def number(name: str, value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"{path}: task '{name}': {what} must be a finite number, got {value!r}")
        return float(value)

    def entry(name: str, value: dict) -> dict[str, Any]:
        out = {}
        for key, v in value.items():
            if key == "views" and isinstance(v, dict):  # a binary task's per-view sigmoids
                out["views"] = {
                    str(view): {str(k): number(name, x, f"{view} {k}") for k, x in fit.items()}
                    if isinstance(fit, dict)
                    else number(name, fit, f"views.{view}")
                    for view, fit in v.items()
                }
            else:
                out[str(key)] = number(name, v, f"offset of class '{key}'")
        return out

    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            out[str(name)] = entry(str(name), value)
        else:
            out[str(name)] = number(str(name), value, "threshold")
    return out


def save_thresholds(path: str | Path, thresholds: Mapping[str, Any]) -> Path:
    """Write thresholds (and categorical class offsets) in the format :func:`load_thresholds` reads."""
    path = Path(path)

    def number(name: str, value: Any) -> float:
        if not math.isfinite(float(value)):
            raise UsageError(f"threshold for task '{name}' is not a finite number: {value!r}")
        return float(value)

    def clean(name: str, value: Any) -> Any:
        if isinstance(value, Mapping):  # class offsets, a binary task's fit, its per-view fits
            return {str(key): clean(name, v) for key, v in value.items()}
        return number(name, value)

    write_structured(path, {str(name): clean(str(name), value) for name, value in thresholds.items()})
    return path
