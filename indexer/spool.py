"""Indexing what ``echosearch listen`` received: the spool, in small batches, with the same runner.

The receiver (:mod:`echosearch.pacs.scp`) leaves complete files at
``DATA/spool/received/<AE>/<study>/<series>/<sop>.dcm``; :class:`SpoolIndexer` indexes them a few
at a time (as soon as the oldest has waited ``wait`` seconds, or a batch is full), keying each clip
by its source (``dicom://AE/studies/...``), and removes a file only after the run that indexed it
committed. A file that cannot be read is recorded like a bad file and moved to
``DATA/spool/failed/`` for the administrator; nothing received is deleted unread. A crash at any
point leaves the files in the spool: the next start indexes them (an instance indexed just before
the crash is recognised by its SOP Instance UID and only removed).

The model is loaded once and reused by every batch; readers run in this process (a batch is small,
and a process pool per batch would cost more than it saves).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from sqlalchemy import select

from echosearch.indexer.distributor import InlineDistributor
from echosearch.indexer.reader import ReadJob
from echosearch.indexer.runner import IndexOptions, Runner
from echosearch.indexer.summary import IndexSummary
from echosearch.indexer.writer import Writer
from echosearch.lock import DataDirBusy
from echosearch.sources import InstanceRef, dimse_base
from echosearch.store.schema import STATUS_INDEXED, Failure, Video

log = logging.getLogger(__name__)

RECEIVED, FAILED = "received", "failed"


def spool_dirs(data_dir: Path) -> tuple[Path, Path]:
    root = data_dir / "spool"
    return root / RECEIVED, root / FAILED


def ref_of(spool: Path, path: Path) -> InstanceRef:
    """The source of a spooled file, from its place in the spool (see the module doc)."""
    ae, study, series, name = path.relative_to(spool).parts
    return InstanceRef(dimse_base(ae), study, series, name.removesuffix(".dcm"))


def pending_files(spool: Path) -> list[Path]:
    """Complete spooled files, oldest first (``.part`` files are still being written)."""
    files = [p for p in spool.glob("*/*/*/*.dcm")] if spool.is_dir() else []
    return sorted(files, key=lambda p: p.stat().st_mtime_ns)


class SpoolRunner(Runner):
    """A :class:`Runner` over a given list of spooled files."""

    def __init__(self, opts: IndexOptions, spool: Path, files: list[Path], encoder=None) -> None:
        super().__init__(opts, InlineDistributor(), encoder)
        self.spool, self.files = spool, files

    def _plan(self, writer: Writer) -> list[ReadJob]:
        indexed = self._indexed_sop_uids()
        self._load_known()
        self.summary.found = len(self.files)
        jobs = []
        for f in self.files:
            ref = ref_of(self.spool, f)
            if ref.sop_uid in indexed:
                self.summary.unchanged += 1
                continue
            st = f.stat()
            jobs.append(ReadJob(str(f), st.st_size, st.st_mtime_ns, source=ref.key))
        return jobs


class SpoolIndexer:
    """The indexing loop of ``echosearch listen`` (see the module doc)."""

    def __init__(self, opts: IndexOptions, batch: int = 16, wait: float = 2.0) -> None:
        self.opts = opts
        self.data_dir = Path(opts.data_dir).expanduser()
        self.spool, self.failed_dir = spool_dirs(self.data_dir)
        self.batch, self.wait = batch, wait
        self.encoder = None
        self.indexed = 0

    def due(self) -> list[Path]:
        """The next batch, when one is due (full, or its oldest file waited ``wait`` seconds)."""
        files = pending_files(self.spool)
        if not files:
            return []
        if len(files) >= self.batch or time.time() - files[0].stat().st_mtime >= self.wait:
            return files[: self.batch]
        return []

    def index_batch(self, files: list[Path]) -> IndexSummary:
        """Index ``files``; after the run committed, remove them (the unreadable moved aside)."""
        opts = dataclasses.replace(self.opts, paths=[], progress=False)
        runner = SpoolRunner(opts, self.spool, files, encoder=self.encoder)
        summary = runner.run()
        self.encoder = runner._encoder or self.encoder
        failed = self._failed_keys([ref_of(self.spool, f).key for f in files])
        for f in files:
            if ref_of(self.spool, f).key in failed:
                dest = self.failed_dir / f.relative_to(self.spool)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(f, dest)
            else:
                f.unlink(missing_ok=True)
            _prune_empty(f.parent, self.spool)
        self.indexed += summary.new
        log.info("indexed %d received instances (%d failed)", summary.new, summary.failed)
        return summary

    def _failed_keys(self, keys: list[str]) -> set[str]:
        from echosearch.store.db import open_db

        db = open_db(self.data_dir)
        try:
            with db.session() as s:
                bad = set(s.scalars(select(Failure.path).where(Failure.path.in_(keys))))
                ok = set(
                    s.scalars(select(Video.path).where(Video.path.in_(keys), Video.status == STATUS_INDEXED))
                )
            return bad - ok
        finally:
            db.close()

    def run(self, stop: threading.Event, poll: float = 0.2) -> None:
        """Index due batches until ``stop`` is set (the current batch is finished first)."""
        while not stop.is_set():
            files = self.due()
            if not files:
                stop.wait(poll)
                continue
            try:
                self.index_batch(files)
            except DataDirBusy as exc:  # an `echosearch index` run holds the data dir: try again soon
                log.info("%s; retrying", exc)
                stop.wait(2.0)


def _prune_empty(folder: Path, root: Path) -> None:
    """Remove empty series/study/AE folders up to ``root`` (a busy spool would grow a forest)."""
    while folder != root and folder.is_relative_to(root):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = folder.parent
