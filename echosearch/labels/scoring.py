"""Zero-shot scoring: a task's prompts against a video's frame embeddings, the paper's methods.

EchoCLIP labels a video without any training by comparing its frame embeddings with embeddings of
report sentences ("prompts"):

- binary: the mean cosine similarity over frames and prompts; a calibrated threshold turns it into a
  yes/no decision (the paper picked its pacemaker threshold by maximising F1, see
  :func:`echosearch.labels.calibration.f1_threshold`). A task may add negative prompts (the report
  sentence for "absent"); the score is then the positive similarity minus the negative one, which
  cancels what every echo shares with both sentences;
- regression: one prompt per candidate value ("LV EJECTION FRACTION IS <#>%." for 0..100); each frame
  ranks all prompts, the ranked values are averaged over frames and the prediction is the median of the
  top 20% of ranks (robust to a few frames that match nonsense);
- categorical: one prompt group per class; the class whose prompts score highest wins.

Why a module of its own: this is the maths, kept apart from where the tasks come from
(:mod:`echosearch.labels.tasks`), how their thresholds are fitted (:mod:`echosearch.labels.calibration`)
and how the results are stored (:mod:`echosearch.labels.encoding`).

Everything is vectorised and processed in chunks of videos, so tens of thousands of videos (even a
float16 memory map) score without holding an [N, F, P] similarity tensor in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from echosearch.batching import batches
from echosearch.errors import UsageError
from echosearch.labels.arrays import as_numpy
from echosearch.labels.calibration import binary_calibration, class_offsets, probability, view_calibrations
from echosearch.labels.encoding import VIEW_TASK
from echosearch.labels.tasks import Task

log = logging.getLogger(__name__)

# Elements of float32 work per chunk (~32 MB); the similarity tensor of a chunk stays below this.
_CHUNK_ELEMENTS = 1 << 23
_TEXT_BATCH = 256


def _check_frames(frame_embs: np.ndarray) -> None:
    if frame_embs.ndim != 3:
        raise UsageError(f"frame embeddings must be [N, F, D], got shape {tuple(frame_embs.shape)}")


def _check_prompts(prompt_embs: np.ndarray, dim: int, what: str = "prompt embeddings") -> None:
    if prompt_embs.ndim != 2 or prompt_embs.shape[0] == 0:
        raise UsageError(f"{what} must be a non-empty [P, D] array, got shape {tuple(prompt_embs.shape)}")
    if prompt_embs.shape[1] != dim:
        raise UsageError(f"{what} have dimension {prompt_embs.shape[1]}, frame embeddings have {dim}")


def _chunks(n: int, per_video: int) -> Iterator[slice]:
    """Slices over videos so that one chunk holds about ``_CHUNK_ELEMENTS`` float32 values."""
    step = max(1, _CHUNK_ELEMENTS // max(1, per_video))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def video_means(frame_embs: Any) -> np.ndarray:
    """Mean frame embedding per video [N, D] (float32), read chunk by chunk.

    Binary and categorical scores are linear in the frames, so the mean over frames of the
    similarities equals the similarity of the mean frame: one [N, D] matrix serves every such task.
    """
    frames = as_numpy(frame_embs)
    _check_frames(frames)
    n, f, d = frames.shape
    out = np.empty((n, d), dtype=np.float32)
    for sl in _chunks(n, f * d):
        out[sl] = frames[sl].astype(np.float32, copy=False).mean(axis=1)
    return out


# --------------------------------------------------------------------------------------------- scorers


def binary_scores(frame_embs: Any, prompt_embs: Any, negative_embs: Any = None) -> np.ndarray:
    """Mean over frames and prompts of the cosine similarity (embeddings already normalised) -> [N].

    With ``negative_embs`` the same mean over the negative prompts is subtracted: a video scores high
    when it is more like the finding's sentence than like the sentence saying it is absent.
    """
    prompts = as_numpy(prompt_embs).astype(np.float32, copy=False)
    means = video_means(frame_embs)
    _check_prompts(prompts, means.shape[1])
    direction = prompts.mean(axis=0)
    if negative_embs is not None:
        negatives = as_numpy(negative_embs).astype(np.float32, copy=False)
        _check_prompts(negatives, means.shape[1], "negative prompt embeddings")
        direction = direction - negatives.mean(axis=0)
    return (means @ direction).astype(np.float32)


def regression_predictions(frame_embs: Any, prompt_embs: Any, prompt_values: Any) -> np.ndarray:
    """EchoCLIP's rank-based regression -> [N] predicted values.

    For each frame, prompts are ranked by similarity and replaced by their values; the ranked values
    are averaged over frames, and the prediction is the (lower) median of the top 20% of ranks.
    Only the top ranks matter, so a partial sort of the top ``k = M // 5`` prompts replaces a full
    sort (same result up to the order of exactly tied similarities).
    """
    frames = as_numpy(frame_embs)
    _check_frames(frames)
    prompts = as_numpy(prompt_embs).astype(np.float32, copy=False)
    values = as_numpy(prompt_values).astype(np.float64).reshape(-1)
    n, f, d = frames.shape
    _check_prompts(prompts, d)
    m = prompts.shape[0]
    if values.shape[0] != m:
        raise UsageError(f"{values.shape[0]} prompt values for {m} prompt embeddings")
    # int(M * 0.2) in the reference; M // 5 is the same integer without float rounding. At least one.
    k = max(1, m // 5)
    mid = (k - 1) // 2  # torch.median's lower median of k ranked values
    out = np.empty(n, dtype=np.float32)
    for sl in _chunks(n, f * m):
        sims = frames[sl].astype(np.float32, copy=False) @ prompts.T  # [c, F, M]
        if k < m:
            top = np.argpartition(-sims, k - 1, axis=-1)[..., :k]
            top_sims = np.take_along_axis(sims, top, axis=-1)
            order = np.take_along_axis(top, np.argsort(-top_sims, axis=-1, kind="stable"), axis=-1)
        else:
            order = np.argsort(-sims, axis=-1, kind="stable")
        ranked = values[order].mean(axis=1)  # [c, k]: value at each rank, averaged over frames
        out[sl] = np.partition(ranked, mid, axis=-1)[:, mid]
    return out


@dataclass(frozen=True)
class CategoricalPrediction:
    """Per-video best class (index into ``classes``) and every class's score [N, C]."""

    index: np.ndarray
    scores: np.ndarray
    classes: tuple[str, ...]

    @property
    def labels(self) -> list[str]:
        return [self.classes[i] for i in self.index]


