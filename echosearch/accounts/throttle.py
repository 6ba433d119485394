"""In-memory throttles for a process: failed attempts per client (lockout) and requests per token.

Both are per process (the API server, a UI server) and bounded in memory; the per-account lockout
that must hold across processes lives in the database (:class:`echosearch.accounts.Accounts`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

#: Keys remembered at most (oldest forgotten first): an attacker cycling through keys costs bounded memory.
MAX_KEYS = 10_000


def failures_in_window(
    earlier: Iterable[float], now: float, window_s: float, failures: int
) -> tuple[list[float], bool]:
    """A key's failure times after one more at ``now`` (those within the window), and whether they
    reach ``failures``: then a lockout starts and the times are forgotten. The one rule of both
    throttles, this process's and the API workers' shared one (:mod:`echosearch.api.runtime`)."""
    times = [t for t in earlier if t >= now - window_s] + [now]
    return ([], True) if len(times) >= failures else (times, False)


def take_one(level: float, last: float, now: float, rate: float, burst: float) -> tuple[float, float]:
    """A token bucket of ``level`` at ``last``, refilled at ``rate`` a second up to ``burst``, asked for
    one request at ``now``: (its level after, 0 when the request is allowed else the seconds to wait)."""
    level = min(burst, level + max(0.0, now - last) * rate)
    return (level - 1.0, 0.0) if level >= 1.0 else (level, (1.0 - level) / rate)


class FailureThrottle:
    """``failures`` failed attempts from one key (a client address, an account name) within
    ``window_s`` lock that key for ``lockout_s``. Thread-safe."""

    def __init__(
        self,
        failures: int = 10,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures, self.window_s, self.lockout_s = failures, window_s, lockout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: it may now)."""
        with self._lock:
            until = self._locked.get(key)
            if until is None:
                return 0.0
            left = until - self._clock()
            if left <= 0:
                del self._locked[key]
                return 0.0
            return left

    def failed(self, key: str) -> float:
        """Record one failure of ``key``; the lockout it now has (0 when none)."""
        now = self._clock()
        with self._lock:
            earlier = self._seen.pop(key, None) or ()
            times, locked = failures_in_window(earlier, now, self.window_s, self.failures)
            self._seen[key] = deque(times)
            while len(self._seen) > MAX_KEYS:
                self._seen.popitem(last=False)
            if locked:
                self._locked[key] = now + self.lockout_s
                if len(self._locked) > MAX_KEYS:
                    for stale in [k for k, t in self._locked.items() if t <= now]:
                        del self._locked[stale]
                return self.lockout_s
            return 0.0

    def succeeded(self, key: str) -> None:
        """A success forgets the key's earlier failures (not a lockout in force)."""
        with self._lock:
            self._seen.pop(key, None)


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute on average, bursts up to ``burst``.
    ``per_minute <= 0`` turns it off. Thread-safe."""

    def __init__(
        self, per_minute: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, int(per_minute // 6)))
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str) -> float:
        """Take one request from ``key``'s bucket: 0 when allowed, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            level, last = self._buckets.pop(key, (self.burst, now))
            level, wait = take_one(level, last, now, self.rate, self.burst)
            self._buckets[key] = (level, now)
            while len(self._buckets) > MAX_KEYS:
                self._buckets.popitem(last=False)
            return wait
