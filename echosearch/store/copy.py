"""Copy a site's metadata from one database to another (``echosearch db migrate``): SQLite -> PostgreSQL
when a site outgrows one machine, or back.

Every table is copied row for row with its ids: video ids are FAISS ids and report ids the report
space's, so the data dir's vectors stay valid without being touched. Both databases are first
brought to the newest schema (so their tables agree), the destination must be empty (a merge would
renumber ids), tables go in foreign-key order, in batches (flat memory on millions of rows), in one
transaction (a failed copy leaves the destination empty). PostgreSQL's id sequences are then moved
past the copied ids, or the next index run would collide with them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Integer, func, select, text

from echosearch.errors import UsageError
from echosearch.store.binding import identity
from echosearch.store.db import Database, open_db
from echosearch.store.schema import Base

log = logging.getLogger(__name__)

BATCH = 5000


def copy_database(
    src_url: str, dst_url: str, *, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Copy every table from ``src_url`` into the empty database ``dst_url``; rows per table."""
    src, dst = open_db(src_url), open_db(dst_url)
    try:
        if identity(src.connect_url) == identity(dst.connect_url):
            raise UsageError("--from and --to are the same database")
        _require_empty(dst)
        counts: dict[str, int] = {}
        with src.engine.connect() as read, dst.engine.begin() as write:
            for table in Base.metadata.sorted_tables:  # parents before children
                n = 0
                order = list(table.primary_key.columns)
                result = read.execution_options(stream_results=True).execute(select(table).order_by(*order))
                while rows := result.fetchmany(BATCH):
                    write.execute(table.insert(), [dict(r._mapping) for r in rows])
                    n += len(rows)
                counts[table.name] = n
                if progress:
                    progress(table.name, n)
            if write.dialect.name == "postgresql":
                _advance_sequences(write)
        return counts
    finally:
        src.close()
        dst.close()


def _require_empty(db: Database) -> None:
    with db.session() as s:
        full = [t.name for t in Base.metadata.sorted_tables if s.scalar(select(func.count()).select_from(t))]
    if full:
        raise UsageError(
            f"the destination database is not empty ({', '.join(full)} have rows): "
            "copy into a new, empty database"
        )


def _advance_sequences(conn) -> None:  # noqa: ANN001
    """Set each serial id's sequence to the largest copied id (the next insert takes the one after)."""
    for table in Base.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, Integer):
            continue
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), "
                f"COALESCE(MAX({pk[0].name}), 1), MAX({pk[0].name}) IS NOT NULL) FROM {table.name}"
            )
        )
