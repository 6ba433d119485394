"""``echosearch serve``: the REST API (FastAPI on uvicorn) on an indexed data dir."""

from __future__ import annotations

import click

from echosearch.cli.common import data_option, space_option
from echosearch.cli.main import cli


@cli.command()
@data_option
@space_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (behind a TLS proxy: keep 127.0.0.1).",
)
@click.option("--port", default=8600, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--index-root",
    "index_roots",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="A server folder indexers may index through POST /api/v1/index (repeatable; none: that endpoint is off).",
)
@click.option(
    "--rate-limit",
    default=1200,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests per minute per token (0: no limit).",
)
@click.option(
    "--max-upload-mb",
    default=200,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Largest clip upload (POST /api/v1/similar).",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Proxies whose X-Forwarded-For names the client (default: uvicorn's, 127.0.0.1).",
)
@click.option(
    "--no-preload", is_flag=True, help="Load the model on the first text or upload query, not at start."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes, each with its own copy of the model and index, so that concurrent clients "
    "are answered on every core (twice the cores measured best); they share throttles, jobs and reloads.",
)
def serve(
    data, model, host, port, index_roots, rate_limit, max_upload_mb, forwarded_allow_ips, no_preload, workers
) -> None:
    """Serve the archive over HTTP under /api/v1 (OpenAPI docs at /api/v1/docs); tokens: `echosearch tokens`."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import uvicorn

    from echosearch.api import ApiSettings
    from echosearch.api.app import CONFIG_ENV, worker_config
    from echosearch.search import Engine

    settings = ApiSettings(
        rate_per_minute=float(rate_limit),
        max_upload_bytes=max_upload_mb * 1024 * 1024,
        index_roots=tuple(Path(r).resolve() for r in index_roots),
        preload_model=not no_preload,
    )
    with Engine.open(data, space=model) as engine:  # a bad data dir or space fails here, once, clearly
        from echosearch.accounts import Accounts

        if not Accounts(engine.db).has_accounts():
            click.echo(
                f"note: no accounts yet; every request will be refused: `echosearch users add NAME --role viewer "
                f"--data {engine.data_dir}` then `echosearch tokens create NAME`",
                err=True,
            )
        data_dir, model_name = engine.data_dir, engine.model_name
    click.echo(
        f"echosearch API on http://{host}:{port}/api/v1 (docs /api/v1/docs; model {model_name}; "
        f"{workers} worker{'s' if workers > 1 else ''})",
        err=True,
    )
    shared = Path(tempfile.mkdtemp(prefix="echosearch-serve-"))  # the workers' runtime file (0700)
    settings.runtime_path = shared / "runtime.sqlite3"
    os.environ[CONFIG_ENV] = worker_config(data_dir, model, settings)
    kwargs = {"forwarded_allow_ips": forwarded_allow_ips} if forwarded_allow_ips else {}
    try:
        uvicorn.run(
            "echosearch.api.app:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            access_log=False,
            log_level="info",
            server_header=False,
            **kwargs,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
