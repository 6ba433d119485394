"""Options and output helpers shared by every command.

``--db URL`` rides along with every ``--data``. Rather than threading it through every command and
helper, the option puts the URL in ``$ECHOSEARCH_DB`` for the length of the command (restored when
it ends), which is where :func:`echosearch.store.db.database_url` looks: so every database the
command opens for the data dir, and the processes it starts (the Streamlit UI), use it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from echosearch.paths import DB_ENV


def _use_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Check ``--db``'s URL (a malformed one is a usage error) and make it the command's database."""
    if not value:
        return None
    from echosearch.store.db import StoreError, normalise_url

    try:
        url = normalise_url(value)
    except StoreError as exc:
        raise click.BadParameter(str(exc)) from None
    before = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = url

    def restore() -> None:
        if before is None:
            os.environ.pop(DB_ENV, None)
        else:
            os.environ[DB_ENV] = before

    ctx.call_on_close(restore)
    return url


data_dir_option = click.option(
    "--data",
    "data",
    type=click.Path(file_okay=False),
    default=None,
    help="Data dir (default: $ECHOSEARCH_HOME or ./echosearch-data).",
)
db_option = click.option(
    "--db",
    "db",
    metavar="URL",
    envvar=DB_ENV,
    default=None,
    expose_value=False,
    is_eager=True,
    callback=_use_db,
    help="Metadata database: postgresql://USER@HOST/DB or sqlite:///PATH "
    "(default: $ECHOSEARCH_DB, else SQLite in the data dir).",
)


def data_option(f):  # noqa: ANN001, ANN201
    """``--data DIR`` and ``--db URL`` (see the module doc)."""
    return data_dir_option(db_option(f))


space_option = click.option(
    "--space",
    "--model",
    "model",
    default=None,
    metavar="SPACE",
    help="Embedding space to use: a model name or a space name (default: the registry's default model's, else the latest indexed). "
    "--model is the same option (in `index`, --model names the model bundle to index with).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")


def emit_json(document: Any) -> None:
    """Print one JSON document (the ``--json`` contract) to stdout."""
    json.dump(document, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")
