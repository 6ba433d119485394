"""Index and relabel jobs started through the API: one at a time, in a background thread, polled by id.

A job runs what the CLI runs (``echosearch index`` / ``relabel``) with the served model already
loaded, under the data dir's writer lock (a CLI writer running meanwhile makes the job fail with its
message, never wait), then reloads the served Engine so the next search sees the new clips and
labels. Jobs live in the server's runtime file (:mod:`echosearch.api.runtime`): every worker of
``serve --workers N`` answers for every job; the worker that accepted a job runs it, once no other
job of the server runs, and bumps the index generation so the other workers reload. A restart
forgets the jobs (the index runs themselves are in the database: ``/stats`` lists the last ones).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from echosearch.api.runtime import jobs_rows, pid_alive
from echosearch.errors import EchosearchError

if TYPE_CHECKING:
    from echosearch.api.state import ApiState

log = logging.getLogger("echosearch.api.jobs")

#: Jobs waiting at most (more is a 429), and finished jobs remembered.
MAX_QUEUED = 10
KEEP_FINISHED = 100
#: Seconds between a waiting job's looks at whether another worker's job has finished.
WAIT_POLL_S = 0.5


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    id: str
    kind: str  # index | relabel
    submitted_by: str
    params: dict[str, Any]
    state: str = "queued"  # queued | running | done | failed
    submitted_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class QueueFull(Exception):
    pass


class JobRunner:
    """This worker's job thread; the jobs themselves are rows of the server's runtime file."""

    def __init__(self, api: ApiState) -> None:
        self.api = api
        self.runtime = api.runtime
        self._work: dict[str, Callable[[], dict[str, Any]]] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def submit(self, kind: str, params: dict[str, Any], who: str, work: Callable[[], dict[str, Any]]) -> Job:
        job = Job(id=secrets.token_hex(6), kind=kind, submitted_by=who, params=params)
        with self.runtime.transaction() as db:
            self._fail_orphans(db)
            waiting = db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0]
            if waiting >= MAX_QUEUED:
                raise QueueFull(f"{waiting} jobs are waiting already")
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
                "INSERT INTO jobs (id, seq, doc, state, pid) VALUES (?, ?, ?, ?, ?)",
                (job.id, seq, json.dumps(job.to_dict()), job.state, os.getpid()),
            )
            db.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'failed') AND seq <= ("
                "SELECT seq FROM jobs WHERE state IN ('done', 'failed') ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (KEEP_FINISHED,),
            )
        with self._lock:
            self._work[job.id] = work
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="echosearch-jobs", daemon=True)
                self._thread.start()
        self._queue.put(job.id)
        return job

    def get(self, job_id: str) -> Job | None:
        self._reap()
        rows = jobs_rows(self.runtime, "WHERE id = ?", (job_id,))
        return Job(**rows[0]) if rows else None

    def list(self) -> list[Job]:
        self._reap()
        return [Job(**doc) for doc in jobs_rows(self.runtime)]

    def _reap(self) -> None:
        with self.runtime.transaction() as db:
            self._fail_orphans(db)

    def stop(self, timeout: float = 5.0) -> None:
        """Let the running job finish (up to ``timeout``); this worker's queued ones fail."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            left = list(self._work)
            self._work.clear()
        for job_id in left:
            job = self.get(job_id)
            if job is not None and job.state == "queued":
                job.state, job.error, job.finished_at = (
                    "failed",
                    "the server stopped before the job ran",
                    _now(),
                )
                self._save(job)

    def _save(self, job: Job) -> None:
        with self.runtime.transaction() as db:
            db.execute(
                "UPDATE jobs SET doc = ?, state = ? WHERE id = ?",
                (json.dumps(job.to_dict()), job.state, job.id),
            )

    def _fail_orphans(self, db) -> None:  # noqa: ANN001
        """Jobs whose worker died (killed mid-job): failed, so that they neither block nor linger."""
        rows = db.execute("SELECT id, doc, pid FROM jobs WHERE state IN ('queued', 'running')").fetchall()
        for job_id, doc, pid in rows:
            if not pid_alive(pid):
                job = Job(**json.loads(doc))
                job.state, job.error, job.finished_at = (
                    "failed",
                    "the server worker running it stopped",
                    _now(),
                )
                db.execute(
                    "UPDATE jobs SET doc = ?, state = ? WHERE id = ?",
                    (json.dumps(job.to_dict()), "failed", job_id),
                )

    def _take_turn(self, job_id: str) -> bool:
        """Mark the job running once no job of the server runs; False when the worker is stopping."""
        while not self._stopping.is_set():
            with self.runtime.transaction() as db:
                self._fail_orphans(db)
                if db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'running'").fetchone()[0] == 0:
                    db.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (job_id,))
                    return True
            time.sleep(WAIT_POLL_S)
        return False

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                work = self._work.pop(job_id, None)
            job = self.get(job_id)
            if job is None or work is None or not self._take_turn(job_id):
                continue
            job.state, job.started_at = "running", _now()
            self._save(job)
            try:
                job.summary = work()
                job.state = "done"
            except EchosearchError as exc:
                job.state, job.error = "failed", str(exc)
            except Exception:
                log.exception("job %s (%s) failed", job.id, job.kind)
                job.state, job.error = "failed", "internal error; the server's log has the details"
            job.finished_at = _now()
            self._save(job)
            self.api.index_changed()
            log.info("job %s (%s) %s", job.id, job.kind, job.state)


def index_work(
    api: ApiState, paths: list[str], reports: str | None, prune: bool, retry_failed: bool
) -> Callable:
    """What an index job runs: the indexer on server-side paths, with the served model, then a reload."""

    def work() -> dict[str, Any]:
        from echosearch.indexer.runner import IndexOptions, run_index

        engine = api.engine
        opts = IndexOptions(
            paths=paths,
            data_dir=str(engine.data_dir),
            db=engine.db.connect_url,
            model=engine.model_name,
            workers=api.settings.index_workers,
            reports=reports,
            prune=prune,
            retry_failed=retry_failed,
            progress=False,
        )
        summary = run_index(opts, encoder=engine.encoder)
        engine.reload()
        return summary.to_dict()

    return work


def relabel_work(api: ApiState, tasks: str | None, thresholds: str | None) -> Callable:
    """What a relabel job runs: labels again from the frame store, under the writer lock, then a reload."""

    def work() -> dict[str, Any]:
        from echosearch.indexer.relabel import relabel_space
        from echosearch.labels.calibration import resolve_tasks
        from echosearch.lock import WriterLock
        from echosearch.store.db import open_db

        engine = api.engine
        task_list, chosen = resolve_tasks(engine.encoder.bundle, tasks, thresholds)
        with WriterLock(engine.data_dir, "echosearch serve: relabel job"):
            db = open_db(engine.data_dir, writer=True, db=engine.db.connect_url)
            try:
                summary = relabel_space(
                    db, engine.space, engine.space_id, engine.encoder, task_list, chosen, progress=False
                )
            finally:
                db.close()
        engine.reload()
        return summary.to_dict()

    return work
