"""F1-optimal zero-shot thresholds, Platt probabilities, categorical class offsets and regression
errors from a labelled archive, written where the indexer's labels read them.

A binary task's entry is ``{threshold, slope, intercept}``: the F1-optimal threshold and the sigmoid
that turns its raw score into a probability (:func:`echosearch.labels.calibration.platt_scaling`); a regression
task's is ``{mae}``, the mean absolute error on the archive, shown as "±" next to its estimates.

Why calibrate on a separate archive: a binary score (mean prompt cosine) is small and model-specific,
so a fixed cut-off is meaningless; the paper picked its pacemaker threshold by maximising F1 on
labelled data. Calibrating on the evaluation archive would overstate the F1 the threshold gives.
A categorical task gets one offset per class, added to its class scores, that maximises accuracy
(:func:`echosearch.labels.calibration.accuracy_offsets`): zero-shot class scores favour some wordings.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from echosearch.errors import UsageError
from echosearch.labels.calibration import (
    accuracy_offsets,
    f1_threshold,
    load_thresholds,
    platt_scaling,
    save_thresholds,
)
from echosearch.labels.scoring import score_tasks
from echosearch.models.bundle import write_manifest
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
) -> dict[str, Any]:
    """Threshold per binary task, class offsets per categorical task; written to ``out`` or into
    the model's bundle (manifest re-hashed).

    Tasks whose archive labels hold one class only are skipped with a warning: F1 cannot pick a
    threshold from one class, nor accuracy offsets between classes. ``labels_file`` is a site's
    ground truth (:class:`~echosearch.training.evaluate.LabelsFile`) for any task it has a column for. A site's ``tasks_file`` needs ``out``: the bundle's thresholds
    file belongs to the bundle's own tasks.
    """
    if tasks_file and out is None:
        raise UsageError("thresholds of a --tasks file go to a file of their own: pass --out FILE")
    tasks = list(require_tasks(encoder, tasks_file))
    if not tasks:
        raise UsageError(f"model {encoder.name!r} has no zero-shot task to calibrate")
    labels = LabelsFile(labels_file) if labels_file else None
    emb = embed_archive(encoder, archive, frames, progress)
    scores = score_tasks(tasks, emb.frame_embs, encoder.encode_text)
    thresholds, skipped = {}, []
    for task in tasks:
        y = task_labels(task, emb.clips, labels, Path(archive))
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
            log.warning("task %s: archive has only one class; not calibrated", task.name)
            continue
        if task.kind == "binary":
            s, truth = scores[task.name][known], y[known].astype(int)
            threshold = f1_threshold(s, truth)
            slope, intercept = platt_scaling(s, truth, midpoint=threshold)  # p >= 0.5 exactly when "yes"
            thresholds[task.name] = {
                "threshold": threshold,
                "slope": slope,
                "intercept": intercept,
            }
        else:
            offsets = accuracy_offsets(scores.class_scores[task.name][known], y[known].astype(int))
            thresholds[task.name] = dict(zip(task.class_names, offsets.tolist(), strict=True))
    path = out if out is not None else _write_into_bundle(encoder, thresholds, archive)
    if out is not None:
        merged = {**(load_thresholds(out) if out.is_file() else {}), **thresholds}
        save_thresholds(out, merged)
    return {"thresholds": thresholds, "skipped": skipped, "path": str(path), "clips": len(emb.clips)}


def _write_into_bundle(encoder, thresholds: dict[str, float], archive: str | Path) -> Path:
    bundle = encoder.bundle
    if bundle.path is None:
        raise UsageError(f"model {encoder.name!r} has no bundle folder; pass --out FILE")
    manifest = bundle.manifest
    manifest.thresholds = manifest.thresholds or THRESHOLDS_NAME
    path = bundle.path / manifest.thresholds
    merged = {**(load_thresholds(path) if path.is_file() else {}), **thresholds}
    save_thresholds(path, merged)
    manifest.source = {**manifest.source, "calibrated_on": Path(archive).name}
    write_manifest(bundle.path, manifest)  # the thresholds file is part of the checksummed bundle
    return path
