"""One clip: its record, similar clips, labels, nearest reports, thumbnail and preview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from echosearch.api import shapes
from echosearch.api.errors import not_found
from echosearch.api.responses import ApiJSON
from echosearch.api.routes.common import Paging, Where, filters, found
from echosearch.api.security import State, Viewer

router = APIRouter(prefix=f"{shapes.PREFIX}/clips", tags=["clips"])

VideoId = Annotated[int, PathParam(ge=1, le=2**62, description="The clip's video id.")]


def _indexed(engine, video_id: int) -> None:  # noqa: ANN001
    if video_id not in engine.index:
        raise not_found(f"no indexed clip {video_id}")


@router.get("/{video_id}", summary="A clip: study, view, labels, report excerpt")
def clip(caller: Viewer, api: State, video_id: VideoId) -> ApiJSON:
    engine = api.engine_for(caller)
    hit = found(lambda: engine.video(video_id))
    engine.audit.record("clip", {"video_id": video_id})
    return ApiJSON(shapes.video(hit.to_dict(), caller))


@router.get("/{video_id}/similar", summary="Clips most like this one (other studies by default)")
def similar(
    caller: Viewer,
    api: State,
    video_id: VideoId,
    page: Paging,
    where: Where = None,
    include_same_study: bool = False,
) -> ApiJSON:
    """As `echosearch similar VIDEO_ID --json`."""
    engine = api.engine_for(caller)
    _indexed(engine, video_id)
    chosen = filters(engine, where)
    result = engine.search_clip(
        video_id, k=page.window, filters=chosen, exclude_same_study=not include_same_study
    )
    return ApiJSON(page.of(result.to_dict(), caller))


@router.get("/{video_id}/labels", summary="The clip's zero-shot labels")
def labels(caller: Viewer, api: State, video_id: VideoId) -> ApiJSON:
    """As `echosearch labels VIDEO_ID --json`: ``{"target", "model", "labels"}``."""
    engine = api.engine_for(caller)
    hit = found(lambda: engine.video(video_id))
    return ApiJSON({"target": video_id, "model": engine.model_name, "labels": hit.labels})


@router.get("/{video_id}/reports", summary="The report texts nearest the clip")
def reports(caller: Viewer, api: State, video_id: VideoId, page: Paging) -> ApiJSON:
    """As `echosearch similar VIDEO_ID --reports --json` (needs reports indexed with --reports)."""
    engine = api.engine_for(caller)
    _indexed(engine, video_id)
    result = found(lambda: engine.nearest_reports(video_id, k=page.window))
    return ApiJSON(page.of(result.to_dict()))


def _file(api, caller, video_id: int, kind: str) -> FileResponse:  # noqa: ANN001
    engine = api.engine_for(caller)
    hit = found(lambda: engine.video(video_id))
    stored = getattr(hit, kind)
    root = Path(engine.data_dir).resolve()
    path = Path(stored).resolve() if stored else None
    if path is None or not path.is_relative_to(root) or not path.is_file():
        raise not_found(f"clip {video_id} has no {kind}")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{video_id}/thumbnail", summary="A still of the clip (masked to the ultrasound sector)")
def thumbnail(caller: Viewer, api: State, video_id: VideoId) -> FileResponse:
    return _file(api, caller, video_id, "thumbnail")


@router.get("/{video_id}/preview", summary="A small animated preview of the clip (WebP)")
def preview(caller: Viewer, api: State, video_id: VideoId) -> FileResponse:
    return _file(api, caller, video_id, "preview")