def categorical_predictions(
    frame_embs: Any,
    prompt_embs: Any,
    prompt_classes: Sequence[int] | np.ndarray,
    classes: Sequence[str] | None = None,
    offsets: Sequence[float] | np.ndarray | None = None,
) -> CategoricalPrediction:
    """Score each class as a binary task over its own prompts and pick the best class.

    ``prompt_classes[p]`` is the class index of prompt ``p``. ``classes`` names the classes (default
    "0", "1", ...); a class without any prompt cannot be predicted and is rejected. ``offsets``
    (one per class, from :func:`~echosearch.labels.calibration.accuracy_offsets`) are added to the
    class scores before the best class is picked; the returned scores include them.
    """
    prompts = as_numpy(prompt_embs).astype(np.float32, copy=False)
    owner = np.asarray(prompt_classes, dtype=np.int64).reshape(-1)
    n_classes = len(classes) if classes is not None else int(owner.max(initial=-1)) + 1
    names = tuple(classes) if classes is not None else tuple(str(i) for i in range(n_classes))
    if owner.shape[0] != prompts.shape[0]:
        raise UsageError(f"{owner.shape[0]} prompt classes for {prompts.shape[0]} prompt embeddings")
    if owner.size and (owner.min() < 0 or owner.max() >= n_classes):
        raise UsageError(f"prompt class indices must lie in 0..{n_classes - 1}")
    counts = np.bincount(owner, minlength=n_classes)
    if n_classes == 0 or (counts == 0).any():
        empty = [names[i] for i in np.flatnonzero(counts == 0)] or ["(no classes)"]
        raise UsageError(f"classes without prompts: {', '.join(empty)}")
    means = video_means(frame_embs)
    _check_prompts(prompts, means.shape[1])
    # Mean prompt embedding per class: the class score is the mean similarity over its prompts.
    onehot = np.zeros((n_classes, prompts.shape[0]), dtype=np.float32)
    onehot[owner, np.arange(owner.size)] = 1.0
    class_embs = (onehot @ prompts) / counts[:, None].astype(np.float32)
    scores = (means @ class_embs.T).astype(np.float32)
    if offsets is not None:
        scores = scores + np.asarray(offsets, dtype=np.float32).reshape(1, n_classes)
    return CategoricalPrediction(index=scores.argmax(axis=1), scores=scores, classes=names)


