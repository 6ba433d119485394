"""From Engine results to the API's JSON: the CLI's ``--json`` shape, paged, with what the caller
may see.

- Clip ``path`` (a file on the server) is shown to admins only, ``null`` for everyone else.
- ``thumbnail`` and ``preview`` are the API's URLs for them (files the server sends to an
  authenticated caller), not paths on the server.
- A paged list carries ``offset``, ``k``, ``returned`` and ``next_offset`` (``null`` at the end).
"""

from __future__ import annotations

from typing import Any

from echosearch.accounts import Caller
from echosearch.api.errors import bad_parameter

PREFIX = "/api/v1"


def video(doc: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """One clip (a ``VideoHit.to_dict()``) as ``caller`` may see it."""
    out = dict(doc)
    vid = out.get("video_id")
    if not caller.may("admin"):
        out["path"] = None
    for kind in ("thumbnail", "preview"):
        out[kind] = f"{PREFIX}/clips/{vid}/{kind}" if out.get(kind) else None
    return out


def page_window(k: int, offset: int, max_results: int) -> int:
    """How many results to ask the Engine for: one more than the page, to know whether more follow."""
    if offset + k > max_results:
        raise bad_parameter("offset", f"offset + k must be at most {max_results} (got {offset + k})")
    return offset + k + 1


def paged(doc: dict[str, Any], k: int, offset: int, caller: Caller | None = None) -> dict[str, Any]:
    """A result document (``SearchResult.to_dict()``) cut to one page, clips shaped for ``caller``."""
    rows = doc.get("results") or []
    more = len(rows) > offset + k
    page = rows[offset : offset + k]
    if caller is not None:
        page = [video(r, caller) if "video_id" in r else r for r in page]
    return {
        **doc,
        "results": page,
        "offset": offset,
        "k": k,
        "returned": len(page),
        "next_offset": offset + k if more else None,
    }
