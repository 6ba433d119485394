"""Options and output helpers shared by every command."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

data_option = click.option(
    "--data",
    "data",
    type=click.Path(file_okay=False),
    default=None,
    help="Data dir (default: $ECHOSEARCH_HOME or ./echosearch-data).",
)
space_option = click.option(
    "--space",
    "--model",
    "model",
    default=None,
    metavar="SPACE",
    help="Embedding space to use: a model name or a space name (default: the latest indexed). "
    "--model is the same option (in `index`, --model names the model bundle to index with).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document to stdout.")


def emit_json(document: Any) -> None:
    """Print one JSON document (the ``--json`` contract) to stdout."""
    json.dump(document, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")
