"""Password hashing: scrypt from the standard library, only the hash is ever stored.

``scrypt$N$r$p$salt$hash`` (base64 fields) carries its own cost parameters, so a later change of
cost still verifies older hashes. Each check costs ~50 ms and 16 MiB: cheap for one login, costly
for guessing (and logins are throttled on top: :mod:`echosearch.accounts.throttle`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from echosearch.errors import UsageError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # a 1 MB "password" must not cost a megabyte of scrypt per try
_N, _R, _P = 2**14, 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_password_rules(password: str) -> None:
    """A UsageError for a password that is too short or too long."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UsageError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64 fields): the only form in which a password is stored."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches a hash made by :func:`hash_password` (constant-time compare).
    With no stored hash it still spends the time of a check, so that an unknown account answers no
    faster than a known one."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    if not stored:
        verify_password(password, _DUMMY)
        return False
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


_DUMMY = hash_password("not a password of anyone", salt=b"\0" * 16)
