"""Which database a data dir belongs to (``<data>/database.json``), so it is never opened with another.

The data dir's FAISS indexes and frame stores are keyed by the database's video ids. Opened with a
different database (a forgotten ``--db``: a fresh, empty SQLite file; a typo in the server name),
search would quietly return nothing or, worse, other rows' metadata, and an index run would write
ids that collide. So the first open records the database's identity (backend, host, port, name:
never a user or a password) and later opens with another database are refused with the fix.
``echosearch db migrate --data DIR`` moves the record along with the metadata.

A data dir from before this record holds its metadata in ``echosearch.db``: that SQLite file is
taken as its record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from echosearch.errors import EchosearchError

BINDING_FILE = "database.json"


class WrongDatabase(EchosearchError):
    """A data dir opened with a database other than the one its vectors belong to."""


def identity(url: str, data_dir: Path | None = None) -> str:
    """A database's identity without credentials: ``postgresql://HOST:PORT/DB``, ``sqlite:///ABS/PATH``,
    or ``sqlite:///./NAME`` for a SQLite file inside ``data_dir`` (a data dir moved or restored
    elsewhere keeps its own database)."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database or ""
        if db in ("", ":memory:"):
            return "sqlite://"
        path = Path(db).expanduser().resolve()
        if data_dir is not None and path.parent == Path(data_dir).expanduser().resolve():
            return f"sqlite:///./{path.name}"
        return f"sqlite:///{path}"
    host = u.host or u.query.get("host") or "localhost"
    if isinstance(host, tuple):
        host = host[0]
    return f"{backend}://{host}:{u.port or 5432}/{u.database or ''}"


def recorded(data_dir: Path) -> str | None:
    """The identity the data dir records, the legacy ``echosearch.db`` as SQLite's, else None."""
    from echosearch.store.db import DB_FILENAME, url_for_data_dir

    try:
        return json.loads((data_dir / BINDING_FILE).read_text())["database"]
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable record: verify reports it; do not lock a site out over it
    return identity(url_for_data_dir(data_dir), data_dir) if (data_dir / DB_FILENAME).is_file() else None


def record(data_dir: Path, url: str) -> None:
    """Write the record (atomically; owner-only like the rest of the data dir)."""
    path = data_dir / BINDING_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"database": identity(url, data_dir)}, f)
    os.replace(tmp, path)


def check_binding(data_dir: Path, url: str) -> None:
    """Refuse ``url`` for a data dir that belongs to another database; record it for a new one."""
    want = recorded(data_dir)
    have = identity(url, data_dir)
    if want is None:
        if data_dir.is_dir():
            try:
                record(data_dir, url)
            except OSError:  # a read-only copy of a data dir: reading still works
                pass
        return
    if want != have:
        how = "pass that database with --db URL or $ECHOSEARCH_DB"
        if want.startswith("sqlite") and not have.startswith("sqlite"):
            how = "move its metadata first with `echosearch db migrate --from OLD --to NEW --data DIR`"
        raise WrongDatabase(f"{data_dir} belongs to the database {want}, not {have}: {how}")
