"""Column types that make every string storable on both backends, whoever writes it.

Text reaches the database from places nobody controls: DICOM headers (a fuzzed or broken file is
attacker-controlled), file names (a name that is not UTF-8 arrives with lone surrogates, Python's
``surrogateescape``), reports, queries, failure reasons. SQLite takes almost anything; PostgreSQL
rejects NUL (0x00) in text, enforces ``VARCHAR(n)``, and no UTF-8 encoder (psycopg's, sqlite3's)
takes a lone surrogate. One bad value used to fail the whole transaction: a batch of clips, a
failure record, an audit row. So the columns themselves clean what is bound to them
(:class:`SafeString`, :class:`SafeText`, :class:`SafeJSON`), and no writer can forget:

- NUL characters are removed;
- lone surrogates become ``\\xNN`` (the byte a ``surrogateescape`` surrogate stands for, as
  :func:`echosearch.paths.storable_path` writes it) or ``\\udNNN`` (any other), so the text encodes;
- a value longer than its ``VARCHAR(n)`` is cut to ``n`` characters. For identifiers
  (``SafeString(n, key=True)``: UIDs, paths, names that rows are looked up by) the cut keeps a
  digest of the whole value at its end, so two long values that share their first ``n``
  characters stay two rows, and a lookup with the same long value (bound through the same type)
  finds its row.

Valid text within its length is bound unchanged (the common case costs one ``encode``). The DDL is
the plain type's (``impl``), so migrations and the schema comparison see ``String``/``Text``/``JSON``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.types import TypeDecorator

_SURROGATE = re.compile("[\ud800-\udfff]")
#: How a too-long key ends: ``~`` and 16 hex digits of the SHA-256 of the whole value.
KEY_DIGEST_CHARS = 17


def _escape_surrogate(m: re.Match) -> str:
    cp = ord(m.group())
    return f"\\x{cp - 0xDC00:02x}" if 0xDC80 <= cp <= 0xDCFF else f"\\u{cp:04x}"


def clean_text(value: str) -> str:
    """``value`` without NUL characters and with lone surrogates escaped (see the module doc)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATE.sub(_escape_surrogate, value)
    return value


def storable_text(value: str, length: int | None = None, *, key: bool = False) -> str:
    """``value`` as a column of ``length`` characters (None: unbounded) can store it on every backend.

    ``key=True``: a value cut to length ends with ``~`` and a digest of the whole original value."""
    text = clean_text(value)
    if length is None or len(text) <= length:
        return text
    if key and length > KEY_DIGEST_CHARS:
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[: KEY_DIGEST_CHARS - 1]
        return f"{text[: length - KEY_DIGEST_CHARS]}~{digest}"
    return text[:length]


def storable_json(value: Any) -> Any:
    """A JSON document with every string (keys included) through :func:`clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value


def stored_form(column: Any, value: Any) -> Any:
    """What ``column`` (a mapped attribute: ``Video.sop_uid``) stores for ``value``. Keys kept in
    memory and compared with keys loaded from the database (the indexer's dedupe by SOP UID) go
    through this, so a hostile over-long value matches its stored, cut form."""
    kind = getattr(column, "type", None)
    return kind.process_bind_param(value, None) if isinstance(kind, TypeDecorator) else value


class SafeString(TypeDecorator):
    """``String(length)`` that stores any str: cleaned and cut to length (``key=True``: with a digest)."""

    impl = String
    cache_ok = True

    def __init__(self, length: int | None = None, *, key: bool = False, **kwargs: Any) -> None:
        super().__init__(length, **kwargs)
        self.length, self.key = length, key  # both in the statement cache key (SQLAlchemy reads them)

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, str):
            return storable_text(value, self.length, key=self.key)
        return value


class SafeText(TypeDecorator):
    """``Text`` that stores any str (NULs removed, lone surrogates escaped; no length limit)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return clean_text(value) if isinstance(value, str) else value


class SafeJSON(TypeDecorator):
    """``JSON`` whose strings are cleaned: PostgreSQL stores ``\\u0000`` in a json value but then
    fails every query that reads that string as text (``->>``)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return storable_json(value)
