"""``echosearch key export|import``: back up and restore the site key.

The site key turns MRNs and accession numbers into the keyed hashes the database holds; a data
dir whose key is lost can no longer recognise a returning patient or look a study up by accession.
Back it up once, somewhere safe and separate from the data dir.
"""

from __future__ import annotations

import click

from echosearch.cli.common import data_option, emit_json, json_option
from echosearch.cli.main import cli
from echosearch.errors import UsageError
from echosearch.paths import data_dir as resolve_data_dir


@cli.group()
def key() -> None:
    """Back up (export) and restore (import) the site key of a data dir."""


def _open(data):  # noqa: ANN001, ANN202
    from echosearch.store.db import has_database, open_db

    root = resolve_data_dir(data)
    if not has_database(root):
        raise UsageError(f"{root} has no echosearch.db (run `echosearch index` first)")
    return root, open_db(root)


@key.command("export")
@click.argument("out", type=click.Path(dir_okay=False))
@data_option
@json_option
def export_cmd(out, data, as_json) -> None:
    """Write the site key to OUT (a new file, mode 0600) for a backup."""
    from echosearch.privacy import export_site_key

    root, db = _open(data)
    try:
        fingerprint = export_site_key(root, db, out)
    finally:
        db.close()
    if as_json:
        emit_json({"exported": out, "fingerprint": fingerprint})
    else:
        click.echo(f"site key (fingerprint {fingerprint}) written to {out}; keep it apart from the data dir")


@key.command("import")
@click.argument("backup", type=click.Path(dir_okay=False, exists=True))
@data_option
@json_option
def import_cmd(backup, data, as_json) -> None:
    """Restore the site key from BACKUP (it must match the fingerprint the database recorded)."""
    from echosearch.privacy import import_site_key

    root, db = _open(data)
    try:
        fingerprint = import_site_key(root, db, backup)
    finally:
        db.close()
    if as_json:
        emit_json({"imported": backup, "fingerprint": fingerprint})
    else:
        click.echo(f"site key restored (fingerprint {fingerprint})")
