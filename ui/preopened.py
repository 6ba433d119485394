"""An Engine opened before the UI server listens (by :mod:`echosearch.ui.serve`), for the app to
take on its first run instead of opening its own.

Plain module state, not Streamlit's cache: Streamlit's cached functions only exist once its server
runs, after the Engine was opened. The app takes the Engine once (``take``); Streamlit's
``cache_resource`` then holds it for every later session, as if the app had opened it itself.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()
_OPENED: dict[tuple[str, str | None], Any] = {}


def put(root: str, space: str | None, engine: Any) -> None:
    with _LOCK:
        _OPENED[(root, space)] = engine


def take(root: str, space: str | None) -> Any | None:
    """The Engine opened for this data dir and space (None: the default space), once; else None."""
    with _LOCK:
        return _OPENED.pop((root, space), None)
