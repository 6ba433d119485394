"""Zero-shot probabilities and thresholds, categorical class offsets and regression errors from a
labelled archive, written where the indexer's labels read them: the model's site thresholds file in
the cache dir (never the bundle, unless asked), or a file of the caller's.

A binary task's entry is ``{threshold, slope, intercept}``: the sigmoid that turns its raw score into
a probability (:func:`echosearch.labels.calibration.fit_binary`) and the score where it crosses 0.5,
plus ``views``, the same per view where the model names views and a view has enough labelled clips;
a regression task's is ``{mae}``, the mean absolute error on the archive, shown as "±" next to its
estimates.

Why calibrate on a separate archive: a binary score (mean prompt cosine) is small and model-specific,
so a fixed cut-off is meaningless (the EchoCLIP paper picked its pacemaker threshold on labelled
data). Calibrating on the evaluation archive would overstate how well the threshold does.
A categorical task gets one offset per class, added to its class scores, that maximises accuracy
(:func:`echosearch.labels.calibration.accuracy_offsets`): zero-shot class scores favour some wordings.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from echosearch.errors import UsageError
from echosearch.labels.calibration import (
    accuracy_offsets,
    fit_binary,
    load_thresholds,
    save_thresholds,
)
from echosearch.labels.encoding import VIEW_TASK
from echosearch.labels.scoring import score_tasks
from echosearch.models.bundle import write_manifest
from echosearch.paths import package_data
from echosearch.training.evaluate import EVAL_FRAMES, LabelsFile, embed_archive, require_tasks, task_labels

log = logging.getLogger(__name__)

THRESHOLDS_NAME = "thresholds.json"


def calibrate(
    encoder,
    archive: str | Path,
    out: Path | None = None,
    frames: int = EVAL_FRAMES,
    progress: bool = True,
    tasks_file: str | Path | None = None,
    labels_file: str | Path | None = None,
    into_bundle: bool = False,
) -> dict[str, Any]:
    """Threshold per binary task, class offsets per categorical task, merged into what the target
    already holds. The target: ``out``; else the site thresholds file of the model
    (:attr:`~echosearch.models.bundle.ModelBundle.site_thresholds_path`, in the cache dir), which
    loading the model reads over the bundle's own thresholds, so the bundle itself (package data of
    an installed echosearch, a pulled copy) is never written; with ``into_bundle`` the bundle's own
    thresholds file (manifest re-hashed: how a model to ship is made).

    Tasks whose archive labels hold one class only are skipped with a warning: F1 cannot pick a
    threshold from one class, nor accuracy offsets between classes. ``labels_file`` is a site's
    ground truth (:class:`~echosearch.training.evaluate.LabelsFile`) for any task it has a column
    for. A site's ``tasks_file`` needs ``out``: the model's thresholds belong to its own tasks.
    """
    if tasks_file and out is None:
        raise UsageError("thresholds of a --tasks file go to a file of their own: pass --out FILE")
    if into_bundle and out is not None:
        raise UsageError("--into-bundle and --out name two different targets: pass one")
    if into_bundle:
        _check_writable_bundle(encoder)  # before the archive is embedded, not after
    site = None if out is not None or into_bundle else _site_file(encoder)
    tasks = list(require_tasks(encoder, tasks_file))
    if not tasks:
        raise UsageError(f"model {encoder.name!r} has no zero-shot task to calibrate")
    labels = LabelsFile(labels_file) if labels_file else None
    emb = embed_archive(encoder, archive, frames, progress)
    scores = score_tasks(tasks, emb.frame_embs, encoder.encode_text)
    thresholds, skipped = fit_calibration(
        tasks, scores, lambda task: task_labels(task, emb.clips, labels, Path(archive))
    )
    if into_bundle:
        path = _write_into_bundle(encoder, thresholds, archive)
    else:
        path = out if out is not None else site
        path.parent.mkdir(parents=True, exist_ok=True)
        save_thresholds(path, {**(load_thresholds(path) if path.is_file() else {}), **thresholds})
    return {"thresholds": thresholds, "skipped": skipped, "path": str(path), "clips": len(emb.clips)}


def fit_calibration(tasks, scores, truth) -> tuple[dict[str, Any], list[str]]:
    """Per task, from its scores and ``truth(task)`` (NaN where unknown): a binary task's Platt
    sigmoid and the threshold where it says 0.5, overall and per view where the model has a view task
    and a view has enough labelled clips of both classes (:data:`MIN_VIEW_CLASS`); a categorical
    task's class offsets; a regression task's MAE; and the tasks skipped (no labels, or one class only).
    Categorical tasks go first, so the per-view fits use the views the calibrated view task picks."""
    thresholds: dict[str, Any] = {}
    skipped: list[str] = []
    ordered = sorted(tasks, key=lambda task: task.kind == "binary")
    for task in ordered:
        y = truth(task)
        known = ~np.isnan(y)
        if task.kind == "regression":
            if known.any():  # the error a card shows next to the estimate ("EF ≈ 48% (model estimate, ±7)")
                mae = float(np.abs(np.asarray(scores[task.name], np.float64)[known] - y[known]).mean())
                thresholds[task.name] = {"mae": round(mae, 4)}
            else:
                skipped.append(task.name)
            continue
        if not known.any() or y[known].min() == y[known].max():
            skipped.append(task.name)
            log.warning("task %s: the labels hold one class only (or none); not calibrated", task.name)
            continue
        if task.kind == "binary":
            entry = fit_binary(scores[task.name][known], y[known].astype(int))
            views = _fit_per_view(scores[task.name], y, _clip_views(tasks, scores, thresholds))
            thresholds[task.name] = {**entry, "views": views} if views else entry
        else:
            offsets = accuracy_offsets(scores.class_scores[task.name][known], y[known].astype(int))
            thresholds[task.name] = dict(zip(task.class_names, offsets.tolist(), strict=True))
    return thresholds, skipped


#: Fewest labelled clips of each class a view needs for a sigmoid of its own.
MIN_VIEW_CLASS = 5


def _clip_views(tasks, scores, thresholds: dict[str, Any]) -> np.ndarray | None:
    """Each clip's view as the model (with this calibration's class offsets, when fitted) names it."""
    view_task = next((t for t in tasks if t.name == VIEW_TASK and t.kind == "categorical"), None)
    if view_task is None or VIEW_TASK not in scores.class_scores:
        return None
    offsets = thresholds.get(VIEW_TASK) or {}
    shift = np.asarray([offsets.get(c, 0.0) for c in view_task.class_names], np.float32)
    return np.asarray(view_task.class_names, dtype=object)[(scores.class_scores[VIEW_TASK] + shift).argmax(1)]


def _fit_per_view(score: np.ndarray, y: np.ndarray, views: np.ndarray | None) -> dict[str, dict[str, float]]:
    """``{view: fit_binary(...)}`` for each view with MIN_VIEW_CLASS labelled clips of each class."""
    if views is None:
        return {}
    out = {}
    for view in sorted(set(views.tolist())):
        mask = (views == view) & ~np.isnan(y)
        positives = int((y[mask] > 0).sum())
        if positives >= MIN_VIEW_CLASS and mask.sum() - positives >= MIN_VIEW_CLASS:
            out[str(view)] = fit_binary(score[mask], (y[mask] > 0).astype(int))
    return out


def calibrate_index(
    engine, labels_file: str | Path, out: Path | None = None, tasks_file=None
) -> dict[str, Any]:
    """Calibrate on a site's own indexed clips: ground truth from ``labels_file`` (a
    :class:`~echosearch.training.evaluate.LabelsFile`: ``path``, ``sop_uid`` or ``study_uid`` plus one
    column per task), scores recomputed from the stored frame embeddings (no clip is read again, the
    text tower alone runs), written like :func:`calibrate`'s. Then ``echosearch relabel`` (with
    ``--thresholds FILE`` for an ``--out`` file) puts the new probabilities and decisions on every clip.

    Why: a site's archive is no synthetic archive with a manifest; its labels are a CSV of the clips
    it already indexed, and the embeddings are all in the data dir."""
    from sqlalchemy import select

    from echosearch.labels.tasks import load_tasks
    from echosearch.sources import path_tails
    from echosearch.store.schema import STATUS_INDEXED, Study, Video

    if tasks_file and out is None:
        raise UsageError("thresholds of a --tasks file go to a file of their own: pass --out FILE")
    recorded = engine.space.recorded_tasks()
    tasks = (
        load_tasks(tasks_file) if tasks_file else (recorded[0] if recorded else require_tasks(engine.encoder))
    )
    if not tasks:
        raise UsageError(f"space {engine.space.name!r} has no zero-shot task to calibrate")
    labels = LabelsFile(labels_file)
    with engine.db.session() as s:
        videos = s.execute(
            select(Video.id, Video.path, Video.sop_uid, Study.study_uid)
            .join(Study, Video.study_id == Study.id)
            .where(Video.status == STATUS_INDEXED)
        ).all()
    frames = engine.space.frames()
    ids, rows, names = [], [], []
    for v in videos:
        where = engine.archive.location(v.path)
        paths = path_tails(v.path) + path_tails(where)
        row = labels.row_for(v.study_uid, v.sop_uid, paths)
        if row and int(v.id) in frames:
            ids.append(int(v.id))
            rows.append(row)
            names.append(Path(where).name)
    if not ids:
        raise UsageError(f"{labels_file}: no row names an indexed clip (by path, sop_uid or study_uid)")
    scores = score_clips(tasks, frames.get_many(ids), engine.encoder.encode_text)
    thresholds, skipped = fit_calibration(
        tasks, scores, lambda task: _known(labels.values(task, rows, names), len(ids))
    )
    path = out if out is not None else _site_file(engine.encoder)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_thresholds(path, {**(load_thresholds(path) if path.is_file() else {}), **thresholds})
    return {"thresholds": thresholds, "skipped": skipped, "path": str(path), "clips": len(ids)}


def _known(values: np.ndarray | None, n: int) -> np.ndarray:
    return values if values is not None else np.full(n, np.nan)


def score_clips(tasks, frame_embs: list[np.ndarray], encode_text):
    """:func:`score_tasks` over clips of different lengths (grouped by frame count, as relabel does),
    in the order given; categorical class scores included."""
    from echosearch.labels.scoring import ScoreResults

    groups: dict[int, list[int]] = {}
    for i, f in enumerate(frame_embs):
        groups.setdefault(int(f.shape[0]), []).append(i)
    out = ScoreResults()
    n = len(frame_embs)
    for members in groups.values():
        part = score_tasks(tasks, np.stack([frame_embs[i] for i in members]).astype(np.float32), encode_text)
        for name, values in part.items():
            out.setdefault(name, np.zeros(n, values.dtype))[members] = values
        for name, cs in part.class_scores.items():
            out.class_scores.setdefault(name, np.zeros((n, cs.shape[1]), cs.dtype))[members] = cs
    return out


def _site_file(encoder) -> Path:
    path = encoder.bundle.site_thresholds_path
    if path is None:
        raise UsageError(f"model {encoder.name!r} has no bundle folder; pass --out FILE")
    return path


def _check_writable_bundle(encoder) -> None:
    """The bundle folder exists, is writable, and is no package data of an installed echosearch."""
    folder = encoder.bundle.path
    if folder is None:
        raise UsageError(f"model {encoder.name!r} has no bundle folder; pass --out FILE")
    shipped = package_data().resolve()
    installed = not (shipped.parents[1] / "pyproject.toml").is_file()  # a wheel, not a checkout
    if installed and folder.resolve().is_relative_to(shipped):
        raise UsageError(
            f"{folder} is part of the installed echosearch package; calibrate without --into-bundle"
        )
    if not os.access(folder, os.W_OK):
        raise UsageError(
            f"{folder} is not writable; calibrate without --into-bundle (a site thresholds file)"
        )


def _write_into_bundle(encoder, thresholds: dict[str, float], archive: str | Path) -> Path:
    bundle = encoder.bundle
    manifest = bundle.manifest
    manifest.thresholds = manifest.thresholds or THRESHOLDS_NAME
    path = bundle.path / manifest.thresholds
    merged = {**(load_thresholds(path) if path.is_file() else {}), **thresholds}
    save_thresholds(path, merged)
    manifest.source = {**manifest.source, "calibrated_on": Path(archive).name}
    write_manifest(bundle.path, manifest)  # the thresholds file is part of the checksummed bundle
    return path
