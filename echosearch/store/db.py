"""Opening the metadata database: engine, sessions, pragmas and schema upgrade.

Which database a data dir uses: ``--db URL`` (or ``db=`` in the Python API), else ``$ECHOSEARCH_DB``,
else ``sqlite:///<data_dir>/echosearch.db`` (:func:`database_url`). PostgreSQL (``postgresql://``,
through psycopg 3) is the backend for large sites: several index nodes, many readers. A data dir
remembers which database it belongs to (:mod:`echosearch.store.binding`), because its FAISS ids
are that database's row ids: opening it with another one is refused, not silently empty. For SQLite we set WAL (readers never block the writer and
always see a committed state), foreign keys (off by default in SQLite) and a busy timeout, and we
make SQLAlchemy's transactions real SQLite transactions (``BEGIN`` on first statement, reads
included) so that a session's SELECTs all see one snapshot.

A writer (``open_db(..., writer=True)``: index, relabel, repair) begins every transaction with
``BEGIN IMMEDIATE``. Its transactions read before they write; a deferred transaction that read
while another connection committed (a search writing the audit log) cannot upgrade to a write
lock, and SQLite then fails it at once with "database is locked", whatever the busy timeout.
Taking the write lock at BEGIN instead makes the indexer wait (busy timeout) for the short audit
insert, never fail. Readers stay deferred: in WAL mode they never block or get blocked.

PostgreSQL stays at its default, READ COMMITTED: each statement sees whole committed transactions
(the writer commits a batch of clips with their labels at once), though two statements of one
session may see two states. REPEATABLE READ would give SQLite's one snapshot per session, but fail
concurrent updates of one row (two API requests stamping one token's ``last_used_at``) where SQLite
only waits.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from echosearch.errors import EchosearchError
from echosearch.paths import DB_ENV, make_private_dir

log = logging.getLogger(__name__)

DB_FILENAME = "echosearch.db"
#: Seconds to wait for a database server before saying it cannot be reached (libpq's default: forever).
CONNECT_TIMEOUT = 10
IMMEDIATE_OPTION = "echosearch_begin_immediate"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class StoreError(EchosearchError):
    """The metadata database cannot be opened or upgraded."""


def url_for_data_dir(data_dir: str | Path) -> str:
    """The default SQLite URL of a data dir (``<data_dir>/echosearch.db``)."""
    return f"sqlite:///{Path(data_dir).expanduser().resolve() / DB_FILENAME}"


def normalise_url(url: str) -> str:
    """A checked SQLAlchemy URL; ``postgresql://`` (no driver named) means psycopg 3, our driver.

    Raises :class:`StoreError` for text that is not a database URL."""
    try:
        sa_url = make_url(url)
        backend = sa_url.get_backend_name()
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        raise StoreError(
            f"not a database URL: {url!r} (expected sqlite:///PATH or postgresql://USER@HOST/DB)"
        ) from exc
    if backend in ("postgresql", "postgres") and "+" not in sa_url.drivername:
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    return sa_url.render_as_string(hide_password=False)


def database_url(data_dir: str | Path, db: str | None = None) -> str:
    """The database of a data dir: ``db`` if given, else ``$ECHOSEARCH_DB``, else its SQLite file."""
    return normalise_url(db or os.environ.get(DB_ENV) or url_for_data_dir(data_dir))


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def has_database(data_dir: str | Path, db: str | None = None) -> bool:
    """Whether a data dir has been given a database: its SQLite file exists, or a server URL is set
    (a server database is checked by opening it)."""
    url = database_url(data_dir, db)
    return not is_sqlite(url) or Path(make_url(url).database or "").is_file()


#: How long SQLite waits for another connection's lock (busy timeout), and how long a step that SQLite
#: does not wait for by itself is retried.
BUSY_TIMEOUT_MS = 30000


def _locked(exc: BaseException) -> bool:
    return "database is locked" in str(getattr(exc, "orig", None) or exc)


def _when_unlocked(step):  # noqa: ANN001, ANN202
    """Run ``step``, retrying while SQLite reports "database is locked", up to the busy timeout.

    Why: SQLite skips its busy handler where waiting could deadlock, and fails at once instead:
    switching a new file to WAL while another connection holds the write lock (a process creating
    the same database at that moment), or a deferred transaction's read-then-write. Measured: the
    WAL switch fails in 0.0 s with a 3 s busy timeout while another connection writes.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            return step()
        except Exception as exc:
            if not _locked(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.5)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module doc)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            _when_unlocked(lambda: cur.execute("PRAGMA journal_mode=WAL"))
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        immediate = conn.get_execution_options().get(IMMEDIATE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, **kwargs) -> Engine:
    """An Engine for ``url``; SQLite gets WAL + foreign keys + busy timeout (see module doc),
    PostgreSQL a connect timeout (an unreachable server is an error, not a hang)."""
    sa_url = make_url(normalise_url(url))
    backend = sa_url.get_backend_name()
    if backend == "sqlite" and sa_url.database not in (None, "", ":memory:"):
        make_private_dir(Path(sa_url.database).parent)
    if backend == "postgresql":
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", CONNECT_TIMEOUT)
        kwargs.setdefault("pool_pre_ping", True)  # a restarted server: reconnect, not fail a search
    try:
        engine = create_engine(sa_url, **kwargs)
    except ImportError as exc:
        hint = " (pip install 'psycopg[binary]')" if backend == "postgresql" else ""
        raise StoreError(f"no database driver for {sa_url.drivername}: {exc}{hint}") from exc
    except Exception as exc:  # NoSuchModuleError: an unknown backend
        raise StoreError(f"cannot use database URL {sa_url.render_as_string()}: {exc}") from exc
    if sa_url.get_backend_name() == "sqlite":
        _sqlite_pragmas(engine)
    return engine


