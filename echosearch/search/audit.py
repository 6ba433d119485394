"""Timing and the audit log of every question asked, in one place.

Every search the Engine answers goes through :meth:`Audit.answered`: it times the answer, stamps
``elapsed_ms`` on the result and appends one audit row naming the user of the calling thread (UI
sessions and API requests are threads; ``channel:account``, e.g. ``ui:alice``, ``api:pacs-plugin``),
else the process's user (the CLI sets ``cli:<OS user>``: :mod:`echosearch.whoami`), with
identifiers replaced by keyed hashes
(:func:`echosearch.privacy.redact_query`). An audit failure is logged, never raised: it must not
break a search, but it must be visible.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from echosearch.errors import EchosearchError
from echosearch.search.context import OpenSpace
from echosearch.store import queries as q
from echosearch.whoami import process_user

log = logging.getLogger(__name__)

R = TypeVar("R")


class Audit:
    """Who asks (per thread), how long answers take, and the audit rows."""

    def __init__(self, archive: OpenSpace):
        self.archive = archive
        self._local = threading.local()

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
        query = redact_query(query, key)
        try:
            with self.archive.db.session() as s:
                q.audit(s, action=action, query=query, who=self.who)
        except Exception as exc:  # auditing must never break a search, but it must be visible
            log.warning("could not write the audit log: %s", exc)
