"""What the worker processes of one ``echosearch serve`` share: throttles, jobs and the index generation.

``echosearch serve --workers N`` runs N processes (uvicorn's), each with its own Engine, so that a
2-core server answers on both cores. What must hold across them lives in one small SQLite file
(WAL, no fsync: it is state of a running server, not a record), created per server:

- the **bad-token lockout** per client address and the **rate limit** per token (a client must not
  get N times the tries by landing on N workers);
- the **jobs** (any worker answers ``GET /jobs/{id}``; one job runs at a time across the workers);
- the **generation** of the index: a worker that finished a job bumps it, the others reload their
  Engine when they see it change (checked at most every :data:`GENERATION_CHECK_S`).

Times are wall-clock seconds (``time.time``), the one clock processes share. Every operation is a
short transaction on a connection per thread; SQLite serialises the writers.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from echosearch.accounts.throttle import failures_in_window, take_one

#: Seconds between a worker's looks at the index generation (a reload is seen within this).
GENERATION_CHECK_S = 1.0
#: Keys (client addresses, tokens) remembered at most per table: an attacker cycling through
#: addresses costs bounded space.
MAX_KEYS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, times TEXT NOT NULL, locked_until REAL);
CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, level REAL NOT NULL, last REAL NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, doc TEXT NOT NULL, state TEXT NOT NULL, pid INTEGER
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Runtime:
    """The shared state file of one server (``path``); open it in every worker."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connection().executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (``BEGIN IMMEDIATE``): read-then-write is atomic across
        processes."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._connection().execute(sql, args).fetchall()

    # -------------------------------------------------------------- the index generation

    def generation(self) -> int:
        rows = self.read("SELECT value FROM meta WHERE key = 'generation'")
        return int(rows[0][0]) if rows else 0

    def bump_generation(self) -> int:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('generation', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1"
            )
            return int(db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])


class SharedFailureThrottle:
    """``failures`` failed attempts from one key within ``window_s`` lock the key for ``lockout_s``,
    across every worker of the server (the rule and the calls of the in-process
    :class:`echosearch.accounts.FailureThrottle`, its state in the runtime file)."""

    def __init__(
        self,
        runtime: Runtime,
        failures: int = 10,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime, self.failures, self.window_s, self.lockout_s = runtime, failures, window_s, lockout_s
        self._clock = clock

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""
        rows = self.runtime.read("SELECT locked_until FROM failures WHERE key = ?", (key,))
        if not rows or rows[0][0] is None:
            return 0.0
        return max(0.0, rows[0][0] - self._clock())

    def failed(self, key: str) -> float:
        """Record one failure of ``key``; the lockout it now has (0 when none)."""
        now = self._clock()
        with self.runtime.transaction() as db:
            row = db.execute("SELECT times FROM failures WHERE key = ?", (key,)).fetchone()
            times, lock = failures_in_window(
                json.loads(row[0]) if row else [], now, self.window_s, self.failures
            )
            locked = now + self.lockout_s if lock else None
            db.execute(
                "INSERT INTO failures (key, times, locked_until) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
                "SET times = excluded.times, locked_until = COALESCE(excluded.locked_until, locked_until)",
                (key, json.dumps(times), locked),
            )
            _bound(db, "failures", "COALESCE(locked_until, 0) < ?", now)
        return self.lockout_s if locked is not None else 0.0


class SharedRateLimiter:
    """A token bucket per key shared by the workers: ``per_minute`` requests a minute on average,
    bursts up to ``burst``; ``per_minute <= 0`` turns it off (the in-process
    :class:`echosearch.accounts.RateLimiter`'s interface)."""

    def __init__(
        self,
        runtime: Runtime,
        per_minute: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, int(per_minute // 6)))
        self._clock = clock

    def allow(self, key: str) -> float:
        """Take one request from ``key``'s bucket: 0 when allowed, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self.runtime.transaction() as db:
            row = db.execute("SELECT level, last FROM buckets WHERE key = ?", (key,)).fetchone()
            level, wait = take_one(*(row or (self.burst, now)), now, self.rate, self.burst)
            db.execute(
                "INSERT INTO buckets (key, level, last) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET level = excluded.level, last = excluded.last",
                (key, level, now),
            )
            if row is None:
                _bound(db, "buckets", "last < ?", now - 3600)
        return wait


def _bound(db: sqlite3.Connection, table: str, stale: str, arg: float) -> None:
    """Forget stale keys of ``table`` once it holds more than :data:`MAX_KEYS`."""
    if db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > MAX_KEYS:  # noqa: S608 - fixed names
        db.execute(f"DELETE FROM {table} WHERE {stale}", (arg,))  # noqa: S608


def pid_alive(pid: int | None) -> bool:
    """Whether a process of this machine still runs (a worker that died mid-job leaves its job behind)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def jobs_rows(runtime: Runtime, where: str = "", args: tuple = ()) -> list[dict[str, Any]]:
    """Job documents, newest first."""
    rows = runtime.read(f"SELECT doc FROM jobs {where} ORDER BY seq DESC", args)  # noqa: S608
    return [json.loads(r[0]) for r in rows]
