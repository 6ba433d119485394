"""The outermost layer of the API: request size limits, the catch-all for bugs, and the access log.

- **Size**: a request whose ``Content-Length`` is over the limit is refused (413) before any of it
  is read; one without (chunked) is counted as it arrives and cut off at the limit. Uploads (the
  paths in ``upload_paths``) have their own, larger limit.
- **Bugs**: an exception nobody handled is logged with its traceback here and answered with a
  generic 500 JSON body: no stack trace, no exception text ever reaches a client.
- **Access log**: one line per request with the route's template (``/api/v1/studies/{uid}``), never
  the path or query as sent: they may carry a study UID, an accession number or a query's words.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.exceptions import HTTPException

from echosearch.api.errors import INTERNAL
from echosearch.api.responses import dumps

log = logging.getLogger("echosearch.api")
access = logging.getLogger("echosearch.api.access")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Guard:
    """ASGI middleware: see the module doc."""

    def __init__(
        self,
        app: Any,
        *,
        max_request_bytes: int,
        max_upload_bytes: int,
        upload_paths: Iterable[str] = (),
        public_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.public_paths = frozenset(public_paths)  # logged as they are (the docs: no identifiers)
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_paths = frozenset(upload_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        limit = self.max_upload_bytes if scope.get("path") in self.upload_paths else self.max_request_bytes

        async def send_tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                await _reply(send_tracked, 413, _too_large(limit))
                return
            await self.app(scope, _limited(receive, limit), send_tracked)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), self._route(scope))
            if not status["sent"]:
                await _reply(send_tracked, 500, INTERNAL)
        finally:
            caller = (scope.get("state") or {}).get("caller")
            access.info(
                "%s %s %s %.1fms %s",
                scope.get("method"),
                self._route(scope),
                status["code"],
                1000 * (time.perf_counter() - started),
                getattr(caller, "who", "-"),
            )

    def _route(self, scope: Scope) -> str:
        """The matched route's template; a path that matched none is not logged (it may be anything)."""
        path = getattr(scope.get("route"), "path", None)
        if path:
            return path
        return scope.get("path") if scope.get("path") in self.public_paths else "(no route)"


def _too_large(limit: int) -> dict[str, str]:
    return {"error": "too_large", "message": f"the request is larger than {limit} bytes"}


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that refuses (413) once more than ``limit`` body bytes have arrived."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # an HTTPException passes FastAPI's body parsing untouched and becomes the 413 answer
                raise HTTPException(413, f"the request is larger than {limit} bytes")
        return message

    return wrapped


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
