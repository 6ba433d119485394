"""``echosearch sources list|add|move``: the archive folders clips are stored relative to.

Clip paths are stored as ``root:<id>/<path below the root>`` (:mod:`echosearch.sources`); the
folder of each root is written once, in the database. When a site moves its archive (a new mount
point, a new file server), ``echosearch sources move ID NEWPATH`` points the root at the new place
and every clip under it is found there: nothing is read or indexed again. ``add`` registers a
folder without indexing it, which also rewrites the rows an older version stored with absolute
paths under it. Paths are shown here: these are administrators' commands on the server.
"""

from __future__ import annotations

import click

from echosearch.cli.common import data_option, emit_json, json_option
from echosearch.cli.main import cli
from echosearch.errors import UsageError
from echosearch.paths import data_dir as resolve_data_dir


@cli.group()
def sources() -> None:
    """The registered source roots: archive folders the stored clip paths are relative to."""


def _open(data, writer: bool = False):  # noqa: ANN001, ANN202
    from echosearch.store.db import has_database, open_db

    root = resolve_data_dir(data)
    if not has_database(root):
        raise UsageError(f"{root} has no echosearch.db (run `echosearch index` first)")
    return root, open_db(root, writer=writer)


@sources.command("list")
@data_option
@json_option
def list_cmd(data, as_json) -> None:
    """Every source root: its id, its folder, whether the folder is there, and its indexed clips."""
    import os

    from echosearch.store import queries as q

    _root, db = _open(data)
    try:
        with db.session() as s:
            roots = q.source_roots(s)
            clips, absolute = q.clips_per_root(s)
    finally:
        db.close()
    rows = [
        {"id": rid, "path": path, "present": os.path.isdir(path), "clips": clips.get(rid, 0)}
        for rid, path in roots.items()
    ]
    if as_json:
        emit_json({"roots": rows, "clips_with_absolute_paths": absolute})
        return
    for r in rows:
        gone = "" if r["present"] else "  (folder not found: `echosearch sources move` it)"
        click.echo(f"{r['id']}\t{r['path']}\t{r['clips']} clips{gone}")
    if not rows:
        click.echo("no source roots yet (`echosearch index FOLDER` registers its folder)")
    if absolute:
        click.echo(
            f"{absolute} clips are stored with absolute paths (indexed by an older version): "
            "`echosearch sources add FOLDER` (or indexing FOLDER again) stores them relative to it"
        )


@sources.command("add")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@data_option
@json_option
def add_cmd(folder, data, as_json) -> None:
    """Register FOLDER as a source root (without indexing it); clips stored with absolute paths
    under it are rewritten relative to it."""
    from echosearch.lock import WriterLock
    from echosearch.sources import register_root
    from echosearch.store import queries as q

    root, db = _open(data, writer=True)
    try:
        with WriterLock(root, "echosearch sources add"), db.session() as s:
            done = register_root(s, folder)
            path = q.source_roots(s)[done.id]
    finally:
        db.close()
    if as_json:
        emit_json({"id": done.id, "path": path, "new": done.new, "rekeyed": done.rekeyed})
    elif done.new:
        click.echo(f"source root {done.id}: {path} ({done.rekeyed} stored paths rewritten relative to it)")
    else:
        click.echo(f"{folder} is in source root {done.id} already ({path})")


@sources.command("move")
@click.argument("root_id", metavar="ID", type=int)
@click.argument("new_path", metavar="NEWPATH", type=click.Path(exists=True, file_okay=False))
@data_option
@json_option
def move_cmd(root_id, new_path, data, as_json) -> None:
    """Point source root ID at NEWPATH, where its archive now lives (its clips keep their ids,
    vectors and labels; the roots registered inside it move with it)."""
    from echosearch.lock import WriterLock
    from echosearch.sources import move_root

    root, db = _open(data, writer=True)
    try:
        with WriterLock(root, "echosearch sources move"), db.session() as s:
            old, new = move_root(s, root_id, new_path)
    finally:
        db.close()
    if as_json:
        emit_json({"id": root_id, "from": old, "to": new})
    else:
        click.echo(f"source root {root_id}: {old} -> {new}")