# --------------------------------------------------------------------------------------------- scoring


class ScoreResults(dict):
    """``{task_name: np.ndarray [N]}`` plus what some tasks add.

    Values: binary -> score (float32), regression -> predicted value (float32), categorical ->
    predicted class index (int64). ``classes[name]`` names a categorical task's classes and
    ``class_scores[name]`` holds its [N, C] scores; ``decisions[name]`` is the boolean
    ``score >= threshold`` of each binary task that has a threshold; ``thresholds`` the ones used;
    ``offsets`` the class offsets applied to a categorical task's scores (calibrated ones only).
    """

    def __init__(self) -> None:
        super().__init__()
        self.classes: dict[str, tuple[str, ...]] = {}
        self.class_scores: dict[str, np.ndarray] = {}
        self.decisions: dict[str, np.ndarray] = {}
        self.thresholds: dict[str, float] = {}
        self.offsets: dict[str, dict[str, float]] = {}  # categorical: calibrated offset per class
        self.probabilities: dict[str, np.ndarray] = {}  # binary tasks with a fitted Platt sigmoid
        self.errors: dict[str, float] = {}  # regression: calibration mean absolute error
        self.grades: dict[str, np.ndarray] = {}  # categorical: expected class index (see expected_grade)


def encode_prompts(texts: Sequence[str], encode_text: Callable[[list[str]], Any]) -> np.ndarray:
    """Encode prompts in batches into one float32 [M, D] array (re-normalised, to be safe)."""
    parts = [as_numpy(encode_text(list(batch))) for batch in batches(texts, _TEXT_BATCH)]
    embs = np.concatenate(parts).astype(np.float32, copy=False)
    if embs.shape[0] != len(texts):
        raise UsageError(f"encode_text returned {embs.shape[0]} embeddings for {len(texts)} prompts")
    norms = np.linalg.norm(embs, axis=1, keepdims=True)
    return embs / np.maximum(norms, 1e-12)


