"""``echosearch probe train | list | show | remove``: few-shot linear probes on the stored clip vectors."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from echosearch.cli.common import data_option, emit_json, json_option, space_option
from echosearch.cli.main import cli


@cli.group()
def probe() -> None:
    """Learn a label from a few labelled clips (a linear probe on the stored clip vectors)."""


@probe.command(name="train")
@click.argument("name")
@click.option("--labels", "labels_csv", required=True, type=click.Path(exists=True, dir_okay=False),
              help="CSV with a video_id, sop_uid or path column and a column named NAME.")  # fmt: skip
@click.option("--kind", type=click.Choice(["binary", "categorical", "regression"]), default=None,
              help="Default: binary for 0/1/yes/no, regression for other numbers, else categorical.")  # fmt: skip
@space_option
@data_option
@json_option
def train(name, labels_csv, kind, model, data, as_json) -> None:
    """Fit probe NAME on the labelled clips, report its cross-validated metric, label every clip."""
    from echosearch.errors import UsageError
    from echosearch.probes import (
        apply_probe,
        check_name,
        fit_probe,
        guess_kind,
        labelled_vectors,
        parse_label,
        read_labels_csv,
        save_probe,
    )
    from echosearch.search import Engine

    try:
        check_name(name)
    except UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    rows = read_labels_csv(labels_csv, name)
    if not rows:
        raise UsageError(f"{labels_csv}: no clip has a value in column {name!r}")
    kind = kind or guess_kind([r[2] for r in rows])
    values = [parse_label(kind, r[2], f"{labels_csv}: {r[0]} {r[1]}") for r in rows]
    rows = [(k, i, v) for (k, i, _), v in zip(rows, values, strict=True)]
    with Engine.open(data, space=model) as engine:
        tasks, _stored, _thresholds = engine.label_catalog()
        clash = [t.name for t in tasks if t.name != name and name.lower() in {n.lower() for n in t.names}]
        zero_shot = (
            [t.name for t in engine.space.recorded_tasks()[0]] if engine.space.recorded_tasks() else []
        )
        if clash or name in zero_shot:
            raise click.BadParameter(
                f"{name!r} already names label {(clash or [name])[0]}", param_hint="NAME"
            )
        ids, x, labels, missing = labelled_vectors(engine, rows)
        fitted = fit_probe(name, kind, x, labels)
        fitted.model, fitted.labels_file = engine.space.name, str(Path(labels_csv).name)
        path = save_probe(engine.space, fitted)
        clips = apply_probe(engine, fitted)
    doc = {**asdict(fitted), "path": str(path), "labelled": len(ids), "unmatched_rows": missing,
           "clips_labelled": clips}  # fmt: skip
    if as_json:
        emit_json({k: v for k, v in doc.items() if k not in ("weights", "mean", "scale", "bias")})
        return
    click.echo(fitted.describe())
    if missing:
        click.echo(
            f"note: {missing} CSV row(s) named no indexed clip of this space (or repeated one)", err=True
        )
    click.echo(f"labelled {clips} clips; filter with --where \"{name} = yes\"" if kind == "binary"
               else f"labelled {clips} clips")  # fmt: skip


@probe.command(name="list")
@space_option
@data_option
@json_option
def list_cmd(model, data, as_json) -> None:
    """The probes of a space."""
    from echosearch.probes import list_probes
    from echosearch.search import Engine

    with Engine.open(data, space=model) as engine:
        probes = list_probes(engine.space)
    if as_json:
        emit_json([_public(p) for p in probes])
        return
    if not probes:
        click.echo("no probes")
    for p in probes:
        click.echo(p.describe())


@probe.command()
@click.argument("name")
@space_option
@data_option
@json_option
def show(name, model, data, as_json) -> None:
    """One probe: kind, classes, cross-validated metric, training clips, when and from what file."""
    from echosearch.probes import load_probe
    from echosearch.search import Engine

    with Engine.open(data, space=model) as engine:
        p = load_probe(engine.space, name)
    if as_json:
        emit_json(_public(p))
        return
    click.echo(p.describe())
    click.echo(f"classes: {', '.join(p.classes)}" if p.classes else f"kind: {p.kind}")
    click.echo(f"trained {p.created} in space {p.model} from {p.labels_file or '-'} (L2 {p.lam:g})")


@probe.command()
@click.argument("name")
@space_option
@data_option
@json_option
def remove(name, model, data, as_json) -> None:
    """Delete a probe and its labels."""
    from echosearch.probes import load_probe, probe_dir, remove_labels
    from echosearch.search import Engine

    with Engine.open(data, space=model) as engine:
        load_probe(engine.space, name)  # an unknown name fails here, listing the probes
        remove_labels(engine, name)
        (probe_dir(engine.space) / f"{name}.json").unlink()
    if as_json:
        emit_json({"removed": name})
    else:
        click.echo(f"removed probe {name} and its labels")


def _public(p) -> dict:
    return {k: v for k, v in asdict(p).items() if k not in ("weights", "mean", "scale", "bias")}
