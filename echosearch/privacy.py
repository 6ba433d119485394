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
import re
import secrets
from pathlib import Path

from echosearch.errors import EchosearchError
from echosearch.fsutil import PRIVATE, atomic_write_bytes
from echosearch.paths import make_private_dir

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
    make_private_dir(path.parent)
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


FINGERPRINT_SETTING = "site_key_fingerprint"


def key_fingerprint(key: bytes) -> str:
    """A short public name for a key (16 hex characters of an HMAC under it): says which key a
    data dir uses, reveals nothing about the key itself."""
    return hmac.new(key, b"echosearch site key fingerprint", hashlib.sha256).hexdigest()[:16]


def _restore_hint(data_dir: Path) -> str:
    return (
        f"restore the data dir's own key from a backup with `echosearch key import BACKUP --data {data_dir}` "
        "(made by `echosearch key export`)"
    )


def site_key_for(data_dir: str | os.PathLike, db, *, create: bool = True) -> bytes | None:  # noqa: ANN001
    """The site key of a data dir, checked against the fingerprint its database recorded.

    Every patient and accession key in the database is an HMAC under this key; a replaced key would
    quietly turn the same patients into new ones and make MRN and accession lookups find nothing. So:
    a database with no fingerprint yet records the key's (a new data dir creates the key when
    ``create``; an older one adopts the key it has); a missing key, or a different one, is refused
    with a message on how to restore it. ``create=False`` (readers) returns None for a data dir that
    has no key and no hashes yet.
    """
    from sqlalchemy import func, select

    from echosearch.store.schema import Patient, SiteSetting, Study

    data_dir = Path(data_dir)
    path = data_dir / KEY_FILE
    with db.session() as s:
        row = s.get(SiteSetting, FINGERPRINT_SETTING)
        recorded = row.value if row is not None else None
        hashed = s.scalar(select(func.count()).select_from(Patient)) or s.scalar(
            select(func.count()).select_from(Study).where(Study.accession_key.is_not(None))
        )
    if not path.exists():
        if recorded is not None or hashed:
            what = f"fingerprint {recorded}" if recorded else "the key its patients were hashed with"
            raise SiteKeyError(
                f"the site key {path} is missing; this data dir needs {what}: {_restore_hint(data_dir)}. "
                "A new key would turn every patient into a new one and break MRN and accession lookups"
            )
        if not create:
            return None
    key = load_or_create_site_key(data_dir)
    found = key_fingerprint(key)
    if recorded is None:
        with db.session() as s:
            if s.get(SiteSetting, FINGERPRINT_SETTING) is None:
                s.add(SiteSetting(name=FINGERPRINT_SETTING, value=found))
    elif recorded != found:
        raise SiteKeyError(
            f"the site key {path} (fingerprint {found}) is not the key this data dir was created with "
            f"(fingerprint {recorded}): {_restore_hint(data_dir)}"
        )
    return key


def export_site_key(data_dir: str | os.PathLike, db, out: str | os.PathLike) -> str:  # noqa: ANN001
    """Copy the (checked) site key to ``out`` (created 0600, never overwritten); its fingerprint."""
    key = site_key_for(data_dir, db, create=False)
    if key is None:
        raise SiteKeyError(f"{data_dir} has no site key yet (it is created by the first `echosearch index`)")
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SiteKeyError(f"{out} exists; choose a new file for the backup") from None
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key_fingerprint(key)


def import_site_key(data_dir: str | os.PathLike, db, backup: str | os.PathLike) -> str:  # noqa: ANN001
    """Install a backed-up key as ``data_dir/secret.key`` (0600) when it is the one the database
    recorded (or the database recorded none and has no key yet); its fingerprint."""
    from echosearch.store.schema import SiteSetting

    try:
        key = Path(backup).read_bytes()
    except OSError as e:
        raise SiteKeyError(f"cannot read {backup}: {e.strerror}") from None
    if len(key) < 16:
        raise SiteKeyError(f"{backup} is not a site key ({len(key)} bytes)")
    found = key_fingerprint(key)
    with db.session() as s:
        row = s.get(SiteSetting, FINGERPRINT_SETTING)
        recorded = row.value if row is not None else None
    if recorded is not None and recorded != found:
        raise SiteKeyError(f"{backup} has fingerprint {found}; this data dir needs {recorded}")
    path = Path(data_dir) / KEY_FILE
    if path.exists():
        current = path.read_bytes()
        if current == key:
            return found
        if recorded is None:
            raise SiteKeyError(f"{path} exists and holds another key; move it away first")
        # the wrong key (the one the refusal complained about): kept aside, never deleted
        os.replace(path, path.with_name(f"{KEY_FILE}.{key_fingerprint(current)}.replaced"))
    atomic_write_bytes(path, key, mode=PRIVATE)
    if recorded is None:
        with db.session() as s:
            s.add(SiteSetting(name=FINGERPRINT_SETTING, value=found))
    return found


#: Longest query text the audit log keeps (a 1 MB query used to be stored as one row).
AUDIT_TEXT_LIMIT = 500
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{8}")
#: A labelled value (``mrn = 123``, ``accession: A7``, ``name is Doe``), or any other token.
_PARTS = re.compile(
    r"(?P<label>\b(?:mrn|accession|patient(?:[ _]?id)?|name)\s*(?:=|:|is)\s*)(?P<value>[^\s,;]+)"
    r"|(?P<token>[A-Za-z0-9][A-Za-z0-9._\-^/]*)",
    re.IGNORECASE,
)


def _looks_like_identifier(token: str) -> bool:
    """MRNs, accession numbers and UIDs (five or more digits), DICOM person names (``DOE^JANE``);
    a date, an EF value or a clinical word is not one."""
    if "^" in token:
        return True
    return sum(c.isdigit() for c in token) >= 5 and not _DATE.fullmatch(token)


def redact_text(text: str, key: bytes | None, limit: int = AUDIT_TEXT_LIMIT) -> str:
    """``text`` for the audit log: at most ``limit`` characters, and anything that looks like an
    identifier (or follows ``mrn =``, ``accession:``, ``name is``...) replaced by ``<id:HASH>``, a
    prefix of its keyed hash: the same MRN gives the same mark, so an auditor can still follow it
    (and hash a known MRN to look for it), but the log holds no identifier in the clear."""

    def mark(value: str) -> str:
        return f"<id:{keyed_hash(value, key)[:12]}>" if key else "<id>"

    def part(m: re.Match) -> str:
        if m.group("label"):
            return m.group("label") + mark(m.group("value"))
        token = m.group("token")
        return mark(token) if _looks_like_identifier(token) else token

    out = _PARTS.sub(part, text if len(text) <= limit else text[:limit])
    if len(text) > limit:
        out += f" [... {len(text) - limit} more characters not kept]"
    return out


def redact_query(value, key: bytes | None):  # noqa: ANN001, ANN201
    """A query document (dicts, lists, strings, numbers) with every string through :func:`redact_text`
    and lists cut to 50 items."""
    if isinstance(value, str):
        return redact_text(value, key)
    if isinstance(value, dict):
        return {str(k)[:64]: redact_query(v, key) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [redact_query(v, key) for v in list(value)[:50]]
    return value
