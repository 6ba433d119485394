"""``echosearch ui``: start the browser UI (Streamlit) on a data dir.

Every person logs in with their own account (``echosearch users add``); an archive with no account
opens without a login, on this machine only (a non-loopback ``--host`` is refused until accounts
exist). The old shared password (``ui set-password``) is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from echosearch.cli.common import data_option
from echosearch.cli.main import cli
from echosearch.errors import UsageError


def app_script() -> Path:
    """The Streamlit script: ``echosearch/ui/app.py`` in an installed wheel, ``ui/app.py`` in a checkout."""
    from importlib.util import find_spec

    spec = find_spec("echosearch.ui")
    folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None
    return (folder or Path(__file__).resolve().parents[2] / "ui") / "app.py"


APP = app_script()
DATA_ENV = "ECHOSEARCH_HOME"


def streamlit_command(port: int, host: str) -> list[str]:
    """The Streamlit command line: headless, no usage statistics, no file watcher; run through
    :mod:`echosearch.ui.serve`, which imports the engine before the server listens."""
    return [
        sys.executable,
        "-m",
        "echosearch.ui.serve",
        "run",
        str(APP),
        "--server.headless=true",
        f"--server.port={port}",
        f"--server.address={host}",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
        "--server.maxUploadSize=200",
        "--client.toolbarMode=minimal",
        "--global.developmentMode=false",
        "--theme.base=light",
    ]


@cli.group(invoke_without_command=True)
@data_option
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0 exposes it to the network).",
)
@click.pass_context
def ui(ctx: click.Context, data: str | None, port: int, host: str) -> None:
    """Start the browser UI on the data dir (search, query by clip, study lookup, labels, status)."""
    from echosearch.paths import data_dir

    root = data_dir(data)
    ctx.obj = {"data": root}
    if ctx.invoked_subcommand is not None:
        return
    from echosearch.store.db import has_database

    if not has_database(root):
        raise UsageError(f"no echosearch index in {root} (run `echosearch index PATH --data {root}` first)")
    if not APP.is_file():
        raise UsageError(f"the UI files are missing ({APP}); reinstall echosearch from its repository")
    check_exposure(root, host)
    env = dict(os.environ, **{DATA_ENV: str(root.resolve())}, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    click.echo(f"echosearch UI on http://{host}:{port}  (data: {root}; Ctrl+C to stop)", err=True)
    sys.exit(run_streamlit(streamlit_command(port, host), env))


def run_streamlit(command: list[str], env: dict[str, str]) -> int:
    """Run the server. On POSIX this process becomes the server (exec), so a signal meant for
    `echosearch ui` (Ctrl+C, a service manager's or a test's SIGTERM) reaches Streamlit itself and
    no orphaned server keeps the port; elsewhere wait on it as a child."""
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(command[0], command, env)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_exposure(root: Path, host: str) -> None:
    """Refuse to start a UI that would open without a login (no accounts) to other machines, or
    that had the old shared password and has no accounts yet."""
    from echosearch.accounts import Accounts
    from echosearch.store.db import open_db
    from echosearch.ui.auth import LEGACY_PASSWORD_NOTE, password_hash

    db = open_db(root)
    try:
        has_accounts = Accounts(db).has_accounts()
    finally:
        db.close()
    if has_accounts:
        return
    if password_hash(root) is not None:
        raise UsageError(LEGACY_PASSWORD_NOTE)
    if host not in LOOPBACK:
        raise UsageError(
            f"{root} has no accounts, so the UI would open without a login to anyone who reaches "
            f"{host}: add accounts first (`echosearch users add NAME --role viewer --data {root}`), "
            "or listen on 127.0.0.1"
        )


@ui.command("set-password", hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("ignored", nargs=-1, type=click.UNPROCESSED)
def set_password_cmd(ignored) -> None:  # noqa: ANN001
    """Gone: the UI has per-person accounts (`echosearch users add`)."""
    raise click.UsageError(
        "`ui set-password` is gone: the UI has no shared password any more; every person logs in with "
        "their own account: `echosearch users add NAME --role viewer --data DIR`"
    )


@ui.command("clear-password")
@data_option
@click.pass_context
def clear_password_cmd(ctx: click.Context, data: str | None) -> None:
    """Remove the old shared UI password from <data>/site.yaml (after creating accounts)."""
    from echosearch.paths import data_dir
    from echosearch.ui.auth import clear_password

    root = data_dir(data) if data else ctx.obj["data"]
    had = clear_password(root)
    click.echo("the old UI password is removed" if had else "the UI had no shared password", err=True)
