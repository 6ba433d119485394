"""Who may call: bearer tokens, roles, the bad-token lockout per client and the rate limit per token.

- No ``Authorization`` header, or a token that is unknown, expired, revoked or of a disabled
  account: 401 (with ``WWW-Authenticate: Bearer``).
- A client address that sent ``bad_token_failures`` bad tokens within the window: 429 for every
  request of that address until the lockout ends (``Retry-After``), good tokens included.
- A token over its rate: 429 with ``Retry-After``.
- A role below the endpoint's: 403.

The client address is the connection's, or the one a trusted reverse proxy forwards (uvicorn's
``--forwarded-allow-ips``; default: a proxy on the same machine).
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from echosearch.accounts import Caller
from echosearch.api.errors import ApiError
from echosearch.api.state import ApiState

_bearer = HTTPBearer(auto_error=False, description="An API token: `echosearch tokens create USER`.")


async def state_of(request: Request) -> ApiState:
    # async: no I/O, so no trip through the thread pool (each costs under load)
    return request.app.state.api


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def authenticated(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """The caller of a request with a valid bearer token (see the module doc for the refusals). A
    plain function: its database lookup runs in the thread pool, not on the event loop."""
    api: ApiState = request.app.state.api
    client = client_of(request)
    wait = api.bad_tokens.retry_after(client)
    if wait > 0:
        raise ApiError(
            429,
            "too_many_bad_tokens",
            "too many requests with bad tokens from this address; wait before trying again",
            headers=_retry_after(wait),
        )
    header = request.headers.get("authorization")
    challenge = {"WWW-Authenticate": "Bearer"}
    if not header:
        raise ApiError(
            401, "missing_token", "send an API token: Authorization: Bearer TOKEN", headers=challenge
        )
    scheme, _, token = header.partition(" ")
    caller = api.accounts.authenticate_token(token.strip()) if scheme.lower() == "bearer" else None
    if caller is None:
        api.bad_tokens.failed(client)
        raise ApiError(401, "invalid_token", "the token is unknown, expired or revoked", headers=challenge)
    wait = api.rate.allow(f"token:{caller.token_id}")
    if wait > 0:
        raise ApiError(
            429, "rate_limited", "this token is over its request rate; slow down", headers=_retry_after(wait)
        )
    request.state.caller = caller  # for the access log
    return caller


def require(role: str):  # noqa: ANN201
    """A dependency: the authenticated caller, when its role is ``role`` or above (else 403)."""

    async def dependency(caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
        if not caller.may(role):
            raise ApiError(403, "forbidden", f"this needs the {role} role; {caller.name} is a {caller.role}")
        return caller

    dependency.__name__ = f"require_{role}"
    return dependency


Viewer = Annotated[Caller, Depends(require("viewer"))]
Indexer = Annotated[Caller, Depends(require("indexer"))]
Admin = Annotated[Caller, Depends(require("admin"))]
State = Annotated[ApiState, Depends(state_of)]
