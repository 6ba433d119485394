"""Zero-shot labels from embeddings: task definitions (data, not code) and the paper's scoring methods.

EchoCLIP labels a video without any training by comparing its frame embeddings with embeddings of
report sentences ("prompts"):

- binary: the mean cosine similarity over frames and prompts; a calibrated threshold turns it into a
  yes/no decision (the paper picked its pacemaker threshold by maximising F1, see :func:`f1_threshold`).
  A task may add negative prompts (the report sentence for "absent"); the score is then the positive
  similarity minus the negative one, which cancels what every echo shares with both sentences;
- regression: one prompt per candidate value ("LV EJECTION FRACTION IS <#>%." for 0..100); each frame
  ranks all prompts, the ranked values are averaged over frames and the prediction is the median of the
  top 20% of ranks (robust to a few frames that match nonsense);
- categorical: one prompt group per class; the class whose prompts score highest wins.

Tasks live in YAML files (``configs/tasks/README.md`` documents the format) so that a site can add one
without touching code. The EchoCLIP paper's own tasks are built at ``models pull`` time from the public
prompt file with :func:`tasks_from_echoclip_prompts` (its text is not part of this repository).

Everything is vectorised and processed in chunks of videos, so tens of thousands of videos (even a
float16 memory map) score without holding an [N, F, P] similarity tensor in memory.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from echosearch.errors import ConfigError, UsageError

log = logging.getLogger(__name__)

SLOT = "<#>"
KINDS = ("binary", "regression", "categorical")
# Elements of float32 work per chunk (~32 MB); the similarity tensor of a chunk stays below this.
_CHUNK_ELEMENTS = 1 << 23
_MAX_REGRESSION_VALUES = 100_000
_TEXT_BATCH = 256


class CalibrationError(UsageError):
    """Scores and labels cannot give a threshold (no positives, mismatched lengths, NaNs)."""


# --------------------------------------------------------------------------------------------- arrays


def _as_numpy(x: Any) -> np.ndarray:
    """Accept numpy arrays (memory maps stay unread) or torch tensors (any dtype/device)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        t = x.detach().to("cpu")
        return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()  # numpy has no bfloat16
    return np.asarray(x)


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
    frames = _as_numpy(frame_embs)
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
    prompts = _as_numpy(prompt_embs).astype(np.float32, copy=False)
    means = video_means(frame_embs)
    _check_prompts(prompts, means.shape[1])
    direction = prompts.mean(axis=0)
    if negative_embs is not None:
        negatives = _as_numpy(negative_embs).astype(np.float32, copy=False)
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
    frames = _as_numpy(frame_embs)
    _check_frames(frames)
    prompts = _as_numpy(prompt_embs).astype(np.float32, copy=False)
    values = _as_numpy(prompt_values).astype(np.float64).reshape(-1)
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
    (one per class, from :func:`accuracy_offsets`) are added to the class scores before the best
    class is picked; the returned scores include them.
    """
    prompts = _as_numpy(prompt_embs).astype(np.float32, copy=False)
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


# --------------------------------------------------------------------------------------------- threshold


def f1_threshold(scores: Any, labels: Any) -> float:
    """The decision threshold that maximises F1 for the rule ``score >= threshold``.

    The threshold is always one of the observed scores (equal scores cannot be split, so ties are
    decided together). Where several thresholds reach the same best F1, the highest one wins: it
    calls fewer videos positive for the same F1. Raises :class:`CalibrationError` when there is no
    positive label (F1 is 0 for every threshold, so no threshold is better than another), when the
    lengths differ, the input is empty, a score is not finite or a label is not 0/1.
    """
    s = _as_numpy(scores).astype(np.float64).reshape(-1)
    y = _as_numpy(labels).reshape(-1)
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
    s = _as_numpy(scores).astype(np.float64).reshape(-1)
    y = _as_numpy(labels).reshape(-1).astype(bool)
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
    z = slope * _as_numpy(scores).astype(np.float64) + intercept
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
    s = _as_numpy(class_scores).astype(np.float64)
    y = _as_numpy(labels).reshape(-1)
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


# --------------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """One zero-shot task, as written in a task file.

    ``prompts`` and optional ``negative_prompts`` (binary), ``templates`` + ``value_range``
    (regression: inclusive start, stop, step) or ``classes`` (categorical: class name -> prompts, in
    file order) define it; ``expanded()`` gives the prompts to encode and what each one stands for.
    """

    name: str
    kind: str
    prompts: tuple[str, ...] = ()
    negative_prompts: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    value_range: tuple[float, float, float] | None = None
    classes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    threshold: float | None = None
    description: str = ""
    unit: str = ""
    display_name: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    @property
    def title(self) -> str:
        """What a person reads: the task file's ``display_name``, else the name without underscores."""
        return self.display_name or self.name.replace("_", " ")

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a filter may use for this task: its name, then its aliases."""
        return (self.name, *self.aliases)

    def values(self) -> np.ndarray:
        """Regression values start, start+step, ..., stop (inclusive), float64."""
        if self.value_range is None:
            return np.empty(0)
        start, stop, step = self.value_range
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        # Rounding drops float noise (0.1 * 3 = 0.30000000000000004) so prompts read "0.3".
        return np.round(start + step * np.arange(count), 9)

    def expanded(self) -> tuple[list[str], np.ndarray | None]:
        """Prompts to encode, and per prompt its value (regression) or class index (categorical).

        Binary: the prompts, then the negative prompts. Regression prompts are template-major:
        every value of the first template, then the second.
        """
        if self.kind == "binary":
            return list(self.prompts) + list(self.negative_prompts), None
        if self.kind == "regression":
            vals = self.values()
            texts = [t.replace(SLOT, format_value(v)) for t in self.templates for v in vals]
            return texts, np.tile(vals, len(self.templates))
        texts, owner = [], []
        for i, group in enumerate(self.classes.values()):
            texts.extend(group)
            owner.extend([i] * len(group))
        return texts, np.asarray(owner, dtype=np.int64)


def format_value(v: float) -> str:
    """How a number is written into a prompt: ``45`` not ``45.0``; ``2.5`` stays ``2.5``."""
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


_COMMON_KEYS = {"kind", "description", "unit", "display_name", "aliases"}
_TASK_KEYS = {
    "binary": _COMMON_KEYS | {"prompts", "negative_prompts", "threshold"},
    "regression": _COMMON_KEYS | {"templates", "range", "step"},
    "categorical": _COMMON_KEYS | {"classes"},
}
#: An alias is typed in a ``--where`` condition: no '.' (it separates ``task.positive``), no operator.
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_ -]*")


def _str_list(value: Any, what: str, fail: Callable[[str], ConfigError]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise fail(f"'{what}' must be a non-empty list of strings")
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise fail(f"'{what}' must contain only non-empty strings, got {bad[0]!r}")
    return tuple(value)


def _number(value: Any, what: str, fail: Callable[[str], ConfigError]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(f"'{what}' must be a finite number, got {value!r}")
    return float(value)


def task_from_dict(name: str, spec: Any, source: str = "tasks") -> Task:
    """Validate one task's mapping and build the :class:`Task`; errors name the task and the source."""

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{source}: task '{name}': {msg}")

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"{source}: task name {name!r} must be letters, digits, '_', '-' or '.'")
    if not isinstance(spec, dict):
        raise fail("must be a mapping with at least 'kind'")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise fail(f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    unknown = sorted(set(spec) - _TASK_KEYS[kind])
    if unknown:
        raise fail(f"unknown key(s) for a {kind} task: {', '.join(map(str, unknown))}")
    common: dict[str, Any] = {}
    for key in ("description", "unit", "display_name"):
        if key in spec:
            if not isinstance(spec[key], str):
                raise fail(f"'{key}' must be a string")
            common[key] = spec[key]
    if "aliases" in spec:
        aliases = _str_list(spec["aliases"], "aliases", fail)
        bad = [a for a in aliases if not _ALIAS_RE.fullmatch(a.strip())]
        if bad:
            raise fail(f"alias {bad[0]!r} must start with a letter and use letters, digits, '_', '-', spaces")
        common["aliases"] = tuple(a.strip() for a in aliases)
    if kind == "binary":
        prompts = _str_list(spec.get("prompts"), "prompts", fail)
        negatives = (
            _str_list(spec["negative_prompts"], "negative_prompts", fail)
            if "negative_prompts" in spec
            else ()
        )
        slotted = [p for p in prompts + negatives if SLOT in p]
        if slotted:
            raise fail(f"binary prompt contains '{SLOT}' (fill in a value): {slotted[0]!r}")
        both = sorted(set(prompts) & set(negatives))
        if both:
            raise fail(f"prompt is both positive and negative: {both[0]!r}")
        threshold = spec.get("threshold")
        if threshold is not None:
            threshold = _number(threshold, "threshold", fail)
        return Task(name, kind, prompts=prompts, negative_prompts=negatives, threshold=threshold, **common)
    if kind == "regression":
        templates = _str_list(spec.get("templates"), "templates", fail)
        missing = [t for t in templates if SLOT not in t]
        if missing:
            raise fail(f"regression template lacks the '{SLOT}' slot: {missing[0]!r}")
        rng = spec.get("range")
        if not isinstance(rng, list) or len(rng) != 2:
            raise fail("'range' must be [start, stop] (inclusive)")
        start, stop = (_number(v, "range", fail) for v in rng)
        step = _number(spec.get("step", 1), "step", fail)
        if step <= 0 or stop < start:
            raise fail(f"need step > 0 and start <= stop, got range {rng} step {step:g}")
        if (stop - start) / step + 1 > _MAX_REGRESSION_VALUES:
            raise fail(f"range and step give more than {_MAX_REGRESSION_VALUES} values")
        return Task(name, kind, templates=templates, value_range=(start, stop, step), **common)
    classes = spec.get("classes")
    if not isinstance(classes, dict) or len(classes) < 2:
        raise fail("'classes' must map at least two class names to lists of prompts")
    groups = {}
    for cls, prompts in classes.items():
        if not isinstance(cls, str | int) or isinstance(cls, bool):
            raise fail(f"class name {cls!r} must be a string")
        groups[str(cls)] = _str_list(prompts, f"classes.{cls}", fail)
    return Task(name, kind, classes=groups, **common)


def tasks_from_dict(data: Any, source: str = "tasks") -> list[Task]:
    """Build tasks from a task file's parsed content: ``{"tasks": {name: spec, ...}}``."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict) or not data["tasks"]:
        raise ConfigError(f"{source}: expected a mapping with a non-empty 'tasks' mapping of name -> task")
    extra = sorted(set(data) - {"tasks", "version"})
    if extra:
        raise ConfigError(f"{source}: unknown top-level key(s): {', '.join(map(str, extra))}")
    tasks = [task_from_dict(name, spec, source) for name, spec in data["tasks"].items()]
    check_names(tasks, source)
    return tasks


def label_key(name: str) -> str:
    """How a typed label name is compared: case, spaces, '-' and '_' do not matter ("LV size" is lv_size)."""
    return re.sub(r"[\s_-]+", "_", name.strip().lower())


def check_names(tasks: Sequence[Task], source: str = "tasks") -> None:
    """Every task name and alias must name one task only (case-insensitively): ``--where "EF < 40"``
    has to know which task it means."""
    owner: dict[str, str] = {}
    for task in tasks:
        for name in dict.fromkeys(label_key(n) for n in task.names):
            if name in owner and owner[name] != task.name:
                raise ConfigError(
                    f"{source}: task '{task.name}': name or alias {name!r} is also task '{owner[name]}'"
                )
            owner[name] = task.name


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (two tasks of the same name)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _read_structured(path: Path) -> Any:
    """Read YAML (JSON is YAML too) with a one-line error for a missing or malformed file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML/JSON{where}: {getattr(exc, 'problem', exc)}") from None


def load_tasks(path: str | Path) -> list[Task]:
    """Load and validate a task file (YAML or JSON); errors are one line naming the file and task."""
    path = Path(path)
    return tasks_from_dict(_read_structured(path), source=str(path))


def task_to_dict(task: Task) -> dict[str, Any]:
    """The task-file mapping of one task (inverse of :func:`task_from_dict`)."""
    spec: dict[str, Any] = {"kind": task.kind}
    if task.display_name:
        spec["display_name"] = task.display_name
    if task.aliases:
        spec["aliases"] = list(task.aliases)
    if task.description:
        spec["description"] = task.description
    if task.unit:
        spec["unit"] = task.unit
    if task.kind == "binary":
        spec["prompts"] = list(task.prompts)
        if task.negative_prompts:
            spec["negative_prompts"] = list(task.negative_prompts)
        if task.threshold is not None:
            spec["threshold"] = task.threshold
    elif task.kind == "regression":
        start, stop, step = task.value_range or (0.0, 0.0, 1.0)
        spec["templates"] = list(task.templates)
        spec["range"] = [_plain(start), _plain(stop)]
        spec["step"] = _plain(step)
    else:
        spec["classes"] = {name: list(prompts) for name, prompts in task.classes.items()}
    return spec


def _plain(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def save_tasks(tasks: Sequence[Task], path: str | Path) -> Path:
    """Write tasks as a task file (JSON for ``.json``, YAML otherwise), e.g. into a model bundle."""
    path = Path(path)
    data = {"tasks": {t.name: task_to_dict(t) for t in tasks}}
    _write_structured(path, data)
    return path


def _write_structured(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------- EchoCLIP


def tasks_from_echoclip_prompts(data: Mapping[str, Any], source: str = "EchoCLIP prompts") -> list[Task]:
    """Turn EchoCLIP's zero-shot prompt file (name -> mode, label_sources, ...) into our tasks.

    In that file ``label_sources`` are the report sentences used to *label* reports; where a task
    also has ``testers`` (and ``tester_values``), those are the prompts used for zero-shot scoring,
    so they win. Categorical values are named through ``value_mapping``; classes are ordered by
    value and only values with at least one prompt become classes. Regression ranges step by 1.
    """
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{source}: expected a non-empty mapping of task name -> task")
    specs: dict[str, Any] = {}
    for name, entry in data.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: task '{name}': must be a mapping")
        mode = entry.get("mode")
        use_testers = "testers" in entry
        prompts = entry.get("testers") if use_testers else entry.get("label_sources")
        if mode == "binary":
            specs[name] = {"kind": "binary", "prompts": prompts}
        elif mode == "regression":
            specs[name] = {"kind": "regression", "templates": prompts, "range": entry.get("range", [0, 100])}
        elif mode == "categorical":
            specs[name] = _echoclip_categorical(name, entry, prompts, use_testers, source)
        else:
            raise ConfigError(f"{source}: task '{name}': unknown mode {mode!r}")
    return tasks_from_dict({"tasks": specs}, source=source)


def _echoclip_categorical(
    name: str, entry: Mapping[str, Any], prompts: Any, use_testers: bool, source: str
) -> dict[str, Any]:
    values = entry.get("tester_values" if use_testers else "values")
    if not isinstance(prompts, list) or not isinstance(values, list) or len(prompts) != len(values):
        raise ConfigError(f"{source}: task '{name}': prompts and values must be lists of the same length")
    mapping = {str(k): str(v) for k, v in (entry.get("value_mapping") or {}).items()}
    groups: dict[Any, list[str]] = {}
    for value, prompt in zip(values, prompts, strict=True):
        groups.setdefault(value, []).append(prompt)
    try:
        ordered = sorted(groups)
    except TypeError:
        ordered = list(groups)
    classes = {mapping.get(str(v), str(v)): groups[v] for v in ordered}
    return {"kind": "categorical", "classes": classes}


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


def encode_prompts(texts: Sequence[str], encode_text: Callable[[list[str]], Any]) -> np.ndarray:
    """Encode prompts in batches into one float32 [M, D] array (re-normalised, to be safe)."""
    parts = [
        _as_numpy(encode_text(list(texts[i : i + _TEXT_BATCH]))) for i in range(0, len(texts), _TEXT_BATCH)
    ]
    embs = np.concatenate(parts).astype(np.float32, copy=False)
    if embs.shape[0] != len(texts):
        raise UsageError(f"encode_text returned {embs.shape[0]} embeddings for {len(texts)} prompts")
    norms = np.linalg.norm(embs, axis=1, keepdims=True)
    return embs / np.maximum(norms, 1e-12)


def _class_offsets(task: Task, value: Any) -> np.ndarray | None:
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
BINARY_KEYS = ("threshold", "slope", "intercept")


def _binary_calibration(task: Task, entry: Any) -> tuple[float | None, tuple[float, float] | None]:
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

    Thresholds, later ones winning: each task's own ``threshold`` (applied by :func:`score_tasks`),
    the bundle's calibrated thresholds that still hold (:func:`carried_thresholds`), then a site's
    thresholds file (what ``echosearch calibrate --out`` writes).
    """
    own = bundle.load_tasks()
    tasks = load_tasks(tasks_file) if tasks_file else own
    thresholds = carried_thresholds(tasks, own, bundle.thresholds)
    if thresholds_file:
        thresholds.update(load_thresholds(thresholds_file))
    return tasks, thresholds


def score_tasks(
    tasks: Sequence[Task],
    frame_embs: Any,
    encode_text: Callable[[list[str]], Any],
    thresholds: Mapping[str, Any] | None = None,
) -> ScoreResults:
    """Score every task on every video; each distinct prompt is encoded once, in batches.

    ``thresholds`` (e.g. from :func:`load_thresholds`) override the binary tasks' own thresholds
    and give calibrated categorical tasks their class offsets.
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
    frames = _as_numpy(frame_embs)
    needs_means = any(t.kind != "regression" for t in tasks)
    means = video_means(frames)[:, None, :] if needs_means else None  # [N, 1, D]: one "frame"
    thresholds = dict(thresholds or {})
    for task in tasks:
        texts, extra = expanded[task.name]
        task_embs = embs[[row[p] for p in texts]]
        if task.kind == "binary":
            positives, negatives = task_embs[: len(task.prompts)], task_embs[len(task.prompts) :]
            results[task.name] = binary_scores(means, positives, negatives if len(negatives) else None)
            threshold, platt = _binary_calibration(task, thresholds.get(task.name))
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
            offsets = _class_offsets(task, thresholds.get(task.name))
            pred = categorical_predictions(means, task_embs, extra, task.class_names, offsets)
            if offsets is not None:
                results.offsets[task.name] = dict(zip(task.class_names, offsets.tolist(), strict=True))
            results[task.name] = pred.index
            results.classes[task.name] = pred.classes
            results.class_scores[task.name] = pred.scores
        log.debug("scored zero-shot task %s (%d prompts)", task.name, len(texts))
    return results


# --------------------------------------------------------------------------------------------- thresholds


def load_thresholds(path: str | Path) -> dict[str, Any]:
    """Read a thresholds file (YAML or JSON): ``{binary task: threshold}`` and, for a calibrated
    categorical task, ``{task: {class: offset}}``."""
    path = Path(path)
    data = _read_structured(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of task name -> threshold")

    def number(name: str, value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"{path}: task '{name}': {what} must be a finite number, got {value!r}")
        return float(value)

    out: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            out[str(name)] = {
                str(c): number(str(name), v, f"offset of class '{c}'") for c, v in value.items()
            }
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

    clean: dict[str, Any] = {}
    for name, value in thresholds.items():
        if isinstance(value, Mapping):
            clean[str(name)] = {str(c): number(str(name), v) for c, v in value.items()}
        else:
            clean[str(name)] = number(str(name), value)
    _write_structured(path, clean)
    return path
