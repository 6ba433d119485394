"""F1-optimal zero-shot thresholds (and categorical class offsets) from a labelled archive, written
where the indexer's labels read them.

Why calibrate on a separate archive: a binary score (mean prompt cosine) is small and model-specific,
so a fixed cut-off is meaningless; the paper picked its pacemaker threshold by maximising F1 on
labelled data. Calibrating on the evaluation archive would overstate the F1 the threshold gives.
A categorical task gets one offset per class, added to its class scores, that maximises accuracy
(:func:`echosearch.zeroshot.accuracy_offsets`): zero-shot class scores favour some wordings.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from echosearch.errors import UsageError
from echosearch.models.bundle import write_manifest
from echosearch.training.evaluate import EVAL_FRAMES, embed_archive, require_tasks, task_labels
from echosearch.zeroshot import accuracy_offsets, f1_threshold, load_thresholds, save_thresholds, score_tasks

log = logging.getLogger(__name__)

THRESHOLDS_NAME = "thresholds.json"


def calibrate(
    encoder,
    archive: str | Path,
    out: Path | None = None,
    frames: int = EVAL_FRAMES,
    progress: bool = True,
    tasks_file: str | Path | None = None,
) -> dict[str, Any]:
    """Threshold per binary task, class offsets per categorical task; written to ``out`` or into
    the model's bundle (manifest re-hashed).

    Tasks whose archive labels hold one class only are skipped with a warning: F1 cannot pick a
    threshold from one class, nor accuracy offsets between classes. A site's ``tasks_file`` needs ``out``: the bundle's thresholds
    file belongs to the bundle's own tasks.
    """
    if tasks_file and out is None:
        raise UsageError("thresholds of a --tasks file go to a file of their own: pass --out FILE")
    tasks = [t for t in require_tasks(encoder, tasks_file) if t.kind != "regression"]
    if not tasks:
        raise UsageError(f"model {encoder.name!r} has no binary or categorical zero-shot task to calibrate")
    emb = embed_archive(encoder, archive, frames, progress)
    scores = score_tasks(tasks, emb.frame_embs, encoder.encode_text)
    thresholds, skipped = {}, []
    for task in tasks:
        y = task_labels(task, emb.clips)
        known = ~np.isnan(y)
        if not known.any() or y[known].min() == y[known].max():
            skipped.append(task.name)
            log.warning("task %s: archive has only one class; not calibrated", task.name)
            continue
        if task.kind == "binary":
            thresholds[task.name] = f1_threshold(scores[task.name][known], y[known].astype(int))
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
