"""``/health``: is the server up (no token needed; says nothing about the archive)."""

from __future__ import annotations

from fastapi import APIRouter

from echosearch import __version__
from echosearch.api.responses import ApiJSON
from echosearch.api.shapes import PREFIX

router = APIRouter(prefix=PREFIX, tags=["health"])


@router.get("/health", summary="Liveness (no authentication)")
def health() -> ApiJSON:
    return ApiJSON({"status": "ok", "version": __version__})
