"""Recompute every zero-shot label of an index from its stored frame embeddings, without re-reading
a single video.

Why: labels depend on the task file and the thresholds, which change after indexing (a site
calibrates its own thresholds, rewords a task, adds one). A rerun of ``echosearch index`` skips
unchanged files, and re-reading a large archive would take days; the frame store already holds each
clip's per-frame embeddings, so new labels cost one text encoding per prompt and a matrix product.

The labels of each frame-store shard are replaced in one transaction (old rows of the clip deleted,
new ones written, ``Video.view`` updated when a ``view`` task exists), so an interrupted run leaves
every clip with a complete set of labels of either the old or the new tasks; run it again to finish.
Scores come from the stored float16 frame embeddings, so they can differ from the indexer's (float32)
in the third decimal (the tests bound it). Labels are scored and encoded by :mod:`echosearch.labels`
as the indexer's mapper does; relabelling takes the database, the space and its encoder, not a query
engine, so the pipeline does not depend on the query layer.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select, update

from echosearch.batching import SQL_IN_BATCH, batches
from echosearch.index import Space
from echosearch.indexer.mapper import TextCache
from echosearch.indexer.summary import Progress
from echosearch.labels.calibration import resolve_tasks
from echosearch.labels.encoding import result_rows
from echosearch.labels.scoring import score_tasks
from echosearch.labels.tasks import Task
from echosearch.models.encoder import Encoder
from echosearch.probes import apply_all
from echosearch.store import queries as q
from echosearch.store.db import Database
from echosearch.store.schema import STATUS_INDEXED, Label, Video


@dataclass
class RelabelSummary:
    space: str
    clips: int = 0
    labels: int = 0
    tasks: list[str] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    damaged: int = 0  # clips whose stored frames hold NaN/inf: left with their labels, not relabelled

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        lines = [
            f"relabelled {self.clips} clips of space {self.space}: {self.labels} labels "
            f"({', '.join(self.tasks) or 'no tasks'}) in {self.seconds:.1f} s"
        ]
        if self.damaged:
            lines.append(
                f"skipped {self.damaged} clips whose stored frames are damaged: run `echosearch verify --repair`"
            )
        return lines


def relabel(
    db: Database,
    space: Space,
    encoder: Encoder,
    tasks_file: str | Path | None = None,
    thresholds_file: str | Path | None = None,
    progress: bool | None = None,
) -> RelabelSummary:
    """Replace the labels of every indexed clip of ``space`` in ``db`` (see the module doc);
    ``encoder`` is the space's model (its text tower encodes the prompts, its bundle has the tasks).

    Tasks and thresholds are chosen as ``echosearch index`` chooses them: the model's own, or the
    given task file, with the bundle's calibrated thresholds where they still hold and a site's
    thresholds file over them (:func:`echosearch.labels.calibration.resolve_tasks`).
    """
    tasks, thresholds = resolve_tasks(encoder.bundle, tasks_file, thresholds_file)
    with db.session() as s:
        row = q.get_space(s, space.name)
        space_id = row.id if row else None
    return relabel_space(db, space, space_id, encoder, tasks, thresholds, progress)


def relabel_space(
    db: Database,
    space: Space,
    space_id: int,
    encoder: Encoder,
    tasks: list[Task],
    thresholds: dict[str, Any],
    progress: bool | None = None,
) -> RelabelSummary:
    """Label every indexed clip of ``space`` with ``tasks``/``thresholds``; then record them."""
    start = time.perf_counter()
    summary = RelabelSummary(space.name, tasks=[t.name for t in tasks], thresholds=thresholds)
    with db.session() as s:
        indexed = set(s.scalars(select(Video.id).where(Video.status == STATUS_INDEXED)))
    text = TextCache(encoder)
    bar = Progress(len(indexed), progress)
    try:
        for batch in space.frames().iter_all():
            keep = [i for i, vid in enumerate(batch.ids.tolist()) if vid in indexed]
            # damaged frames (NaN) would become NULL labels: keep such a clip's labels as they are
            sound = [
                i for i in keep if np.isfinite(batch.frames[batch.offsets[i] : batch.offsets[i + 1]]).all()
            ]
            summary.damaged += len(keep) - len(sound)
            keep = sound
            rows, views = _label_batch(batch, keep, tasks, thresholds, text)
            ids = [int(batch.ids[i]) for i in keep]
            _replace(db, space_id, ids, rows, views)
            summary.clips += len(ids)
            summary.labels += len(rows)
            bar.update(len(ids))
    finally:
        bar.close()
    if tasks:
        space.record_tasks(tasks, thresholds)
    apply_all(db, space, space_id, space.load_index())  # the clips' probe labels were replaced too
    summary.seconds = time.perf_counter() - start
    return summary


def _label_batch(batch, keep: list[int], tasks, thresholds, text) -> tuple[list[tuple], dict[int, str]]:
    """Label rows ``(video_id, task, value, category)`` and views of the kept videos of one batch."""
    if not tasks:
        return [], {}
    by_frames: dict[int, list[int]] = defaultdict(list)
    for i in keep:
        by_frames[int(batch.offsets[i + 1] - batch.offsets[i])].append(i)
    rows: list[tuple] = []
    views: dict[int, str] = {}
    for members in by_frames.values():
        stacked = np.stack([batch.frames[batch.offsets[i] : batch.offsets[i + 1]] for i in members])
        results = score_tasks(tasks, stacked.astype(np.float32), text, thresholds)
        for j, i in enumerate(members):
            vid = int(batch.ids[i])
            labels, view = result_rows(results, j)
            rows.extend((vid, *row) for row in labels)
            if view is not None:
                views[vid] = view
    return rows, views


def _replace(db: Database, space_id: int, ids: list[int], rows: list[tuple], views: dict[int, str]) -> None:
    with db.session() as s:
        for chunk in batches(ids, SQL_IN_BATCH):
            s.execute(delete(Label).where(Label.space_id == space_id, Label.video_id.in_(chunk)))
        if rows:  # one executemany, not an ORM object per label: ~10 labels per clip add up
            keys = ("video_id", "task", "value", "category")
            s.execute(
                insert(Label), [{"space_id": space_id, **dict(zip(keys, r, strict=True))} for r in rows]
            )
        for vid, view in views.items():
            s.execute(update(Video).where(Video.id == vid).values(view=view))
