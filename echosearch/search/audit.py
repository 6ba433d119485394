"""Timing and the audit log of every question asked, in one place.

Every search the Engine answers goes through :meth:`Audit.answered`: it times the answer, stamps
``elapsed_ms`` on the result and appends one audit row naming the user of the calling thread (UI
sessions and API requests are threads; ``channel:account``, e.g. ``ui:alice``, ``api:pacs-plugin``),
else the process's user (the CLI sets ``cli:<OS user>``: :mod:`echosearch.whoami`), with
identifiers replaced by keyed hashes
(:func:`echosearch.privacy.redact_query`). An audit failure is logged, never raised: it must not
break a search, but it must be visible.

A server (``echosearch serve``) writes its rows from a background thread
(:meth:`Audit.write_in_background`): a request then does not wait for a database commit of its own
(about a millisecond of a similar-clips answer), rows keep the time they were asked, a burst is written
in one transaction, and :meth:`Audit.flush` (on close, and before the audit log is read) writes what
is waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from echosearch.errors import EchosearchError
from echosearch.search.context import OpenSpace
from echosearch.store import queries as q
from echosearch.store.schema import utcnow
from echosearch.whoami import process_user

log = logging.getLogger(__name__)

R = TypeVar("R")


class Audit:
    """Who asks (per thread), how long answers take, and the audit rows."""

    def __init__(self, archive: OpenSpace):
        self.archive = archive
        self._local = threading.local()
        self._writer: _BackgroundWriter | None = None

    def write_in_background(self) -> None:
        """From now on, rows are queued and written by a background thread (see the module doc)."""
        if self._writer is None:
            self._writer = _BackgroundWriter(self.archive)

    def flush(self) -> None:
        """Write every queued row now (a no-op when rows are written as they come)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Write what is queued and stop the background thread."""
        if self._writer is not None:
            self._writer.stop()
            self._writer = None

    @property
    def who(self) -> str | None:
        """The user the audit log names for queries made from this thread (else the process's)."""
        return getattr(self._local, "who", None) or process_user()

    @who.setter
    def who(self, value: str | None) -> None:
        self._local.who = value

    def answered(
        self, action: str, compute: Callable[[], R], query: Callable[[R], dict[str, Any]] | None = None
    ) -> R:
        """Run ``compute``; stamp the time it took on its result; audit ``query(result)`` (default:
        the result's own ``query``, which names studies by UID once they are resolved)."""
        started = time.perf_counter()
        result = compute()
        if hasattr(result, "elapsed_ms"):
            result.elapsed_ms = 1000 * (time.perf_counter() - started)
        self.record(action, query(result) if query is not None else getattr(result, "query", {}))
        return result

    def record(self, action: str, query: dict[str, Any]) -> None:
        """Append one audit row: the query text bounded, identifiers keyed."""
        from echosearch.privacy import redact_query

        try:
            key = self.archive.site_key()
        except EchosearchError:  # a missing key must not break a search; identifiers still go
            key = None
        row = {"action": action, "query": redact_query(query, key), "who": self.who, "at": utcnow()}
        if self._writer is not None:
            self._writer.put(row)
            return
        _write(self.archive, [row])


def _write(archive: OpenSpace, rows: list[dict[str, Any]]) -> None:
    try:
        with archive.db.session() as s:
            for row in rows:
                q.audit(s, **row)
    except Exception as exc:  # auditing must never break a search, but it must be visible
        log.warning("could not write %d audit row(s): %s", len(rows), exc)


class _BackgroundWriter:
    """A daemon thread that writes queued audit rows, up to ``BATCH`` per transaction."""

    BATCH = 500

    def __init__(self, archive: OpenSpace) -> None:
        self.archive = archive
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="echosearch-audit", daemon=True)
        self._thread.start()

    def put(self, row: dict[str, Any]) -> None:
        self._queue.put(row)

    def flush(self) -> None:
        self._queue.join()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            rows = [self._queue.get()]
            while len(rows) < self.BATCH:
                try:
                    rows.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = None in rows
            rows_to_write = [r for r in rows if r is not None]
            if rows_to_write:
                _write(self.archive, rows_to_write)
            for _ in rows:
                self._queue.task_done()
            if stop:
                return
