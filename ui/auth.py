"""The optional password gate of the browser UI.

The site config (``<data>/site.yaml``) holds only an scrypt hash of the password, never the password:
anyone who can read the data dir still cannot log in with what is there. No hash, no gate (a
single-user workstation). Set it with ``echosearch ui set-password``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

import yaml

from echosearch.errors import UsageError
from echosearch.fsutil import PRIVATE, atomic_write_text

SITE_CONFIG = "site.yaml"
MIN_PASSWORD_LENGTH = 8
# scrypt cost: ~50 ms and 16 MiB per check, slow enough to make guessing costly.
_N, _R, _P = 2**14, 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64 fields): the only form in which a password is stored."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches a hash made by :func:`hash_password` (constant-time compare)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


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


def _write_site_config(data_dir: str | Path, config: dict[str, Any]) -> Path:
    path = site_config_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=True), mode=PRIVATE)
    return path


def password_hash(data_dir: str | Path) -> str | None:
    """The stored hash, or None when the UI has no password."""
    ui = load_site_config(data_dir).get("ui") or {}
    value = ui.get("password_hash") if isinstance(ui, dict) else None
    return str(value) if value else None


def set_password(data_dir: str | Path, password: str) -> Path:
    """Store the hash of a new UI password (other site settings are kept)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    config = load_site_config(data_dir)
    ui = config.get("ui") if isinstance(config.get("ui"), dict) else {}
    ui["password_hash"] = hash_password(password)
    config["ui"] = ui
    return _write_site_config(data_dir, config)


def clear_password(data_dir: str | Path) -> bool:
    """Remove the UI password (the UI opens without a gate); True when there was one."""
    config = load_site_config(data_dir)
    ui = config.get("ui") if isinstance(config.get("ui"), dict) else {}
    had = bool(ui.pop("password_hash", None))
    if had:
        config["ui"] = ui
        _write_site_config(data_dir, config)
    return had


def check_login(data_dir: str | Path, password: str) -> bool:
    """True when the UI has no password, or ``password`` is the right one."""
    stored = password_hash(data_dir)
    return stored is None or verify_password(password, stored)
