"""Text search, query interpretation, and search by an uploaded clip."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from echosearch.api import shapes
from echosearch.api.errors import bad_parameter
from echosearch.api.responses import ApiJSON
from echosearch.api.routes.common import Paging, Where, filters
from echosearch.api.security import State, Viewer
from echosearch.errors import EchosearchError, UsageError
from echosearch.search import NoTemplateMatch

router = APIRouter(prefix=shapes.PREFIX, tags=["search"])

Text = Annotated[str, Query(min_length=1, max_length=2000, description="Free clinical text.")]


@router.get("/search", summary="Clips matching free clinical text")
def search(
    caller: Viewer,
    api: State,
    q: Text,
    page: Paging,
    where: Where = None,
    negative: Annotated[
        list[str] | None, Query(max_length=20, description="Push results away from this text (repeatable).")
    ] = None,
    literal: Annotated[bool, Query(description="Send the text to the model as typed.")] = False,
) -> ApiJSON:
    """As `echosearch search TEXT --json`: ``{"query", "model", "interpretation", "notes", "results": [...]}``."""
    engine = api.engine_for(caller)
    chosen = filters(engine, where)
    try:
        result = engine.search_text(
            q, k=page.window, filters=chosen, negatives=negative or (), literal=literal
        )
    except NoTemplateMatch as exc:
        raise bad_parameter("q", str(exc), suggestions=exc.suggestions) from None
    except UsageError as exc:
        raise bad_parameter("q", str(exc)) from None
    return ApiJSON(page.of(result.to_dict(), caller))


@router.get("/interpret", summary="How free text is understood, without searching")
def interpret(caller: Viewer, api: State, q: Text) -> ApiJSON:
    """As `echosearch interpret TEXT --json` for the served model."""
    engine = api.engine_for(caller)
    try:
        plan = engine.interpret(q)
    except UsageError as exc:
        raise bad_parameter("q", str(exc)) from None
    return ApiJSON(plan.to_dict())


@router.post("/similar", summary="Clips most like an uploaded clip (DICOM, AVI, MP4, ...)")
def similar_upload(
    caller: Viewer,
    api: State,
    file: Annotated[UploadFile, File(description="The clip file (size-limited).")],
    page: Paging,
    where: Where = None,
    include_same_study: bool = False,
) -> ApiJSON:
    """As `echosearch similar FILE --json`. The file is kept only while it is searched with."""
    engine = api.engine_for(caller)
    chosen = filters(engine, where)
    name = Path(file.filename or "upload").name[:200]
    with _saved(engine.data_dir, file, name) as path:
        try:
            result = engine.search_clip(
                str(path), k=page.window, filters=chosen, exclude_same_study=not include_same_study
            )
        except (UsageError, EchosearchError) as exc:  # an unreadable clip is the file's fault
            raise bad_parameter("file", str(exc).replace(str(path), name)) from None
    doc = page.of(result.to_dict(), caller)
    doc["query"] = {"upload": name, "study_uid": (doc.get("query") or {}).get("study_uid")}
    return ApiJSON(doc)


@contextmanager
def _saved(data_dir: Path, upload: UploadFile, name: str) -> Iterator[Path]:
    """The upload in the data dir's private ``uploads/`` (0600), checked to be a clip by its bytes,
    deleted when the search is done."""
    from echosearch.paths import make_private_dir
    from echosearch.uploads import check_upload
    from echosearch.video import formats

    head = upload.file.read(formats.HEAD_SIZE)
    if not head:
        raise bad_parameter("file", f"{name} is empty")
    try:
        fmt = check_upload(name, head)
    except UsageError as exc:
        raise bad_parameter("file", str(exc)) from None
    folder = data_dir / "uploads"
    make_private_dir(folder)
    path = folder / f"api-{secrets.token_hex(8)}{fmt.suffix}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(head)
            shutil.copyfileobj(upload.file, out, 1 << 20)
        yield path
    finally:
        path.unlink(missing_ok=True)
