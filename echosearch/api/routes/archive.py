"""The archive: labels and their statistics, counts, the caller, and (admins) failures and audit."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query

from echosearch.api.responses import ApiJSON
from echosearch.api.routes.common import found
from echosearch.api.security import Admin, State, Viewer
from echosearch.api.shapes import PREFIX
from echosearch.store import queries as q

router = APIRouter(prefix=PREFIX, tags=["archive"])

Limit = Annotated[int, Query(ge=1, le=1000, description="Rows per page.")]
Skip = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]


@router.get("/me", summary="Who this token is")
def me(caller: Viewer) -> ApiJSON:
    return ApiJSON({"name": caller.name, "role": caller.role})


@router.get("/labels", summary="The labels this space stores")
def labels(caller: Viewer, api: State) -> ApiJSON:
    engine = api.engine_for(caller)
    return ApiJSON({"model": engine.model_name, "labels": engine.label_tasks()})


@router.get("/labels/{task}/stats", summary="One label across the archive")
def label_stats(
    caller: Viewer, api: State, task: Annotated[str, Path(min_length=1, max_length=128)]
) -> ApiJSON:
    """Count, mean, quantiles and histogram; classes of a categorical label; the positive share."""
    engine = api.engine_for(caller)
    return ApiJSON(found(lambda: engine.label_summary(task)))


@router.get("/stats", summary="Counts, spaces, index kinds and sizes, recent runs, failures by kind")
def stats(caller: Viewer, api: State) -> ApiJSON:
    """As `echosearch stats --json` (the data dir's path for admins only)."""
    engine = api.engine_for(caller)
    info = engine.stats()
    if not caller.may("admin"):
        info["data_dir"] = None
    return ApiJSON(info)


@router.get("/failures", summary="Files the indexer could not read (admins)")
def failures(
    caller: Admin,
    api: State,
    limit: Limit = 100,
    offset: Skip = 0,
    kind: Annotated[list[str] | None, Query(max_length=20, description="Only these kinds.")] = None,
) -> ApiJSON:
    engine = api.engine_for(caller)
    with engine.db.session() as s:
        rows, total = q.failure_rows(s, limit=limit, offset=offset, kinds=kind or ())
        results = [
            {
                "path": engine.archive.location(r.path),  # admins: the file, through its source root
                "kind": r.kind,
                "reason": r.reason,
                "count": r.count,
                "first_seen": r.first_seen,
                "last_seen": r.last_seen,
            }
            for r in rows
        ]
    engine.audit.record("failures_read", {"offset": offset, "limit": limit})
    return ApiJSON(_rows(results, total, limit, offset))


@router.get("/audit", summary="The audit log, newest first (admins)")
def audit(
    caller: Admin,
    api: State,
    limit: Limit = 100,
    offset: Skip = 0,
    who: Annotated[
        str | None, Query(max_length=128, description="Only this account, e.g. api:alice.")
    ] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[dt.datetime | None, Query(description="ISO date and time.")] = None,
) -> ApiJSON:
    engine = api.engine_for(caller)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    engine.audit.flush()  # the rows of the requests answered so far, written from the queue
    with engine.db.session() as s:
        rows, total = q.audit_rows(s, limit=limit, offset=offset, who=who, action=action, since=since)
        results = [{"id": r.id, "at": r.at, "who": r.who, "action": r.action, "query": r.query} for r in rows]
    engine.audit.record("audit_read", {"who": who, "action": action})
    return ApiJSON(_rows(results, total, limit, offset))


def _rows(results: list, total: int, limit: int, offset: int) -> dict:
    return {
        "results": results,
        "total": total,
        "offset": offset,
        "limit": limit,
        "returned": len(results),
        "next_offset": offset + limit if offset + limit < total else None,
    }
