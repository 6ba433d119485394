"""``echosearch demo``: synthesise an archive, index it with the demo model, start the UI.

The whole product, offline, in one command: the archive is synthetic (no patient data), the model
is the bundled ``echosearch-demo`` (trained by this project on synthetic clips; not a clinical
model). A rerun reuses what the previous run made: the archive is kept and indexing is incremental.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from echosearch.cli.common import data_option, emit_json, json_option
from echosearch.cli.main import cli
from echosearch.errors import UsageError

log = logging.getLogger(__name__)

DEMO_MODEL = "echosearch-demo"
#: Every demo model that is built is indexed (one space each): a template-tokenizer model, like
#: EchoCLIP-R, and a CLIP-BPE one, like EchoCLIP, so both kinds run end to end.
DEMO_MODELS = ("echosearch-demo", "echosearch-demo-bpe")
DEMO_SEED = 2024
# What a clinician would type: abbreviations, a typo, a number, a negation, several findings.
QUERIES = (
    "severe LV dysfunction",
    "pacmaker",
    "s/p TAVR, no effusion",
    "EF < 30% with dilated LV",
    "A4C, not pacer",
)


def _ensure_archive(archive: Path, patients: int, seed: int, progress: bool | None) -> None:
    from echosearch.synth import synthesize_archive

    if (archive / "manifest.csv").is_file():
        click.echo(f"using the synthetic archive in {archive}", err=True)
        return
    if archive.exists() and any(archive.iterdir()):
        raise UsageError(f"{archive} exists and is not a synthetic archive; choose another --data")
    click.echo(f"synthesising {patients} patients into {archive} ...", err=True)
    summary = synthesize_archive(archive, patients=patients, seed=seed, progress=progress)
    click.echo(f"  {summary.clips} clips of {summary.studies} studies in {summary.seconds:.0f} s", err=True)


def _built(name: str) -> bool:
    from echosearch.models import list_models

    return any(m["name"] == name and m.get("status") == "ready" for m in list_models())


def _first_study(data: Path) -> str | None:
    from sqlalchemy import select

    from echosearch.store.db import open_db
    from echosearch.store.schema import Study

    db = open_db(data)
    try:
        with db.session() as s:
            return s.scalars(select(Study.study_uid).order_by(Study.id)).first()
    finally:
        db.close()


@cli.command()
@data_option
@click.option("--patients", default=40, show_default=True, type=click.IntRange(1, 5000))
@click.option("--seed", default=DEMO_SEED, show_default=True, help="Seed of the synthetic archive.")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Model to index with, repeatable (default: every built demo model: " + ", ".join(DEMO_MODELS) + ").",
)
@click.option("--no-ui", is_flag=True, help="Stop after indexing instead of starting the UI.")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535))
@json_option
def demo(data, patients, seed, models, no_ui, port, as_json) -> None:
    """Run the whole product offline: synthetic archive -> index -> what to try -> browser UI."""
    from echosearch.indexer.runner import IndexOptions, run_index
    from echosearch.paths import data_dir as resolve_data_dir

    root = (
        resolve_data_dir(data) if data or os.environ.get("ECHOSEARCH_HOME") else Path("echosearch-demo-data")
    )
    models = list(models) or [m for m in DEMO_MODELS if _built(m)]
    if not models or (DEMO_MODEL in models and not _built(DEMO_MODEL)):
        raise UsageError(
            "the bundled demo model is missing from this installation (see docs/demo_model.md to train it)"
        )
    archive = root / "archive"
    _ensure_archive(archive, patients, seed, progress=None if not as_json else False)
    summaries = []
    for model in models:
        opts = IndexOptions(
            paths=[str(archive)],
            data_dir=str(root),
            model=model,
            reports=str(archive / "reports.csv"),
            progress=None if not as_json else False,
        )
        summaries.append(run_index(opts))
    study = _first_study(root)
    tries = [f"echosearch search {q!r} --data {root}" for q in QUERIES]
    tries += [f"echosearch interpret {QUERIES[0]!r}"]
    tries += [f"echosearch search {QUERIES[1]!r} --model {m} --data {root}" for m in models[1:]]
    tries += [
        f"echosearch similar 1 --data {root}",
        f"echosearch labels 1 --data {root}",
        f"echosearch study {study} --data {root}" if study else f"echosearch stats --data {root}",
        f"echosearch stats --data {root}",
        f"echosearch ui --data {root}",
    ]
    if as_json:
        doc = {"data_dir": str(root), "archive": str(archive), "models": models, "try": tries}
        doc["index"] = summaries[0].to_dict()
        doc["indexes"] = {m: s.to_dict() for m, s in zip(models, summaries, strict=True)}
        emit_json(doc)
    else:
        for model, summary in zip(models, summaries, strict=True):
            click.echo(f"[{model}]", err=True)
            for line in summary.lines():
                click.echo(line, err=True)
        click.echo(f"\nThe demo archive is indexed in {root} with {', '.join(models)}.")
        if any(m in DEMO_MODELS for m in models):
            click.echo("Note: the demo models are trained on synthetic clips; they are not clinical models.")
        click.echo("Try:")
        for line in tries:
            click.echo(f"  {line}")
    if no_ui or as_json:
        return
    if not sys.stdin.isatty():
        click.echo("\n(no terminal: not starting the UI; run the last command above to open it)", err=True)
        return
    from echosearch.cli.ui import ui as ui_command

    click.echo("\nStarting the browser UI (Ctrl+C to stop) ...", err=True)
    ctx = click.get_current_context()
    ctx.invoke(ui_command, data=str(root), port=port, host="127.0.0.1")
