"""What one API process holds: the Engine (opened once), the accounts, and its handle on the state
the server's workers share (throttles, jobs, index generation: :mod:`echosearch.api.runtime`)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from echosearch.accounts import Accounts, Caller
from echosearch.api.runtime import GENERATION_CHECK_S, Runtime, SharedFailureThrottle, SharedRateLimiter
from echosearch.search import Engine


@dataclass
class ApiSettings:
    """Limits and switches of ``echosearch serve`` (each has a command-line option)."""

    #: Results one request may page through (``offset + k``).
    max_results: int = 1000
    #: Body of an ordinary request (JSON for index/relabel), and of a clip upload.
    max_request_bytes: int = 1024 * 1024
    max_upload_bytes: int = 200 * 1024 * 1024
    #: Bad tokens from one client address within the window that lock it out (429) for the lockout.
    bad_token_failures: int = 10
    bad_token_window_s: float = 60.0
    bad_token_lockout_s: float = 60.0
    #: Requests per minute per token (0: no limit) and the burst above that rate it allows.
    rate_per_minute: float = 1200.0
    rate_burst: int = 100
    #: Server-side folders that indexers may ask to index (none: the index endpoint is off).
    index_roots: tuple[Path, ...] = ()
    #: Load the model when the app starts (else on the first text or upload query).
    preload_model: bool = True
    #: Workers of an index job (0: read clips in the job's thread).
    index_workers: int = 0
    #: The runtime file the server's workers share (None: a private one for this process).
    runtime_path: Path | None = None


@dataclass
class ApiState:
    engine: Engine
    accounts: Accounts
    settings: ApiSettings
    bad_tokens: SharedFailureThrottle = field(init=False)
    rate: SharedRateLimiter = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        path = s.runtime_path
        if path is None:  # a private file, removed with this state
            path = Path(tempfile.mkdtemp(prefix="echosearch-api-")) / "runtime.sqlite3"
            weakref.finalize(self, shutil.rmtree, path.parent, True)
        self.runtime = Runtime(path)
        self.bad_tokens = SharedFailureThrottle(
            self.runtime, s.bad_token_failures, s.bad_token_window_s, s.bad_token_lockout_s
        )
        self.rate = SharedRateLimiter(self.runtime, s.rate_per_minute, s.rate_burst)
        self._generation = self.runtime.generation()
        self._checked = time.monotonic()
        self._reloading = threading.Lock()
        from echosearch.api.jobs import JobRunner

        self.jobs = JobRunner(self)

    def engine_for(self, caller: Caller) -> Engine:
        """The Engine with the audit user of this request thread set to the caller (call it in the
        endpoint's own thread: FastAPI may run dependencies in another); reloaded first when
        another worker's job changed the index."""
        self._follow_generation()
        self.engine.who = caller.who
        return self.engine

    def index_changed(self) -> None:
        """This worker changed the index (and reloaded its Engine): the other workers will reload."""
        self._generation = self.runtime.bump_generation()

    def _follow_generation(self) -> None:
        now = time.monotonic()
        if now - self._checked < GENERATION_CHECK_S or not self._reloading.acquire(blocking=False):
            return
        try:
            self._checked = now
            generation = self.runtime.generation()
            if generation != self._generation:
                self.engine.reload()
                self._generation = generation
        finally:
            self._reloading.release()
