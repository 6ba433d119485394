"""Who the audit log names when a thread named nobody: the process's user (light: no other imports).

The CLI names the operating-system user running it (``cli:<user>``); the UI and the API name the
logged-in account per session or request thread instead (``engine.who``).
"""

from __future__ import annotations

import getpass
import os

_process_user: str | None = None


def os_user() -> str:
    """The operating-system user running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def set_process_user(who: str | None) -> None:
    """The name audit rows carry when the calling thread named no user."""
    global _process_user
    _process_user = who


def process_user() -> str | None:
    return _process_user
