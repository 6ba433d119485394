"""The ``echosearch`` command.

Every command takes ``--data DIR`` and ``--json``; exit 0 on success, 2 on bad usage, 1 on failure
with one clear line on stderr. Commands live one group per module in this package and register
themselves in :func:`build_cli`.
"""

from echosearch.cli.main import cli, main

__all__ = ["cli", "main"]
