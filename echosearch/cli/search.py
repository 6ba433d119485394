"""``echosearch search | similar | study | same-patient | labels | stats``: the Engine from the shell."""

from __future__ import annotations

import click

from echosearch.cli.common import data_option, emit_json, json_option, space_option
from echosearch.cli.main import cli
from echosearch.errors import UsageError
from echosearch.search import Engine, SearchResult, parse_where

k_option = click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 10_000))
where_option = click.option(
    "--where",
    "where",
    multiple=True,
    metavar="COND",
    help="Filter, repeatable: 'ef < 40' (a label's name or alias), 'pacemaker = yes', 'pacemaker > 0.9' "
    "(calibrated probability), 'pacemaker.score > 0.1' (raw score), 'lv_size >= moderate', 'view = A4C', "
    "'date >= 2021-01-01', 'manufacturer = GE', 'study = UID', 'mrn = 123'.",
)


def _open(data: str | None, model: str | None) -> Engine:
    return Engine.open(data, space=model)


def _filters(where, engine: Engine):
    """``--where`` conditions as a filter; a condition the index cannot read is bad usage (exit 2)."""
    try:
        return parse_where(where, engine)
    except UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--where") from None


def _print_videos(result: SearchResult, engine: Engine | None = None) -> None:
    if result.interpretation is not None:
        click.echo(result.interpretation["summary"], err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.suggestions:
        click.echo("try one of these phrases:", err=True)
        for phrase in result.suggestions:
            click.echo(f"  {phrase}", err=True)
    if not result.results:
        click.echo("no results")
    for rank, hit in enumerate(result.results, 1):
        labels = "; ".join(engine.readable_labels(hit.labels)) if engine is not None else ""
        click.echo(
            f"{rank:>3}. {hit.score:.3f}  video {hit.video_id}  {hit.view or '-'}  {hit.study_date or '-'}  "
            f"{hit.path}"
        )
        if labels:
            click.echo(f"       {labels}")
    click.echo(f"({result.elapsed_ms:.0f} ms, model {result.model})", err=True)


def _print_studies(title: str, hits) -> None:
    click.echo(title)
    if not hits:
        click.echo("  none")
    for hit in hits:
        score = "" if hit.score is None else f"{hit.score:.3f}  "
        same = {True: "  [same patient on record]", False: "", None: ""}[hit.same_patient_on_record]
        ef = hit.labels.get("ef") or hit.labels.get("ejection_fraction")
        ef_text = f"  EF~{ef:.0f}%" if isinstance(ef, float) else ""
        click.echo(f"  {score}{hit.study_uid}  {hit.study_date or '-'}  {hit.n_videos} clips{ef_text}{same}")


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


@cli.command()
@click.argument("text")
@k_option
@where_option
@click.option("--not", "negatives", multiple=True, metavar="TEXT", help="Push results away from TEXT.")
@click.option("--literal", is_flag=True, help="Send TEXT to the model as typed (no query interpretation).")
@space_option
@data_option
@json_option
def search(text, k, where, negatives, literal, model, data, as_json) -> None:
    """Find clips matching free clinical TEXT ("severe LV dysfunction, no pacer"; see `interpret`)."""
    with _open(data, model) as engine:
        result = engine.search_text(
            text, k=k, filters=_filters(where, engine), negatives=negatives, literal=literal
        )
        emit_json(result.to_dict()) if as_json else _print_videos(result, engine)


@cli.command()
@click.argument("target", metavar="FILE_OR_VIDEO_ID")
@k_option
@where_option
@click.option("--include-same-study", is_flag=True, help="Also return clips of the query's own study.")
@click.option("--reports", "with_reports", is_flag=True, help="List the nearest report texts instead.")
@space_option
@data_option
@json_option
def similar(target, k, where, include_same_study, with_reports, model, data, as_json) -> None:
    """Clips most like a given clip (a file, or the id of an indexed video)."""
    with _open(data, model) as engine:
        if with_reports:
            result = engine.nearest_reports(target, k=k)
            if as_json:
                emit_json(result.to_dict())
                return
            for rank, hit in enumerate(result.results, 1):
                click.echo(f"{rank:>3}. {hit.score:.3f}  study {hit.study_uid}\n       {hit.text[:300]}")
            return
        result = engine.search_clip(
            target, k=k, filters=_filters(where, engine), exclude_same_study=not include_same_study
        )
        emit_json(result.to_dict()) if as_json else _print_videos(result, engine)


@cli.command()
@click.argument("uid_or_accession")
@k_option
@space_option
@data_option
@json_option
def study(uid_or_accession, k, model, data, as_json) -> None:
    """A study: its clips, its nearest studies, and the same patient's other studies."""
    with _open(data, model) as engine:
        found = engine.find_study(uid_or_accession)
        clips = engine.study_videos(found.study_uid)
        nearest = engine.search_study(found.study_uid, k=k)
        timeline = engine.patient_timeline(found.study_uid)
        if as_json:
            emit_json(
                {
                    "study_uid": found.study_uid,
                    "study_date": found.study_date.isoformat() if found.study_date else None,
                    "videos": [c.to_dict() for c in clips],
                    "nearest_studies": [h.to_dict() for h in nearest.results],
                    "same_patient_studies": [h.to_dict() for h in timeline],
                }
            )
            return
        click.echo(f"study {found.study_uid}  {found.study_date or '-'}  {len(clips)} clips")
        for clip in clips:
            click.echo(f"  video {clip.video_id}  {clip.view or '-'}  {clip.path}")
        _print_studies("nearest studies:", nearest.results)
        _print_studies("same patient's studies (by record):", timeline)


@cli.command("same-patient")
@click.argument("study_a")
@click.argument("study_b")
@space_option
@data_option
@json_option
def same_patient(study_a, study_b, model, data, as_json) -> None:
    """How alike two studies are (EchoCLIP-R's same-patient score) and what the records say."""
    with _open(data, model) as engine:
        score = engine.same_patient(study_a, study_b)
    if as_json:
        emit_json(score.to_dict())
        return
    record = {True: "yes", False: "no", None: "unknown"}[score.same_patient_on_record]
    click.echo(f"similarity {score.score:.3f}  (same patient on record: {record})")


@cli.command()
@click.argument("target", metavar="FILE_OR_VIDEO_ID")
@space_option
@data_option
@json_option
def labels(target, model, data, as_json) -> None:
    """Zero-shot labels of a clip (stored for an indexed clip, computed for a new file)."""
    with _open(data, model) as engine:
        values = engine.clip_labels(target)
        if as_json:
            emit_json({"target": target, "model": engine.model_name, "labels": values})
            return
        if engine.clinical is False:
            click.echo(f"note: {engine.model_name} is a demo model, not a clinical one", err=True)
        for line in engine.readable_labels(values):
            click.echo(line)
        click.echo("raw:  " + "  ".join(f"{task}={_fmt(value)}" for task, value in sorted(values.items())))


@cli.command()
@space_option
@data_option
@json_option
@click.option(
    "--indexes",
    "load_indexes",
    is_flag=True,
    help="Load every space's vector index for its ANN parameters (slow and memory-hungry at scale; "
    "by default other spaces are counted from their index files' headers).",
)
def stats(model, data, as_json, load_indexes) -> None:
    """Counts per table and space, index types, sizes on disk, recent runs, failures."""
    with _open(data, model) as engine:
        info = engine.stats(load_indexes=load_indexes)
    if as_json:
        emit_json(info)
        return
    click.echo(f"data dir {info['data_dir']}  (model {info['model']})")
    for table, count in info["counts"].items():
        click.echo(f"  {table:<18} {count}")
    for space in info["spaces"]:
        idx = space["index"]
        vectors = f"{idx['ntotal']} vectors, {idx['kind']}" if "error" not in idx else idx["error"]
        click.echo(
            f"  space {space['name']} ({space['kind']}, {space['model']}, {space['dim']}-d): "
            f"{vectors}, {space['disk_bytes'] / 1e6:.1f} MB"
        )
    for kind, count in info["failures_by_kind"].items():
        click.echo(f"  failed ({kind}): {count}")
