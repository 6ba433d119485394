"""The API's JSON response: numpy numbers, dates and paths serialised, NaN and infinity as null."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse


def _default(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays
        return obj.tolist()
    if isinstance(obj, dt.datetime | dt.date):
        return obj.isoformat()
    if isinstance(obj, Path | set | frozenset):
        return str(obj) if isinstance(obj, Path) else sorted(obj)
    return str(obj)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(content: Any) -> bytes:
    try:
        text = json.dumps(content, default=_default, ensure_ascii=False, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: JSON has neither
        text = json.dumps(_finite(json.loads(json.dumps(content, default=_default))), ensure_ascii=False)
    return text.encode("utf-8")


class ApiJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
