"""Writer: embedded clips -> database rows, frame store, FAISS; in transactions every N clips.

Crash safety comes from one fixed order per commit, with the database as the source of truth:

1. videos whose vectors will be *replaced* (a changed file) are first taken out of FAISS and the
   index is saved, so FAISS can never hold a stale vector for a row the database calls indexed;
2. rows are upserted in one transaction (ids come from the flush), the frames are appended to the
   frame store under those ids and fsynced, and only then the transaction commits;
3. the clip vectors are added to FAISS in memory and the index is saved atomically (every commit
   while it is small, at most every ``save_interval`` seconds when large).

A kill -9 between any two steps leaves: frames without a committed row (ignored, then removed),
or committed rows whose vectors are not in the saved FAISS file; :mod:`echosearch.indexer.reconcile` fixes
both at the start of the next run (vectors are rebuilt from the frame store), so a rerun ends
with DB, frame store and FAISS in agreement.

Labels (table ``labels``, with the video space's id) are written as the mapper made them, in the
encoding :mod:`echosearch.labels.encoding` owns (raw score, ``TASK.positive``, ``TASK.probability``,
estimate, class index and name); ``Video.view`` is the class of a categorical task named ``view``.
Patients and accession numbers arrive as keyed hashes (``ClipMeta.patient_key``/``accession_key``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import select

from echosearch.index import Space
from echosearch.indexer.mapper import Embedded
from echosearch.indexer.reader import ReadResult
from echosearch.store import queries as q
from echosearch.store.db import Database
from echosearch.store.schema import STATUS_INDEXED, Video, utcnow

log = logging.getLogger(__name__)

#: Save FAISS on every commit while the flat vectors take less than this; else by time.
SMALL_INDEX_BYTES = 256 << 20


def parse_study_date(value: str | None) -> dt.date | None:
    """DICOM ``YYYYMMDD`` -> date; anything unparsable -> None (a bad header must not fail the clip)."""
    if not value:
        return None
    try:
        return dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def mtime_of(job_mtime_ns: int) -> float:
    """How mtimes are stored (seconds as a float; compared for equality on the next run)."""
    return job_mtime_ns / 1e9


class Writer:
    """Buffers embedded clips and writes them in the crash-safe order described in the module doc."""

    def __init__(
        self,
        db: Database,
        space: Space,
        space_id: int,
        commit_every: int = 32,
        save_interval: float = 60.0,
    ) -> None:
        self.db = db
        self.space = space
        self.space_id = space_id
        self.commit_every = commit_every
        self.save_interval = save_interval
        self.index = space.load_index()
        self.frames = space.frames()
        self._buffer: list[Embedded] = []
        self._touched: list[ReadResult] = []
        self._last_save = time.monotonic()
        self._dirty = False
        self.committed = 0

    # ------------------------------------------------------------ buffering

    def add(self, items: Sequence[Embedded]) -> None:
        self._buffer.extend(items)
        if len(self._buffer) >= self.commit_every:
            self.commit()

    def touch(self, result: ReadResult) -> None:
        """Same content, new mtime: only the stat facts change (no model work)."""
        self._touched.append(result)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    # ------------------------------------------------------------ committing

    def commit(self) -> None:
        """Write the buffered clips (see the module doc for the order)."""
        items, self._buffer = self._buffer, []
        touched, self._touched = self._touched, []
        if not items and not touched:
            return
        paths = [it.read.job.key for it in items]
        with self.db.session() as s:
            existing = dict(s.execute(select(Video.path, Video.id).where(Video.path.in_(paths))).all())
        replaced = [existing[p] for p in paths if p in existing and existing[p] in self.index]
        if replaced:  # step 1: never leave a stale vector for a row that will describe new content
            self.index.remove(replaced)
            self._save_index()
        with self.db.session() as s:
            ids = [self._write_row(s, it) for it in items]
            for r in touched:
                q.upsert_video(s, r.job.key, size=r.job.size, mtime=mtime_of(r.job.mtime_ns))
            if items:
                q.upsert_labels(
                    s,
                    self.space_id,
                    [(vid, *row) for vid, it in zip(ids, items, strict=True) for row in it.labels],
                )
                self.frames.add_many(ids, [it.frame_embs for it in items])  # step 2: data before commit
        if items:  # step 3
            self.index.replace(ids, np.stack([it.clip_emb for it in items]))
            self._dirty = True
            self.committed += len(items)
            self.maybe_save()

    def _write_row(self, s, it: Embedded) -> int:
        meta, job = it.read.meta, it.read.job
        study = q.upsert_study(
            s,
            meta.study_instance_uid,
            accession_key=meta.accession_key,
            study_date=parse_study_date(meta.study_date),
            patient_key=meta.patient_key,
        )
        video = q.upsert_video(
            s,
            job.key,
            sop_uid=meta.sop_instance_uid,
            series_uid=meta.series_instance_uid,
            study_id=study.id,
            sha256=it.read.sha256,
            size=job.size,
            mtime=mtime_of(job.mtime_ns),
            frames=meta.frame_count,
            fps=meta.fps,
            rows=meta.rows,
            cols=meta.columns,
            manufacturer=meta.manufacturer,
            model=meta.model_name,
            view=it.view,
            status=STATUS_INDEXED,
            indexed_at=utcnow(),
            thumbnail_path=it.read.thumbnail,
            preview_path=it.read.preview,
        )
        return video.id

    # ------------------------------------------------------------ failures, pruning, saving

    def record_failure(self, result: ReadResult) -> None:
        with self.db.session() as s:
            q.record_failure(s, result.job.key, result.sha256, result.error or "", kind=result.error_kind)

    def record_path_failure(self, path: str, reason: str) -> None:
        """A path discovery could not look into (unreadable folder, dangling link, FIFO)."""
        with self.db.session() as s:
            q.record_failure(s, path, None, reason, kind="Unreadable")

    def prune(self, video_ids: Sequence[int]) -> int:
        """Mark gone files removed (DB first), then drop their vectors and frames."""
        ids = [int(i) for i in video_ids]
        if not ids:
            return 0
        with self.db.session() as s:
            q.mark_removed(s, ids)
        self.index.remove(ids)
        self.frames.remove(ids)
        self._save_index()
        return len(ids)

    def maybe_save(self, force: bool = False) -> None:
        small = self.index.ntotal * self.index.dim * 4 < SMALL_INDEX_BYTES
        due = time.monotonic() - self._last_save >= self.save_interval
        if self._dirty and (force or small or due):
            self._save_index()

    def _save_index(self) -> None:
        self.space.save_index(self.index)
        self._last_save = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        """Commit what is buffered and save the index."""
        self.commit()
        self.maybe_save(force=True)


def thumbnails_exist(data_dir: Path, video: Video) -> bool:
    """Both thumbnail files of a video are on disk (used by tests and ``verify``)."""
    return all(p and (data_dir / p).is_file() for p in (video.thumbnail_path, video.preview_path))
