"""Index and relabel jobs started through the API: one at a time, in a background thread, polled by id.

A job runs what the CLI runs (``echosearch index`` / ``relabel``) with the served model already
loaded, under the data dir's writer lock (a CLI writer running meanwhile makes the job fail with its
message, never wait), then reloads the served Engine so the next search sees the new clips and
labels. Jobs live in memory: a restart forgets them (the index runs themselves are in the database:
``/stats`` lists the last ones).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from echosearch.errors import EchosearchError

if TYPE_CHECKING:
    from echosearch.api.state import ApiState

log = logging.getLogger("echosearch.api.jobs")

#: Jobs waiting at most (more is a 429), and finished jobs remembered.
MAX_QUEUED = 10
KEEP_FINISHED = 100


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
    """One worker thread; jobs in the order they came."""

    def __init__(self, api: ApiState) -> None:
        self.api = api
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._work: dict[str, Callable[[], dict[str, Any]]] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, kind: str, params: dict[str, Any], who: str, work: Callable[[], dict[str, Any]]) -> Job:
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.state == "queued")
            if waiting >= MAX_QUEUED:
                raise QueueFull(f"{waiting} jobs are waiting already")
            job = Job(id=secrets.token_hex(6), kind=kind, submitted_by=who, params=params)
            self._jobs[job.id] = job
            self._work[job.id] = work
            self._forget_old()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="echosearch-jobs", daemon=True)
                self._thread.start()
        self._queue.put(job.id)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        with self._lock:
            return list(reversed(self._jobs.values()))

    def stop(self, timeout: float = 5.0) -> None:
        """Let the running job finish (up to ``timeout``); queued ones are dropped."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state in ("done", "failed")]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                job = self._jobs.get(job_id)
                work = self._work.pop(job_id, None)
            if job is None or work is None:
                continue
            job.state, job.started_at = "running", _now()
            try:
                job.summary = work()
                job.state = "done"
            except EchosearchError as exc:
                job.state, job.error = "failed", str(exc)
            except Exception:
                log.exception("job %s (%s) failed", job.id, job.kind)
                job.state, job.error = "failed", "internal error; the server's log has the details"
            job.finished_at = _now()
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
