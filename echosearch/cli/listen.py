"""``echosearch listen``: receive echo studies over DICOM (C-STORE) and index them as they arrive."""

from __future__ import annotations

import logging
import re
import signal
import threading

import click

from echosearch.cli.common import data_option
from echosearch.cli.main import cli
from echosearch.paths import data_dir as resolve_data_dir

log = logging.getLogger(__name__)


def _ae_title(_ctx, param, value):  # noqa: ANN001
    """An AE title: 1-16 characters of the DICOM default repertoire, no backslash."""
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not re.fullmatch(r"[\x20-\x5b\x5d-\x7e]{1,16}", v) or not v.strip():
            raise click.BadParameter(f"not an AE title (1-16 printable characters): {v!r}", param=param)
    return value


@cli.command()
@data_option
@click.option("--ae-title", default="ECHOSEARCH", show_default=True, callback=_ae_title, help="Our AE title.")
@click.option("--port", default=11112, show_default=True, type=click.IntRange(1, 65535), help="DICOM port.")
@click.option("--host", default="", help="Address to listen on (default: all).")
@click.option(
    "--allow",
    multiple=True,
    callback=_ae_title,
    help="A calling AE title allowed to send (repeatable; none: any).",
)
@click.option(
    "--model", default=None, help="Registry name, bundle folder or arch:NAME (default: the registry's)."
)
@click.option(
    "--batch", default=16, show_default=True, type=click.IntRange(min=1), help="Instances per indexing batch."
)
@click.option(
    "--batch-wait",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds an instance waits for others of its study before a batch is indexed.",
)
def listen(data, ae_title, port, host, allow, model, batch, batch_wait) -> None:
    """Receive ultrasound instances over DICOM (C-STORE, C-ECHO) and index them within seconds.

    Each instance is written to DATA/spool/received before it is acknowledged; a spool left by a
    crash is indexed on start. SIGTERM or Ctrl-C stops receiving, finishes the batch and exits."""
    from echosearch.indexer.runner import IndexOptions
    from echosearch.indexer.spool import SpoolIndexer
    from echosearch.models.registry import default_model
    from echosearch.pacs.scp import clean_partial, start_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    root = resolve_data_dir(data)
    opts = IndexOptions(paths=[], data_dir=str(root), model=model or default_model(), workers=0)
    indexer = SpoolIndexer(opts, batch=batch, wait=batch_wait)
    clean_partial(indexer.spool)
    try:
        server = start_server(indexer.spool, ae_title, port, allow, host)
    except OSError as exc:
        raise click.UsageError(f"cannot listen on port {port}: {exc.strerror or exc}") from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("listening as %s on port %d (allowed: %s)", ae_title, port, ", ".join(allow) or "any AE title")
    try:
        indexer.run(stop)
    finally:
        server.shutdown()
    log.info("stopped; %d instances indexed", indexer.indexed)
