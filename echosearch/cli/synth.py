"""``echosearch synth OUT``: write a deterministic synthetic echo archive with ground truth."""

from __future__ import annotations

import click

from echosearch.cli.common import emit_json, json_option
from echosearch.cli.main import cli
from echosearch.errors import UsageError
from echosearch.synth import synthesize_archive
from echosearch.synth.reports import REPORT_STYLES
from echosearch.synth.views import ALL_VIEWS, parse_views
from echosearch.synth.writers import FORMATS


class CountRange(click.ParamType):
    """``N`` or ``MIN-MAX`` -> ``(MIN, MAX)``: an inclusive range of counts."""

    name = "MIN-MAX"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        lo, _, hi = str(value).partition("-")
        try:
            return int(lo), int(hi or lo)
        except ValueError:
            self.fail(f"{value!r} is not N or MIN-MAX (e.g. 2-4)", param, ctx)


class Views(click.ParamType):
    """``all`` or a comma list of view codes -> the codes (bad usage, exit 2, on an unknown one)."""

    name = "VIEWS"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_views(value)
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


@cli.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--patients", default=10, show_default=True, type=click.IntRange(min=1), help="Patients.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option(
    "--formats",
    default=None,
    help=f"Comma-separated subset of {','.join(FORMATS)} (default: a DICOM-heavy mix of all).",
)
@click.option("--studies", default="1-3", show_default=True, type=CountRange(), help="Studies per patient.")
@click.option("--clips-per-study", default="2-4", show_default=True, type=CountRange(),
              help="Clips per study (each of a distinct view; with --views A4C,PLAX the first two are those).")  # fmt: skip
@click.option("--frames", default="30-60", show_default=True, type=CountRange(), help="Frames per clip.")
@click.option(
    "--views",
    default="all",
    show_default=True,
    type=Views(),
    help=f"'all' ({','.join(ALL_VIEWS)}) or a comma list of them; a study samples distinct views.",
)
@click.option(
    "--report-style",
    default="varied",
    show_default=True,
    type=click.Choice(REPORT_STYLES),
    help="template: one fixed wording per finding; varied: synonyms, abbreviations, varied order.",
)
@json_option
def synth(
    out, patients, seed, formats, studies, clips_per_study, frames, views, report_style, as_json
) -> None:
    """Write a synthetic echo archive (DICOM/AVI/MP4, manifest.csv, reports.csv) into OUT."""
    chosen = tuple(f.strip() for f in formats.split(",") if f.strip()) if formats else None
    summary = synthesize_archive(out, patients=patients, seed=seed, formats=chosen, studies=studies,
                                 clips_per_study=clips_per_study, frames=frames, views=views,
                                 report_style=report_style, progress=None if not as_json else False)  # fmt: skip
    if as_json:
        emit_json(summary.to_dict())
        return
    click.echo(
        f"wrote {summary.clips} clips of {summary.studies} studies ({summary.patients} patients) to {out} "
        f"in {summary.seconds:.1f} s ({summary.seconds_per_clip:.2f} s/clip)"
    )
    click.echo("formats: " + ", ".join(f"{k} {v}" for k, v in summary.formats.items()))
    click.echo("views: " + ", ".join(f"{k} {v}" for k, v in summary.views.items()))
    click.echo(f"ground truth: {summary.manifest}; reports: {summary.reports}")
