"""Reconcile the database with the vector files: what ``echosearch verify`` checks and ``--repair`` fixes.

The database is the source of truth (see :mod:`indexer.writer` for the write order). For a video
space, every indexed video must have frames in the frame store and a vector in FAISS, and nothing
else may be there. For a report space, every report must have a vector and nothing else. Repair:

* extra vectors or frames (rows that were never committed, or pruned) are removed;
* a missing video vector is rebuilt from the frame store (normalised mean of the frames, the
  encoder's own recipe, so the index matches what a fresh run gives up to float16 rounding);
* a video without frames is set back to ``pending`` so the next ``echosearch index`` re-reads it;
* a missing report vector is returned as "needs re-embedding" (only the indexer has the model).

The indexer runs the repair at the start of every run, which is what makes a kill -9 harmless.

Torn tails: a kill during an append can leave a partial float16 row at the end of a frame shard
or a partial record at the end of ``map.log``; later appends would then be misaligned, so both
are cut back to whole rows/records before the frame store is opened.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select, update

from echosearch.index import Space
from echosearch.index.frames import REC
from echosearch.store import queries as q
from echosearch.store.db import Database
from echosearch.store.schema import STATUS_INDEXED, STATUS_PENDING, Report, Video

log = logging.getLogger(__name__)


@dataclass
class SpaceCheck:
    """How one space compares with the database (id lists are capped for display)."""

    space: str
    kind: str
    db_count: int
    index_count: int
    frames_count: int | None
    missing_in_index: list[int] = field(default_factory=list)
    extra_in_index: list[int] = field(default_factory=list)
    missing_frames: list[int] = field(default_factory=list)
    extra_frames: list[int] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing_in_index or self.extra_in_index or self.missing_frames or self.extra_frames)

    @property
    def problems(self) -> int:
        return sum(
            len(x)
            for x in (self.missing_in_index, self.extra_in_index, self.missing_frames, self.extra_frames)
        )

    def to_dict(self, cap: int = 20) -> dict:
        d = asdict(self)
        for key in ("missing_in_index", "extra_in_index", "missing_frames", "extra_frames"):
            d[key + "_count"] = len(d[key])
            d[key] = d[key][:cap]
        d["ok"] = self.ok
        return d


def trim_torn_tails(frames_dir: Path, dim: int) -> int:
    """Cut a partial last row off every shard and a partial last record off ``map.log``; bytes cut."""
    cut = 0
    targets = [(p, 2 * dim) for p in frames_dir.glob("shard-*.f16")] + [(frames_dir / "map.log", 8 * REC)]
    for path, unit in targets:
        if not path.is_file():
            continue
        size = path.stat().st_size
        if size % unit:
            with open(path, "r+b") as f:
                f.truncate(size - size % unit)
            cut += size % unit
            log.warning("cut a torn tail of %d bytes off %s", size % unit, path)
    return cut


def _expected_video_ids(db: Database, space_ids: set[int], multi: bool) -> np.ndarray:
    with db.session() as s:
        ids = q.indexed_video_ids(s)
    if multi:  # several models: a space is only expected to hold the videos it was given
        ids = np.intersect1d(ids, np.fromiter(space_ids, np.int64, len(space_ids)))
    return ids


def check_video_space(db: Database, space: Space, *, multi: bool = False, repair: bool = False) -> SpaceCheck:
    """Compare a video space with the database; with ``repair`` fix it as the module doc says."""
    if repair:
        trim_torn_tails(space.frames_dir, space.info.dim)
    index = space.load_index()
    frames = space.frames()
    frame_ids = frames.ids()
    index_ids = index.ids()
    expected = _expected_video_ids(db, set(frame_ids.tolist()) | set(index_ids.tolist()), multi)
    check = SpaceCheck(
        space=space.name,
        kind="video",
        db_count=int(expected.size),
        index_count=index.ntotal,
        frames_count=len(frames),
        missing_in_index=np.setdiff1d(expected, index_ids).tolist(),
        extra_in_index=np.setdiff1d(index_ids, expected).tolist(),
        missing_frames=np.setdiff1d(expected, frame_ids).tolist(),
        extra_frames=np.setdiff1d(frame_ids, expected).tolist(),
    )
    if repair and not check.ok:
        _repair_video_space(db, space, index, frames, check)
    return check


def _repair_video_space(db, space, index, frames, check: SpaceCheck) -> None:
    if check.extra_in_index:
        index.remove(check.extra_in_index)
    if check.extra_frames:
        frames.remove(check.extra_frames)
    no_frames = set(check.missing_frames)
    if no_frames:  # nothing to rebuild from: the file must be read again
        index.remove(sorted(no_frames))
        with db.session() as s:
            s.execute(
                update(Video)
                .where(Video.id.in_(sorted(no_frames)), Video.status == STATUS_INDEXED)
                .values(status=STATUS_PENDING, size=None, mtime=None)
            )
    rebuild = [i for i in check.missing_in_index if i not in no_frames]
    for start in range(0, len(rebuild), 4096):
        ids = rebuild[start : start + 4096]
        means = np.stack([frames.get(i).astype(np.float32).mean(axis=0) for i in ids])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        index.replace(ids, means)
    space.save_index(index)
    check.repaired = {
        "vectors_removed": len(check.extra_in_index),
        "frames_removed": len(check.extra_frames),
        "vectors_rebuilt": len(rebuild),
        "set_pending": len(no_frames),
    }


def check_report_space(db: Database, space: Space, *, repair: bool = False) -> SpaceCheck:
    """Compare a report space with the reports table; repair removes extras (missing ones need the model)."""
    index = space.load_index()
    with db.session() as s:
        expected = np.asarray(sorted(s.scalars(select(Report.id)).all()), dtype=np.int64)
    index_ids = index.ids()
    check = SpaceCheck(
        space=space.name,
        kind="report",
        db_count=int(expected.size),
        index_count=index.ntotal,
        frames_count=None,
        missing_in_index=np.setdiff1d(expected, index_ids).tolist(),
        extra_in_index=np.setdiff1d(index_ids, expected).tolist(),
    )
    if repair and check.extra_in_index:
        index.remove(check.extra_in_index)
        space.save_index(index)
        check.repaired = {"vectors_removed": len(check.extra_in_index)}
    return check


def verify_data_dir(data_dir: Path, db: Database, *, repair: bool = False) -> list[SpaceCheck]:
    """Check (and with ``repair`` fix) every space of a data dir."""
    from echosearch.index import list_spaces

    spaces = list_spaces(data_dir)
    n_video = sum(sp.info.kind == "video" for sp in spaces)
    checks = []
    for sp in spaces:
        if sp.info.kind == "video":
            checks.append(check_video_space(db, sp, multi=n_video > 1, repair=repair))
        else:
            checks.append(check_report_space(db, sp, repair=repair))
    return checks
