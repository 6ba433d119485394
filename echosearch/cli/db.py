"""``echosearch db migrate --from URL --to URL``: move a site's metadata to another database."""

from __future__ import annotations

import click

from echosearch.cli.common import data_dir_option, emit_json, json_option
from echosearch.cli.main import cli


def _url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from echosearch.store.db import StoreError, normalise_url

    try:
        return normalise_url(value)
    except StoreError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.group()
def db() -> None:
    """The metadata database (SQLite in the data dir, or PostgreSQL with --db)."""


@db.command("migrate")
@click.option("--from", "src", required=True, metavar="URL", callback=_url, help="The database to copy.")
@click.option("--to", "dst", required=True, metavar="URL", callback=_url, help="A new, empty database.")
@data_dir_option
@json_option
def migrate(src, dst, data, as_json) -> None:
    """Copy every table (ids kept, sequences moved on) into an empty database; a data dir that used
    --from is then bound to --to, so its commands take `--db` the new URL from now on."""
    from contextlib import nullcontext

    from echosearch.errors import UsageError
    from echosearch.lock import WriterLock
    from echosearch.paths import data_dir
    from echosearch.store import binding
    from echosearch.store.copy import copy_database

    root = data_dir(data)
    recorded = binding.recorded(root) if root.is_dir() else None
    bound = recorded == binding.identity(src, root)
    if data and not bound:
        raise UsageError(f"{root} uses the database {recorded}, not {binding.identity(src, root)}")
    with WriterLock(root, "echosearch db migrate") if bound else nullcontext():
        counts = copy_database(src, dst, progress=None if as_json else _show)
        if bound:
            binding.record(root, dst)
    if as_json:
        emit_json({"tables": counts, "data_dir": str(root) if bound else None})
    else:
        total = sum(counts.values())
        click.echo(f"copied {total} rows in {len(counts)} tables")
        if bound:
            click.echo(f"{root} now uses the new database: pass it with --db or $ECHOSEARCH_DB")


def _show(table: str, rows: int) -> None:
    click.echo(f"{table}: {rows}", err=True)