def alembic_config(url: str):  # -> alembic.config.Config
    """An Alembic Config pointing at our migrations (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_to_head(url_or_engine: str | Engine) -> None:
    """Bring the database schema to the newest Alembic revision (creates it when empty).

    A database already at the newest revision is only read. Otherwise the migration runs in a
    transaction that takes SQLite's write lock when it begins: a migration reads the version table
    and then writes, and in a deferred transaction a second process opening the same new database at
    the same moment (a search while the listener creates it) fails at once with "database is
    locked"; with the lock taken first it waits its turn, then finds the schema at head.
    """
    from alembic import command

    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine

    def upgrade() -> None:
        if current_revision(engine) == head_revision():
            return
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.execution_options(**{IMMEDIATE_OPTION: True}).begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    try:
        if engine.url.get_backend_name() == "sqlite":
            _when_unlocked(upgrade)
        else:
            upgrade()
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision shipped with this version of echosearch."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@dataclass
class Database:
    """An open metadata database: ``engine`` plus a ``session()`` context manager.

    >>> db = open_db(url_for_data_dir("echosearch-data"))
    >>> with db.session() as s:   # commits on success, rolls back on error
    ...     s.add(...)
    """

    engine: Engine
    sessionmaker: sessionmaker[Session]

    @property
    def url(self) -> str:
        """The URL to show (password hidden)."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def connect_url(self) -> str:
        """The URL to open the same database again (password included: never log or show it)."""
        return self.engine.url.render_as_string(hide_password=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: commit at the end, rollback on an exception."""
        with self.sessionmaker.begin() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()


def open_db(
    url: str | Path,
    *,
    migrate: bool = True,
    writer: bool = False,
    db: str | None = None,
    **engine_kwargs,
) -> Database:
    """Open (and by default create/upgrade) the database at ``url``.

    ``url`` is a SQLAlchemy URL, or a data dir path: then its database is ``db``, ``$ECHOSEARCH_DB``
    or its ``echosearch.db`` (:func:`database_url`), and it must be the one the data dir belongs to
    (:func:`echosearch.store.binding.check_binding`).
    With ``migrate=True`` an older data dir is upgraded to the current schema on open.
    ``writer=True``: every transaction takes the write lock when it begins (see the module doc).
    """
    url = str(url)
    if "://" not in url:
        from echosearch.store.binding import check_binding

        data_dir, url = Path(url), database_url(url, db)
        check_binding(data_dir, url)
    engine = make_engine(url, **engine_kwargs)
    if migrate:
        try:
            upgrade_to_head(engine)
        except EchosearchError:
            raise
        except Exception as exc:
            cause = " ".join(str(getattr(exc, "orig", None) or exc).split())
            hint = ""
            if "malformed" in cause or "not a database" in cause:
                hint = (
                    ": the file is damaged; restore it from a backup, or salvage it with "
                    "`sqlite3 echosearch.db .recover`"
                )
            url = engine.url.render_as_string(hide_password=True)
            raise StoreError(f"cannot open or upgrade the database {url}: {cause}{hint}") from exc
    bind = engine.execution_options(**{IMMEDIATE_OPTION: True}) if writer else engine
    private_sqlite_file(engine)
    return Database(engine=engine, sessionmaker=sessionmaker(bind, expire_on_commit=False))


def private_sqlite_file(engine: Engine) -> None:
    """Make a SQLite database file (and its WAL and shared-memory files) readable by its owner only:
    it holds keyed hashes, dates, paths and query history (see the README's "What is stored where")."""
    if engine.url.get_backend_name() != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    for suffix in ("", "-wal", "-shm"):
        path = Path(engine.url.database + suffix)
        try:
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except OSError:  # not ours to change (a read-only copy): reading still works
            pass
