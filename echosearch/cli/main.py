"""Entry point: the click group, error handling and command registration."""

from __future__ import annotations

import logging
import os
import sys

import click

from echosearch import __version__
from echosearch.errors import EchosearchError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="echosearch")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Semantic search for echocardiogram videos (EchoCLIP / EchoCLIP-R)."""
    from echosearch.whoami import os_user, set_process_user

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    set_process_user(f"cli:{os_user()}")  # every audit row of a command names who ran it


def _register_commands() -> None:
    """Import each command module; each adds its commands to :data:`cli`."""
    from echosearch.cli import commands  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors become one line on stderr and exit 1, never a traceback."""
    _register_commands()
    try:
        cli.main(args=argv, prog_name="echosearch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EchosearchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line unless asked for the traceback
        if os.environ.get("ECHOSEARCH_DEBUG"):
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (set ECHOSEARCH_DEBUG=1 for details)", err=True
        )
        sys.exit(1)
    sys.exit(0)
