"""Index and relabel through the API (indexers): start a job, poll it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from echosearch.api.errors import ApiError, bad_parameter, not_found
from echosearch.api.jobs import QueueFull, index_work, relabel_work
from echosearch.api.responses import ApiJSON
from echosearch.api.security import Indexer, State
from echosearch.api.shapes import PREFIX

router = APIRouter(prefix=PREFIX, tags=["jobs"])
PATH_PARAMS = ("paths", "reports", "tasks", "thresholds")  # server-side files a job names


class IndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=100, description="Files or folders on the server, under an --index-root."
    )
    reports: str | None = Field(None, max_length=4096, description="A reports CSV on the server.")
    prune: bool = False
    retry_failed: bool = False


class RelabelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: str | None = Field(None, max_length=4096, description="A task file on the server.")
    thresholds: str | None = Field(None, max_length=4096, description="A thresholds file on the server.")


def _allowed(api, name: str, value: str) -> str:  # noqa: ANN001
    """A server-side path an indexer named, when it exists under one of the --index-root folders."""
    roots = api.settings.index_roots
    if not roots:
        raise ApiError(
            403,
            "indexing_disabled",
            "this server indexes no server-side path (start it with `echosearch serve --index-root DIR`)",
        )
    path = Path(value).expanduser()
    resolved = path.resolve()
    if not any(resolved.is_relative_to(Path(r).resolve()) for r in roots):
        raise bad_parameter(name, f"{value} is not under an index root ({', '.join(map(str, roots))})")
    if not resolved.exists():
        raise bad_parameter(name, f"no such file or folder: {value}")
    return str(resolved)


def _private(params: dict, engine) -> dict:  # noqa: ANN001
    """A job's parameters as the audit log keeps them: server-side paths (which may name MRN
    folders) as keyed marks (:func:`echosearch.sources.keyed_path`), everything else as it is."""
    from echosearch.errors import EchosearchError
    from echosearch.sources import keyed_path

    try:
        key = engine.archive.site_key()
    except EchosearchError:  # no usable key: the paths still go (as bare marks)
        key = None

    def mark(value):  # noqa: ANN001, ANN202
        if isinstance(value, str):
            return keyed_path(value, key)
        return [mark(v) for v in value] if isinstance(value, list) else value

    return {k: mark(v) if k in PATH_PARAMS else v for k, v in params.items()}


def _accepted(api, caller, kind: str, params: dict, work) -> ApiJSON:  # noqa: ANN001
    engine = api.engine_for(caller)
    try:
        job = api.jobs.submit(kind, params, caller.who, work)
    except QueueFull as exc:
        raise ApiError(429, "too_many_jobs", str(exc), headers={"Retry-After": "60"}) from None
    engine.audit.record(f"{kind}_job", {"job": job.id, **_private(params, engine)})
    return ApiJSON(job.to_dict(), status_code=202, headers={"Location": f"{PREFIX}/jobs/{job.id}"})


@router.post("/index", status_code=202, summary="Index server-side files into the served space (indexers)")
def index(caller: Indexer, api: State, body: IndexRequest) -> ApiJSON:
    """Starts `echosearch index PATHS` as a job; poll ``/jobs/{id}``."""
    paths = [_allowed(api, "paths", p) for p in body.paths]
    reports = _allowed(api, "reports", body.reports) if body.reports else None
    params = {"paths": paths, "reports": reports, "prune": body.prune, "retry_failed": body.retry_failed}
    work = index_work(api, paths, reports, body.prune, body.retry_failed)
    return _accepted(api, caller, "index", params, work)


@router.post("/relabel", status_code=202, summary="Recompute the zero-shot labels (indexers)")
def relabel(caller: Indexer, api: State, body: Annotated[RelabelRequest | None, Body()] = None) -> ApiJSON:
    """Starts `echosearch relabel` as a job (the model's tasks, or server-side task/threshold files)."""
    body = body or RelabelRequest()
    tasks = _allowed(api, "tasks", body.tasks) if body.tasks else None
    thresholds = _allowed(api, "thresholds", body.thresholds) if body.thresholds else None
    if tasks or thresholds:  # a broken file is the request's fault, and is said now
        from echosearch.errors import EchosearchError
        from echosearch.labels.calibration import load_thresholds
        from echosearch.labels.tasks import load_tasks

        for name, path, load in (("tasks", tasks, load_tasks), ("thresholds", thresholds, load_thresholds)):
            try:
                if path:
                    load(path)
            except EchosearchError as exc:
                raise bad_parameter(name, str(exc)) from None
    params = {"tasks": tasks, "thresholds": thresholds}
    return _accepted(api, caller, "relabel", params, relabel_work(api, tasks, thresholds))


@router.get("/jobs", summary="Recent jobs, newest first (indexers)")
def jobs(caller: Indexer, api: State) -> ApiJSON:
    return ApiJSON({"results": [j.to_dict() for j in api.jobs.list()]})


@router.get("/jobs/{job_id}", summary="One job: state, summary or error (indexers)")
def job(caller: Indexer, api: State, job_id: Annotated[str, PathParam(max_length=32)]) -> ApiJSON:
    found = api.jobs.get(job_id)
    if found is None:
        raise not_found(f"no job {job_id} (jobs are kept in memory until the server restarts)")
    return ApiJSON(found.to_dict())
