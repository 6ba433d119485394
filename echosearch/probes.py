"""Few-shot linear probes: a site's own label, learned from a few dozen labelled clips.

Why: a zero-shot prompt only knows what the model's reports said, in their words; a finding the task
file lacks (RV dilation in the demo model) or one its prompt ranks poorly needs labelled examples.
The stored clip embeddings already separate most findings linearly (CLIP's "linear probe"), so a
logistic regression (binary, one-vs-rest for categorical) or a ridge regression on the clip vectors
of 20-50 labelled clips learns the label in milliseconds, without touching the image model, and
labels every clip of the space from its stored vector (``benchmarks/labels.py`` compares it with the
zero-shot prompt).

A probe is a JSON file in its space (``spaces/<space>/probes/NAME.json``): kind, classes, weights,
the feature scaling, the cross-validated metric and how many clips it learned from. Its labels are
stored like a zero-shot task's (:mod:`echosearch.labels.encoding`): binary ``NAME`` (logit),
``NAME.probability`` and ``NAME.positive`` (probability >= 0.5); categorical ``NAME`` (class index
and name); regression ``NAME`` (the estimate). ``echosearch relabel`` keeps them (it re-applies
every probe).

Numpy only: L2-regularised logistic regression by Newton's method (IRLS) and closed-form ridge, on
standardised features; the regularisation is picked by cross-validation inside the training data, and
the reported metric is the outer cross-validation's (nested), so it is not tuned on its own folds.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echosearch.batching import batches
from echosearch.errors import UsageError
from echosearch.fsutil import atomic_write_text
from echosearch.labels.encoding import class_row, derived_keys, score_rows
from echosearch.sources import path_tails

PROBES_DIR = "probes"
KINDS = ("binary", "categorical", "regression")
LAMBDAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)  # the largest: nearly the class-mean difference
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
MIN_PER_CLASS = 2


@dataclass
class Probe:
    """A fitted probe: ``scores(x)`` of clip vectors [N, D] -> [N] (binary logit, regression value)
    or [N, C] (categorical logits)."""

    name: str
    kind: str
    dim: int
    mean: list[float]
    scale: list[float]
    weights: list[list[float]]  # [C or 1, D]
    bias: list[float]
    classes: list[str] = field(default_factory=list)
    metric: dict[str, Any] = field(default_factory=dict)
    lam: float = 1.0
    n: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    created: str = ""
    model: str = ""
    labels_file: str = ""

    def scores(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float32) - np.asarray(self.mean, np.float32)) / np.asarray(
            self.scale, np.float32
        )
        out = z @ np.asarray(self.weights, np.float32).T + np.asarray(self.bias, np.float32)
        return out[:, 0] if self.kind != "categorical" else out

    def label_rows(self, video_ids: Sequence[int], x: np.ndarray) -> list[tuple]:
        """Label rows ``(video_id, task, value, category)`` for the store (see the module doc)."""
        s = self.scores(x)
        rows: list[tuple] = []
        for i, vid in enumerate(int(v) for v in video_ids):
            if self.kind == "binary":
                p = _sigmoid(float(s[i]))
                labels = score_rows(self.name, s[i], decision=p >= 0.5, probability=p)
            elif self.kind == "categorical":
                labels = [class_row(self.name, np.argmax(s[i]), self.classes)]
            else:
                labels = score_rows(self.name, s[i])
            rows.extend((vid, *row) for row in labels)
        return rows

    def describe(self) -> str:
        m = self.metric
        what = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items())
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        return f"{self.name}: {self.kind} probe on {self.n} clips ({counts}); cross-validated {what}"


# ---------------------------------------------------------------- fitting


def _sigmoid(z: Any) -> Any:
    return (
        1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        if isinstance(z, np.ndarray)
        else 1 / (1 + math.exp(-max(-40, min(40, z))))
    )


def _logistic(z: np.ndarray, y: np.ndarray, lam: float, iters: int = 25) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression (bias not penalised) by Newton's method."""
    n, d = z.shape
    a = np.hstack([z, np.ones((n, 1))]).astype(np.float64)
    w = np.zeros(d + 1)
    pen = np.full(d + 1, float(lam))
    pen[-1] = 1e-6
    for _ in range(iters):
        p = _sigmoid(a @ w)
        grad = a.T @ (p - y) + pen * w
        b = a * np.sqrt(p * (1 - p))[:, None]  # Hessian = b.T b + diag(pen)
        if n < d:  # few labelled clips: Woodbury, an n x n solve instead of (D+1) x (D+1)
            bg = b @ (grad / pen)
            inner = np.eye(n) + (b / pen) @ b.T
            step = grad / pen - (b.T @ np.linalg.solve(inner, bg)) / pen
        else:
            step = np.linalg.solve(b.T @ b + np.diag(pen), grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w[:-1], float(w[-1])


def _ridge(z: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    mu = float(y.mean())
    d = z.shape[1]
    w = np.linalg.solve(z.T @ z + lam * np.eye(d), z.T @ (y - mu))
    return w, mu


def _fit(
    kind: str, z: np.ndarray, y: np.ndarray, n_classes: int, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Weights [C or 1, D] and biases for standardised features ``z``."""
    if kind == "regression":
        w, b = _ridge(z, y, lam)
        return w[None], np.array([b])
    if kind == "binary":
        w, b = _logistic(z, y, lam)
        return w[None], np.array([b])
    fits = [_logistic(z, (y == c).astype(np.float64), lam) for c in range(n_classes)]  # one vs rest
    return np.stack([w for w, _ in fits]), np.array([b for _, b in fits])


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 1e-8, scale, 1.0)


def _predict(kind: str, x: np.ndarray, mean, scale, w, b) -> np.ndarray:
    out = ((x - mean) / scale) @ w.T + b
    return out[:, 0] if kind != "categorical" else out


def _folds(y: np.ndarray, kind: str, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number per sample; stratified by class for binary and categorical labels."""
    fold = np.empty(len(y), dtype=np.int64)
    groups = [np.arange(len(y))] if kind == "regression" else [np.flatnonzero(y == c) for c in np.unique(y)]
    offset = 0
    for g in groups:
        g = rng.permutation(g)
        fold[g] = (np.arange(len(g)) + offset) % k
        offset += len(g)
    return fold


def _metric(kind: str, pred: np.ndarray, y: np.ndarray) -> float:
    """Higher is better: AUC (binary), accuracy (categorical), minus MAE (regression)."""
    if kind == "binary":
        return auc(pred, y)
    if kind == "categorical":
        return float((pred.argmax(1) == y).mean())
    return -float(np.abs(pred - y).mean())


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN without both classes."""
    s, y = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    # average ranks of ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _cv_predictions(kind, x, y, n_classes, lam, folds) -> np.ndarray:
    out = np.zeros((len(y), n_classes)) if kind == "categorical" else np.zeros(len(y))
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        mean, scale = _standardise(x[tr])
        w, b = _fit(kind, (x[tr] - mean) / scale, y[tr], n_classes, lam)
        out[te] = _predict(kind, x[te], mean, scale, w, b)
    return out


def _pick_lambda(kind, x, y, n_classes, rng, k: int) -> float:
    folds = _folds(y, kind, k, rng)
    return max(LAMBDAS, key=lambda lam: _metric(kind, _cv_predictions(kind, x, y, n_classes, lam, folds), y))


def fit_probe(
    name: str, kind: str, x: np.ndarray, y: Sequence[Any], *, folds: int = 5, seed: int = 0
) -> Probe:
    """Fit a probe on clip vectors ``x`` [N, D] and labels ``y`` (0/1, class names, or numbers).

    The metric is nested cross-validation: each outer fold picks its regularisation by an inner
    3-fold CV on its training part, then predicts the held-out fold. The saved probe is fitted on all
    clips with the regularisation a CV on all of them picks.
    """
    if kind not in KINDS:
        raise UsageError(f"probe kind must be one of {', '.join(KINDS)}, got {kind!r}")
    x = np.asarray(x, np.float64)
    classes: list[str] = []
    if kind == "categorical":
        classes = sorted({str(v) for v in y}, key=_natural)
        target = np.array([classes.index(str(v)) for v in y], dtype=np.float64)
    else:
        target = np.asarray(y, dtype=np.float64)
    if kind == "binary" and not np.isin(target, (0, 1)).all():
        raise UsageError(f"probe {name!r}: binary labels must be 0/1 (or yes/no)")
    counts = _counts(kind, target, classes)
    if kind != "regression":
        small = {c: n for c, n in counts.items() if n < MIN_PER_CLASS}
        if len(counts) < 2 or small:
            raise UsageError(f"probe {name!r} needs at least {MIN_PER_CLASS} labelled clips of each of two "
                             f"classes or more, got {counts}")  # fmt: skip
    elif len(target) < 5:
        raise UsageError(f"probe {name!r} needs at least 5 labelled clips, got {len(target)}")
    n_classes = max(1, len(classes))
    smallest = min(counts.values()) if kind != "regression" else len(target)
    k = max(2, min(folds, smallest))
    rng = np.random.default_rng(seed)
    outer = _folds(target, kind, k, rng)
    pred = np.zeros((len(target), n_classes)) if kind == "categorical" else np.zeros(len(target))
    for f in range(k):
        tr, te = outer != f, outer == f
        inner_k = max(
            2, min(3, min(_counts(kind, target[tr], classes).values()) if kind != "regression" else 3)
        )
        lam = _pick_lambda(kind, x[tr], target[tr], n_classes, rng, inner_k)
        mean, scale = _standardise(x[tr])
        w, b = _fit(kind, (x[tr] - mean) / scale, target[tr], n_classes, lam)
        pred[te] = _predict(kind, x[te], mean, scale, w, b)
    metric: dict[str, Any] = {"folds": k}
    if kind == "binary":
        metric["auc"] = auc(pred, target)
    elif kind == "categorical":
        metric["accuracy"] = float((pred.argmax(1) == target).mean())
    else:
        metric["mae"] = float(np.abs(pred - target).mean())
    lam = _pick_lambda(kind, x, target, n_classes, rng, k)
    mean, scale = _standardise(x)
    w, b = _fit(kind, (x - mean) / scale, target, n_classes, lam)
    return Probe(name=name, kind=kind, dim=x.shape[1], mean=mean.tolist(), scale=scale.tolist(),
                 weights=w.tolist(), bias=b.tolist(), classes=classes, metric=metric, lam=lam,
                 n=len(target), counts=counts,
                 created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))  # fmt: skip


def _counts(kind: str, target: np.ndarray, classes: list[str]) -> dict[str, int]:
    if kind == "regression":
        return {"clips": len(target)}
    if kind == "binary":
        return {"yes": int((target == 1).sum()), "no": int((target == 0).sum())}
    return {c: int((target == i).sum()) for i, c in enumerate(classes)}


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


# ---------------------------------------------------------------- storage


def probe_dir(space) -> Path:
    return Path(space.root) / PROBES_DIR


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name or ""):
        raise UsageError(f"bad probe name {name!r} (a letter, then letters, digits, '_' or '-')")
    return name


def save_probe(space, probe: Probe) -> Path:
    folder = probe_dir(space)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{check_name(probe.name)}.json"
    atomic_write_text(path, json.dumps(asdict(probe)) + "\n")
    return path


def load_probe(space, name: str) -> Probe:
    path = probe_dir(space) / f"{check_name(name)}.json"
    if not path.is_file():
        known = ", ".join(p.name for p in list_probes(space)) or "none"
        raise UsageError(f"no probe {name!r} in space {space.name} (probes: {known})")
    return Probe(**json.loads(path.read_text()))


def list_probes(space) -> list[Probe]:
    folder = probe_dir(space)
    return (
        [Probe(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    )


def probe_tasks(space) -> list:
    """The space's probes as tasks (no prompts), so filters and cards treat them like any label."""
    from echosearch.labels.tasks import Task

    return [
        Task(
            p.name,
            p.kind,
            classes={c: () for c in p.classes},
            description=f"linear probe ({p.n} labelled clips)",
        )
        for p in list_probes(space)
    ]


# ---------------------------------------------------------------- labelled clips


ID_COLUMNS = ("video_id", "sop_uid", "path")


def read_labels_csv(path: str | Path, column: str) -> list[tuple[str, str, str]]:
    """Rows ``(id column, id, label)`` of a labels CSV with a ``video_id``, ``sop_uid`` or ``path``
    column and the label ``column``; rows with an empty label are skipped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            if column not in header:
                raise UsageError(f"{path}: no column {column!r} (columns: {', '.join(header)})")
            key = next((c for c in ID_COLUMNS if c in header), None)
            if key is None:
                raise UsageError(f"{path}: needs a {', '.join(ID_COLUMNS)} column to find the clips")
            return [
                (key, row[key].strip(), row[column].strip()) for row in reader if row.get(column, "").strip()
            ]
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def parse_label(kind: str, text: str, where: str) -> Any:
    """A CSV cell as a label: 0/1/yes/no/true/false (binary), a number (regression), a class name."""
    word = text.strip().lower()
    if kind == "binary":
        if word in ("1", "yes", "y", "true", "present", "positive", "1.0"):
            return 1
        if word in ("0", "no", "n", "false", "absent", "negative", "0.0"):
            return 0
        raise UsageError(f"{where}: {text!r} is not a yes/no label (1/0, yes/no, true/false)")
    if kind == "regression":
        try:
            value = float(word)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise UsageError(f"{where}: {text!r} is not a number")
        return value
    return text.strip()


def guess_kind(values: Sequence[str]) -> str:
    """binary for 0/1/yes/no, regression for other numbers, else categorical."""
    words = {v.strip().lower() for v in values}
    if words <= {"0", "1", "yes", "no", "true", "false", "y", "n", "0.0", "1.0"}:
        return "binary"
    try:
        [float(v) for v in words]
        return "regression"
    except ValueError:
        return "categorical"


# ---------------------------------------------------------------- a space's probes


def labelled_vectors(
    engine, rows: list[tuple[str, str, str]]
) -> tuple[list[int], np.ndarray, list[str], int]:
    """The indexed clips the CSV rows name (by video id, SOP Instance UID, or path: the key as stored,
    the file's absolute path through its source root, or a path relative to where the archive was
    indexed), their stored clip vectors, their labels, and how many rows named no indexed clip."""
    from sqlalchemy import select

    from echosearch.store.schema import STATUS_INDEXED, Video

    with engine.db.session() as s:
        videos = s.execute(
            select(Video.id, Video.path, Video.sop_uid).where(Video.status == STATUS_INDEXED)
        ).all()
    in_index = set(engine.index.ids().tolist())
    by_id = {str(v.id): v.id for v in videos}
    by_sop = {v.sop_uid: v.id for v in videos if v.sop_uid}
    by_path: dict[str, int] = {}
    for v in videos:
        # the key as stored, and the file
        suffixes = set(path_tails(v.path)) | set(path_tails(engine.archive.location(v.path)))
        for suffix in suffixes:  # every suffix: "a/b/c.dcm", "b/c.dcm", "c.dcm" (ambiguous ones dropped)
            by_path[suffix] = -1 if suffix in by_path and by_path[suffix] != v.id else v.id
    ids, labels, missing = [], [], 0
    seen: set[int] = set()
    for key, ident, label in rows:
        if key == "video_id":
            vid = by_id.get(ident)
        elif key == "sop_uid":
            vid = by_sop.get(ident)
        else:
            vid = by_path.get(Path(ident).as_posix().lstrip("./"), by_path.get(str(Path(ident).resolve())))
        if vid is None or vid < 0 or vid not in in_index or vid in seen:
            missing += 1
            continue
        seen.add(vid)
        ids.append(vid)
        labels.append(label)
    x = (
        engine.index.reconstruct(np.asarray(ids, np.int64))
        if ids
        else np.zeros((0, engine.index.dim), np.float32)
    )
    return ids, x, labels, missing


def apply_probe(engine, probe: Probe) -> int:
    """Label every clip of the engine's space with ``probe`` from the stored vectors; returns clips."""
    ids = np.asarray(engine.index.ids(), np.int64)
    remove_labels(engine, probe.name)
    from echosearch.store import queries as q

    done = 0
    for chunk in batches(ids, 50_000):
        rows = probe.label_rows(chunk.tolist(), engine.index.reconstruct(chunk))
        with engine.db.session() as s:
            q.upsert_labels(s, engine.space_id, rows)
        done += len(chunk)
    return done


def apply_all(db, space, space_id: int, index) -> int:
    """Re-apply every probe of a space (after ``relabel`` replaced the clips' labels)."""
    from echosearch.store import queries as q

    probes = list_probes(space)
    ids = np.asarray(index.ids(), np.int64)
    if not probes or not len(ids):
        return 0
    x = index.reconstruct(ids)
    with db.session() as s:
        for probe in probes:
            q.upsert_labels(s, space_id, probe.label_rows(ids.tolist(), x))
    return len(probes)


def remove_labels(engine, name: str) -> None:
    from sqlalchemy import delete

    from echosearch.store.schema import Label

    tasks = [name, *derived_keys(name)]
    with engine.db.session() as s:
        s.execute(delete(Label).where(Label.space_id == engine.space_id, Label.task.in_(tasks)))
