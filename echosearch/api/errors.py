"""Errors as the API answers them: one JSON shape, never a stack trace.

Every error body is ``{"error": CODE, "message": TEXT}``, plus ``"parameter": NAME`` when one
parameter is to blame (and ``"errors"`` listing each one when several are). A :class:`UsageError`
from the Engine is a 400 with its message; anything unexpected is logged with its traceback on the
server and answered with a generic 500 (:mod:`echosearch.api.guard` catches it).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from echosearch.api.responses import ApiJSON
from echosearch.errors import EchosearchError, UsageError

log = logging.getLogger("echosearch.api")

INTERNAL = {"error": "internal", "message": "internal error; the server's log has the details"}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An answer other than 2xx: status, a short machine-readable code and a sentence for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        parameter: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.parameter, self.headers, self.extra = parameter, headers, extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.parameter is not None:
            out["parameter"] = self.parameter
        out.update(self.extra)
        return out


def bad_parameter(name: str, message: str, **extra: Any) -> ApiError:
    return ApiError(400, "bad_parameter", f"{name}: {message}", parameter=name, **extra)


def not_found(message: str, **extra: Any) -> ApiError:
    return ApiError(404, "not_found", message, **extra)


def _parameter_of(loc: tuple | list) -> str:
    """``("query", "k")`` -> ``k``; ``("body", "paths", 0)`` -> ``paths``."""
    parts = [str(p) for p in loc if p not in ("query", "path", "body", "header", "cookie", "form")]
    return parts[0] if parts else "body"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every kind of error into the one JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> ApiJSON:
        return ApiJSON(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> ApiJSON:
        errors = [
            {"parameter": _parameter_of(e.get("loc", ())), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"parameter": "request", "message": "invalid"}
        body = {
            "error": "bad_parameter",
            "message": f"{first['parameter']}: {first['message']}",
            "parameter": first["parameter"],
            "errors": errors,
        }
        return ApiJSON(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> ApiJSON:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = {404: "no such endpoint (see /api/v1/docs)", 405: "method not allowed here"}.get(
            exc.status_code, str(exc.detail)
        )
        return ApiJSON({"error": code, "message": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(UsageError)
    async def _usage(request: Request, exc: UsageError) -> ApiJSON:
        return ApiJSON({"error": "bad_request", "message": str(exc)}, status_code=400)

    @app.exception_handler(EchosearchError)
    async def _echosearch(request: Request, exc: EchosearchError) -> ApiJSON:
        # a failure the server can explain (a damaged index, a missing model): the operator's to fix,
        # and its message may name server paths, so it goes to the log and the client learns only that
        log.error("cannot answer %s %s: %s", request.method, request.url.path, exc)
        body = {"error": "unavailable", "message": "the server cannot answer this now; its log says why"}
        return ApiJSON(body, status_code=503)