def score_tasks(
    tasks: Sequence[Task],
    frame_embs: Any,
    encode_text: Callable[[list[str]], Any],
    thresholds: Mapping[str, Any] | None = None,
) -> ScoreResults:
    """Score every task on every video; each distinct prompt is encoded once, in batches.

    ``thresholds`` (e.g. from :func:`~echosearch.labels.calibration.load_thresholds`) override the
    binary tasks' own thresholds and give calibrated categorical tasks their class offsets.
    """
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise UsageError("task names must be unique")
    expanded = {t.name: t.expanded() for t in tasks}
    unique = list(dict.fromkeys(p for texts, _ in expanded.values() for p in texts))
    results = ScoreResults()
    if not unique:
        return results
    embs = encode_prompts(unique, encode_text)
    row = {p: i for i, p in enumerate(unique)}
    frames = as_numpy(frame_embs)
    needs_means = any(t.kind != "regression" for t in tasks)
    means = video_means(frames)[:, None, :] if needs_means else None  # [N, 1, D]: one "frame"
    thresholds = dict(thresholds or {})
    for task in tasks:
        texts, extra = expanded[task.name]
        task_embs = embs[[row[p] for p in texts]]
        if task.kind == "binary":
            positives, negatives = task_embs[: len(task.prompts)], task_embs[len(task.prompts) :]
            results[task.name] = binary_scores(means, positives, negatives if len(negatives) else None)
            threshold, platt = binary_calibration(task, thresholds.get(task.name))
            if threshold is not None:
                results.thresholds[task.name] = float(threshold)
                results.decisions[task.name] = results[task.name] >= threshold
            if platt is not None:
                results.probabilities[task.name] = probability(results[task.name], *platt)
        elif task.kind == "regression":
            results[task.name] = regression_predictions(frames, task_embs, extra)
            entry = thresholds.get(task.name)
            if isinstance(entry, Mapping) and "mae" in entry:
                results.errors[task.name] = float(entry["mae"])
        else:
            offsets = class_offsets(task, thresholds.get(task.name))
            pred = categorical_predictions(means, task_embs, extra, task.class_names, offsets)
            if offsets is not None:
                results.offsets[task.name] = dict(zip(task.class_names, offsets.tolist(), strict=True))
            results[task.name] = pred.index
            results.classes[task.name] = pred.classes
            results.class_scores[task.name] = pred.scores
            if task.name != VIEW_TASK:
                results.grades[task.name] = expected_grade(pred.scores)
        log.debug("scored zero-shot task %s (%d prompts)", task.name, len(texts))
    _apply_view_calibrations(tasks, results, thresholds)
    return results


#: Scale of the class scores (cosines) before the softmax of :func:`expected_grade`: CLIP's logit
#: scale at its cap. On the calibration archive, ranking "severe dilated LV" and the other LV size and
#: function grades by the expected grade gave precision@10 0.775 against 0.700 for the predicted
#: class alone (0.750 at scale 30, near the demo model's own 28.8: not sensitive).
GRADE_SOFTMAX_SCALE = 100.0


def expected_grade(class_scores: np.ndarray) -> np.ndarray:
    """The expected class index of each clip ([N, C] scores -> [N] in 0..C-1) under a softmax of its
    class scores: for classes in order (normal, mild, moderate, severe) how far along the scale the
    clip is, so a graded finding ranks clips by degree, not by their predicted class alone."""
    z = GRADE_SOFTMAX_SCALE * (class_scores - class_scores.max(axis=1, keepdims=True))
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return (p @ np.arange(class_scores.shape[1], dtype=np.float64)).astype(np.float32)


def _apply_view_calibrations(
    tasks: Sequence[Task], results: ScoreResults, thresholds: Mapping[str, Any]
) -> None:
    """Binary tasks calibrated per view: clips the view task places in such a view get that view's
    probability and decision (the score of a finding depends on the view: an apical 3-chamber clip
    scores "pacemaker" higher than a 4-chamber one with a lead in it)."""
    if VIEW_TASK not in results.classes:
        return
    views = np.asarray(results.classes[VIEW_TASK], dtype=object)[
        np.asarray(results[VIEW_TASK], dtype=np.int64)
    ]
    for task in tasks:
        per_view = view_calibrations(task, thresholds.get(task.name)) if task.kind == "binary" else {}
        if not per_view or task.name not in results.probabilities:
            continue
        score = results[task.name]
        for view, (threshold, slope, intercept) in per_view.items():
            mask = views == view
            if mask.any():
                results.probabilities[task.name][mask] = probability(score[mask], slope, intercept)
                if task.name in results.decisions:
                    results.decisions[task.name][mask] = score[mask] >= threshold
