"""The UI's login: every person logs in with their own account (``echosearch users add``).

The accounts, their roles and the throttling of failed logins are :mod:`echosearch.accounts`' (the
API shares them). This module holds what only the UI needs:

- which Streamlit sessions have logged in, so that the server refuses **uploads** from the others:
  Streamlit accepts a file for any open session before the script runs (``/_stcore/upload_file``),
  so the app wraps the server's upload manager (:func:`guard_uploads`) instead of trusting the page;
- the old shared password in ``<data>/site.yaml`` (``ui: password_hash``), read only to refuse to
  open an archive that had one until it has accounts: a site that had a gate must not lose it.

With no account at all (a workstation, the demo) the UI opens without a login, for this machine
only: ``echosearch ui`` refuses any other address until accounts exist.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import yaml

from echosearch.errors import UsageError
from echosearch.fsutil import PRIVATE, atomic_write_text

log = logging.getLogger(__name__)

SITE_CONFIG = "site.yaml"
LEGACY_PASSWORD_NOTE = (
    "The UI no longer has a shared password: every person logs in with their own account. "
    "Create them with `echosearch users add NAME --role viewer|indexer|admin --data DIR`, "
    "then remove the old password with `echosearch ui clear-password --data DIR`."
)

_authed: set[str] = set()
_authed_lock = threading.Lock()


# ---------------------------------------------------------------- sessions that logged in


def mark_authed(session_id: str | None) -> None:
    if session_id:
        with _authed_lock:
            _authed.add(session_id)


def forget(session_id: str | None) -> None:
    with _authed_lock:
        _authed.discard(session_id or "")


def is_authed(session_id: str) -> bool:
    with _authed_lock:
        return session_id in _authed


class UploadRefused(Exception):
    """An upload from a session that has not logged in."""


def guard_uploads(manager: Any) -> bool:
    """Make ``manager.add_file`` (Streamlit's uploaded-file manager) refuse files of sessions that have
    not logged in: the bytes are dropped, never kept for the session. Idempotent; True when the
    guard is in place."""
    if manager is None or not hasattr(manager, "add_file"):
        return False
    if getattr(manager.add_file, "_echosearch_guard", False):
        return True
    original = manager.add_file

    def add_file(session_id: str, file: Any, *args: Any, **kwargs: Any) -> None:
        if not is_authed(session_id):
            log.warning("refused an upload from a session that has not logged in")
            try:
                from starlette.exceptions import HTTPException
            except ImportError:  # pragma: no cover - Streamlit's server is Starlette
                raise UploadRefused("log in first") from None
            raise HTTPException(status_code=403, detail="log in first")
        return original(session_id, file, *args, **kwargs)

    add_file._echosearch_guard = True  # type: ignore[attr-defined]
    manager.add_file = add_file
    return True


def guard_server_uploads() -> bool:
    """:func:`guard_uploads` on the running Streamlit server's manager (none under AppTest)."""
    try:
        from streamlit.runtime import Runtime
    except ImportError:  # pragma: no cover
        return False
    if not Runtime.exists():
        return False
    return guard_uploads(Runtime.instance().uploaded_file_mgr)


# ---------------------------------------------------------------- the old shared password


def site_config_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / SITE_CONFIG


def load_site_config(data_dir: str | Path) -> dict[str, Any]:
    """The site config as a dict (empty when there is none)."""
    path = site_config_path(data_dir)
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a YAML mapping")
    return data


def password_hash(data_dir: str | Path) -> str | None:
    """The old shared password's hash, or None (an archive that never had one, or cleared)."""
    ui = load_site_config(data_dir).get("ui") or {}
    value = ui.get("password_hash") if isinstance(ui, dict) else None
    return str(value) if value else None


def clear_password(data_dir: str | Path) -> bool:
    """Remove the old shared password from the site config (other settings are kept); True when
    there was one."""
    config = load_site_config(data_dir)
    ui = config.get("ui") if isinstance(config.get("ui"), dict) else {}
    had = bool(ui.pop("password_hash", None))
    if had:
        config["ui"] = ui
        path = site_config_path(data_dir)
        atomic_write_text(path, yaml.safe_dump(config, sort_keys=True), mode=PRIVATE)
    return had
