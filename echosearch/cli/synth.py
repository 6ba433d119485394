"""``echosearch synth OUT``: write a deterministic synthetic echo archive with ground truth."""

from __future__ import annotations

import click

from echosearch.cli.common import emit_json, json_option
from echosearch.cli.main import cli
from echosearch.synth import synthesize_archive
from echosearch.synth.writers import FORMATS


@cli.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--patients", default=10, show_default=True, type=click.IntRange(min=1), help="Patients.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option(
    "--formats",
    default=None,
    help=f"Comma-separated subset of {','.join(FORMATS)} (default: a DICOM-heavy mix of all).",
)
@json_option
def synth(out: str, patients: int, seed: int, formats: str | None, as_json: bool) -> None:
    """Write a synthetic echo archive (DICOM/AVI/MP4, manifest.csv, reports.csv) into OUT."""
    chosen = tuple(f.strip() for f in formats.split(",") if f.strip()) if formats else None
    summary = synthesize_archive(out, patients=patients, seed=seed, formats=chosen)
    if as_json:
        emit_json(summary.to_dict())
        return
    click.echo(
        f"wrote {summary.clips} clips of {summary.studies} studies ({summary.patients} patients) to {out} "
        f"in {summary.seconds:.1f} s ({summary.seconds_per_clip:.2f} s/clip)"
    )
    click.echo("formats: " + ", ".join(f"{k} {v}" for k, v in summary.formats.items()))
    click.echo(f"ground truth: {summary.manifest}; reports: {summary.reports}")
