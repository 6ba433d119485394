"""Distributor: where the readers run. The seam a distributed engine (Ray, Dask, Slurm) implements later.

The runner only ever calls ``distributor.map_unordered(fn, jobs, cfg)`` and consumes results as they
arrive; ``fn(job, cfg)`` is a plain picklable function and ``cfg`` a picklable dataclass, so a
distributor that ships them to other machines needs nothing else from the other parts.

``LocalDistributor`` runs ``fn`` in a process pool with a bounded number of jobs in flight: results
that the model has not consumed yet are at most ``max_in_flight`` clips, so memory stays flat on any
archive size, and the workers keep reading while the main process runs the model.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrashedJob:
    """A job whose worker process died (twice: once among others, once alone): the caller records it."""

    job: Any
    reason: str


class Distributor(Protocol):
    """Runs ``fn(job, cfg)`` for every job and yields the results in completion order."""

    def map_unordered(
        self, fn: Callable[[Any, Any], Any], jobs: Iterable[Any], cfg: Any
    ) -> Iterator[Any]: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class InlineDistributor:
    """Everything in this process, one job at a time (``--workers 0``: debugging, tiny archives)."""

    def start(self) -> None:
        pass

    def map_unordered(self, fn: Callable[[Any, Any], Any], jobs: Iterable[Any], cfg: Any) -> Iterator[Any]:
        for job in jobs:
            yield fn(job, cfg)

    def close(self) -> None:
        pass


def _init_worker(parent: int | None = None) -> None:
    """Readers are single-threaded: the cores belong to the model in the main process; and they die
    with it (see :func:`die_with_parent`).

    The environment variables are read when torch / OpenMP initialise, which in a fresh (spawned)
    worker happens later, on the first job that imports them.
    """
    die_with_parent(parent)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None, poll: float = 0.5) -> None:
    """End this process when ``parent`` (default: the current parent) dies.

    A kill -9 of ``echosearch index`` used to leave each reader (~850 MB) running for minutes,
    finishing jobs nobody would collect. On Linux the kernel sends SIGKILL at once
    (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon thread also checks every ``poll`` seconds
    whether the parent changed (the process was re-parented) and exits. (The kernel's signal
    follows the parent *thread* that started the worker; the pool is started and used by the
    runner's thread for the whole run, so that is the run's lifetime.)
    """
    import signal
    import threading
    import time

    parent = parent or os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the thread below still works
            pass
    if os.getppid() != parent:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _warm() -> None:
    """Import the reader's dependencies (numpy, pydicom, PyAV, torch) ahead of the first real job."""
    import echosearch.indexer.reader  # noqa: F401


class LocalDistributor:
    """A pool of ``workers`` processes with at most ``max_in_flight`` jobs submitted and unconsumed.

    Processes are started with ``spawn`` (not ``fork``): the parent holds a threaded torch runtime
    and open database connections, neither of which survives a fork safely.
    """

    def __init__(self, workers: int, max_in_flight: int | None = None) -> None:
        if workers < 1:
            raise ValueError("LocalDistributor needs at least one worker (use InlineDistributor for 0)")
        self.workers = workers
        self.max_in_flight = max_in_flight or 4 * workers
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
        return self._pool

    def start(self) -> None:
        """Start the workers now (they import their libraries while the caller plans the run)."""
        pool = self._executor()
        for _ in range(self.workers):
            pool.submit(_warm)

    def map_unordered(self, fn: Callable[[Any, Any], Any], jobs: Iterable[Any], cfg: Any) -> Iterator[Any]:
        """Results in completion order. A worker that dies (a decoder segfault, the OOM killer) breaks
        the pool: it is restarted and the jobs that were in flight are retried one at a time, so the
        one that kills its worker again is yielded as a :class:`CrashedJob` and the run goes on."""
        pending: dict[Future, tuple[Any, bool]] = {}  # future -> (job, submitted alone)
        ready: deque[Any] = deque()
        suspects: deque[Any] = deque()
        it = iter(jobs)
        exhausted = False
        while True:
            pool = self._executor()
            if suspects:
                if not pending:
                    job = suspects.popleft()
                    pending[pool.submit(fn, job, cfg)] = (job, True)
            else:
                while not exhausted and len(pending) + len(ready) < self.max_in_flight:
                    try:
                        job = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[pool.submit(fn, job, cfg)] = (job, False)
            if ready:
                yield ready.popleft()
                continue
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            crashed = False
            for f in done:
                job, alone = pending.pop(f)
                try:
                    ready.append(f.result())
                except BrokenProcessPool:
                    crashed = True
                    if alone:
                        ready.append(CrashedJob(job, "the reader process died while reading this file"))
                    else:
                        suspects.append(job)
            if crashed:
                log.warning(
                    "a reader process died; restarting the readers and retrying %d jobs", len(pending)
                )
                suspects.extend(job for job, _alone in pending.values())
                pending.clear()
                self._restart()

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_distributor(workers: int, max_in_flight: int | None = None) -> Distributor:
    """``workers == 0``: inline; otherwise a local process pool."""
    return InlineDistributor() if workers <= 0 else LocalDistributor(workers, max_in_flight)


def default_workers() -> int:
    """Readers for this machine: one core is left to the model (which uses the rest through torch)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores - 1))
