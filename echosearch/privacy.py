"""Site-keyed pseudonyms for patient identifiers.

Patient IDs and accession numbers are never stored in the clear: they are replaced by an
HMAC-SHA256 under a per-site secret key. A keyed hash (rather than a plain hash) matters because
MRNs are short and guessable; without the key nobody can rebuild the table of ID -> hash, yet the
same site always maps the same MRN to the same key, so lookups by typed MRN still work.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from echosearch.errors import EchosearchError

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"
KEY_BYTES = 32


class SiteKeyError(EchosearchError):
    """The site key file exists but cannot be used (wrong size, unreadable)."""


def load_or_create_site_key(data_dir: str | os.PathLike) -> bytes:
    """Return the site key in ``data_dir/secret.key``, creating it (mode 0600) on first use.

    The file is created with ``O_EXCL`` and mode 0600 in one step, so the key is never readable by
    others, not even for an instant, and two processes racing to create it agree on one key.
    """
    path = Path(data_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = secrets.token_bytes(KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race; read its key below
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(key)
            log.info("created site key %s", path)
            return key
    try:
        key = path.read_bytes()
    except OSError as e:
        raise SiteKeyError(f"cannot read site key {path}: {e.strerror}") from None
    if len(key) < 16:
        raise SiteKeyError(f"site key {path} is too short ({len(key)} bytes); restore it from backup")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("site key %s is readable by others (mode %o); run chmod 600", path, mode)
    return key


def keyed_hash(value: str, key: bytes) -> str:
    """HMAC-SHA256 of ``value`` (stripped, UTF-8) under ``key``, as 64 hex characters.

    Surrounding whitespace is stripped because DICOM pads strings with spaces; an identifier typed by
    a user and one read from a file must hash the same.
    """
    if not key:
        raise ValueError("keyed_hash needs a non-empty key")
    return hmac.new(key, str(value).strip().encode("utf-8"), hashlib.sha256).hexdigest()
