"""``echosearch train | eval | calibrate``: make a model, measure it, calibrate its zero-shot thresholds."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from echosearch.cli.common import data_option, emit_json, json_option
from echosearch.cli.main import cli

archive_option = click.option(
    "--archive",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Labelled archive: clips + manifest.csv + reports.csv (what `echosearch synth` writes).",
)
model_option = click.option(
    "--model",
    "model_name",
    default=None,
    help="Registry name or bundle folder (default: the registry default).",
)


@cli.command()
@click.option(
    "--archive",
    "archives",
    required=True,
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Labelled archive (clips + manifest.csv + reports.csv); repeat it to train on several as one.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle folder to write.")
@click.option("--init", default="arch:echosearch-demo", show_default=True,
              help="Start from: arch:echosearch-demo (fresh demo model) or a model name/bundle to fine-tune.")  # fmt: skip
@click.option("--init-image", default=None,
              help="Start the image tower from this model's (name or bundle folder); the text tower as --init says.")  # fmt: skip
@click.option("--init-text", default=None,
              help="Start the text tower from this template model's, token rows mapped onto a grown vocabulary.")  # fmt: skip
@click.option("--tokenizer", type=click.Choice(["template", "clip-bpe"]), default="template", show_default=True,
              help="Tokenizer of a fresh demo model: the demo template vocabulary, or CLIP's BPE (as EchoCLIP).")  # fmt: skip
@click.option("--context-length", default=None, type=click.IntRange(min=2),
              help="Text context of a fresh demo model (default 32, the longest template report).")  # fmt: skip
@click.option("--text-width", default=None, type=click.IntRange(min=8),
              help="Text transformer width of a fresh demo model (default 256; heads = width / 64).")  # fmt: skip
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--lr", default=5e-4, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--frames", default=8, show_default=True, type=click.IntRange(min=1),
              help="Frames decoded (and cached) per clip; each step picks one at random.")  # fmt: skip
@click.option("--weights", "weights_dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Precision of the saved weights (fp16 halves the bundle).")  # fmt: skip
@click.option("--amp", type=click.Choice(["auto", "bf16", "none"]), default="auto", show_default=True,
              help="bf16 autocast: auto = on CUDA only (on CPU it measured 10x slower for training).")  # fmt: skip
@click.option(
    "--augment", is_flag=True, help="Random crop and gain per frame (fights patient-identity shortcuts)."
)
@click.option("--max-steps", default=None, type=click.IntRange(min=1), help="Stop the schedule at this step.")
@click.option("--max-minutes", default=None, type=float,
              help="Wall-clock guard: checkpoint and write the bundle early (--resume continues).")  # fmt: skip
@click.option("--work-dir", default=None, type=click.Path(file_okay=False),
              help="Checkpoints and loss log (default: in the cache dir, one per --out).")  # fmt: skip
@click.option("--resume", is_flag=True, help="Continue from the checkpoint of an earlier run.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--name", default=None, help="Model name in the manifest (default: the --out folder name).")
@click.option(
    "--version", "version", default="0.1.0", show_default=True, help="Model version in the manifest."
)
@click.option("--tasks", "tasks_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Zero-shot task file to ship (default: configs/tasks/demo.yaml, or the --init bundle's).")  # fmt: skip
@json_option
def train(archives, out, init, init_image, init_text, tokenizer, context_length, text_width, epochs, batch_size, lr, seed, frames, weights_dtype, amp, augment, max_steps, max_minutes,
          work_dir, resume, force, name, version, tasks_file, as_json) -> None:  # fmt: skip
    """Contrastive (frame, report) training; writes a complete model bundle to OUT."""
    from echosearch.training.train import DEMO_ARCH, DEMO_CONTEXT, TrainConfig
    from echosearch.training.train import train as run

    if init != DEMO_ARCH and (context_length or text_width):
        raise click.UsageError(
            "--context-length and --text-width shape a fresh demo model (--init arch:echosearch-demo)"
        )
    overrides = {"text_cfg": {"width": text_width, "heads": max(1, text_width // 64)}} if text_width else None

    cfg = TrainConfig(
        archive=[Path(a) for a in archives], out=Path(out), init=init, epochs=epochs, batch_size=batch_size, lr=lr,
        seed=seed, frames=frames, weights_dtype=weights_dtype, amp=amp, augment=augment, max_steps=max_steps, max_minutes=max_minutes,
        work_dir=Path(work_dir) if work_dir else None, resume=resume, force=force, name=name,
        version=version, tasks=Path(tasks_file) if tasks_file else None, progress=not as_json,
        init_image=init_image, init_text=init_text, tokenizer=tokenizer, context_length=context_length or DEMO_CONTEXT,
        arch_overrides=overrides,
    )  # fmt: skip
    logging.getLogger("echosearch.training").setLevel(logging.INFO)
    result = run(cfg)
    if as_json:
        emit_json(result.to_dict())
        return
    d = result.to_dict()
    click.echo(f"wrote {out}: {d['steps']} steps in {d['seconds']:.0f} s ({d['seconds_per_step']:.2f} s/step), "
               f"final loss {d['final_loss']:.4f}")  # fmt: skip


labels_option = click.option(
    "--labels", "labels_file", default=None, type=click.Path(exists=True, dir_okay=False),
    help="Ground-truth CSV: a path (relative to --archive), sop_uid or study_uid column and one column "
         "per task (its name or an alias); tasks without a column use the archive's manifest/reports.",
)  # fmt: skip
tasks_option = click.option(
    "--tasks", "tasks_file", default=None, type=click.Path(exists=True, dir_okay=False),
    help="Zero-shot task file to use instead of the model's own (e.g. a site's).",
)  # fmt: skip


@cli.command(name="eval")
@archive_option
@model_option
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Write report.md, metrics.json and PNG plots here.")  # fmt: skip
@click.option("--frames", default=16, show_default=True, type=click.IntRange(min=1))
@tasks_option
@click.option("--thresholds", "thresholds_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Thresholds file for the tasks (what calibrate --out writes).")  # fmt: skip
@labels_option
@json_option
def eval_cmd(archive, model_name, out_dir, frames, tasks_file, thresholds_file, labels_file, as_json) -> None:
    """Retrieval, same-patient and zero-shot metrics of a model on a labelled archive."""
    from echosearch.labels.calibration import load_thresholds
    from echosearch.labels.tasks import load_tasks
    from echosearch.training.data import load_archive
    from echosearch.training.evaluate import LabelsFile, evaluate, public, write_report

    load_archive(archive)  # a bad archive or task file fails in a second, before the model loads
    if tasks_file:
        load_tasks(tasks_file)
    if thresholds_file:
        load_thresholds(thresholds_file)
    if labels_file:
        LabelsFile(labels_file)
    metrics = evaluate(_encoder(model_name), archive, frames=frames, progress=not as_json,
                       tasks_file=tasks_file, thresholds_file=thresholds_file, labels_file=labels_file)  # fmt: skip
    report = write_report(metrics, out_dir) if out_dir else None
    if as_json:
        emit_json({**public(metrics), "report": str(report) if report else None})
        return
    for row in metrics["targets"]:
        value = "n/a" if row["value"] is None else f"{row['value']:.3f}"
        click.echo(
            f"{row['metric']:<40} {value:>8}  target {row['target']:<8} {'met' if row['met'] else 'MISSED'}"
        )
    if report:
        click.echo(f"report: {report}")


@cli.command()
@click.option(
    "--archive",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Labelled archive: clips + manifest.csv + reports.csv (what `echosearch synth` writes). Without it: "
    "the clips indexed in --data, with ground truth from --labels.",
)
@data_option
@model_option
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False),
              help="Thresholds file to write (default: the model's site thresholds file in the cache dir, "
                   "which loading the model reads over the bundle's own; the bundle is not changed).")  # fmt: skip
@click.option("--into-bundle", is_flag=True,
              help="Write into the bundle's own thresholds file instead (re-hashing its manifest): for a "
                   "bundle you made and will ship; never package data of an installed echosearch.")  # fmt: skip
@click.option("--frames", default=16, show_default=True, type=click.IntRange(min=1))
@tasks_option
@labels_option
@json_option
def calibrate(
    archive, data, model_name, out_file, into_bundle, frames, tasks_file, labels_file, as_json
) -> None:
    """F1-optimal thresholds of binary zero-shot tasks (class offsets of categorical ones, Platt
    probabilities, regression errors): from a labelled archive, or from the clips already indexed in
    a data dir and a labels CSV (`--data DIR --labels labels.csv`: no clip is read again)."""
    from echosearch.labels.tasks import load_tasks
    from echosearch.training.calibrate import calibrate as run
    from echosearch.training.data import load_archive
    from echosearch.training.evaluate import LabelsFile

    if archive is None:
        if not labels_file:
            raise click.UsageError(
                "pass --archive DIR, or --labels FILE to calibrate on the clips indexed in --data"
            )
        if into_bundle:
            raise click.UsageError("--into-bundle calibrates a bundle on a labelled archive: pass --archive")
        result = _calibrate_index(data, model_name, out_file, tasks_file, labels_file)
        _print_calibration(result, as_json, out_file, into_bundle=False, index=True)
        return
    load_archive(archive)
    if into_bundle and (out_file or tasks_file):
        raise click.UsageError("--into-bundle writes the model's own thresholds: not with --out or --tasks")
    if tasks_file:
        if not out_file:
            raise click.UsageError("thresholds of a --tasks file go to a file of their own: pass --out FILE")
        load_tasks(tasks_file)
    if labels_file:
        LabelsFile(labels_file)
    result = run(_encoder(model_name), archive, out=Path(out_file) if out_file else None, frames=frames,
                 progress=not as_json, tasks_file=tasks_file, labels_file=labels_file,
                 into_bundle=into_bundle)  # fmt: skip
    _print_calibration(result, as_json, out_file, into_bundle, index=False)


def _calibrate_index(data, space, out_file, tasks_file, labels_file) -> dict:
    from echosearch.search import Engine
    from echosearch.training.calibrate import calibrate_index
    from echosearch.training.evaluate import LabelsFile

    LabelsFile(labels_file)  # a bad file fails before the model loads
    with Engine.open(data, space=space) as engine:
        return calibrate_index(engine, labels_file, Path(out_file) if out_file else None, tasks_file)


def _print_calibration(result: dict, as_json: bool, out_file, into_bundle: bool, index: bool) -> None:
    if as_json:
        emit_json(result)
        return
    for name, value in result["thresholds"].items():
        if isinstance(value, dict) and "threshold" in value:  # binary: threshold + Platt sigmoid
            click.echo(f"{name:<24} threshold {value['threshold']:.5f}  probability = "
                       f"sigmoid({value['slope']:.3f} * score {value['intercept']:+.3f})")  # fmt: skip
        elif isinstance(value, dict) and "mae" in value:  # regression: its error on the archive
            click.echo(f"{name:<24} mean absolute error {value['mae']:.2f}")
        elif isinstance(value, dict):  # a categorical task's class offsets
            click.echo(f"{name:<24} " + "  ".join(f"{c} {v:+.5f}" for c, v in value.items()))
        else:
            click.echo(f"{name:<24} {value:.5f}")
    click.echo(f"wrote {result['path']} (from {result['clips']} labelled clips)")
    if result.get("skipped"):
        click.echo(f"not calibrated (no labels, or one class only): {', '.join(result['skipped'])}")
    if index:
        relabel = f"echosearch relabel --thresholds {out_file}" if out_file else "echosearch relabel"
        click.echo(f"apply them to every indexed clip with: {relabel}")
    elif not (out_file or into_bundle):
        click.echo("(this site's thresholds for the model, read over its bundle's; the bundle is unchanged; "
                   "`echosearch index` relabels an index with them)")  # fmt: skip


def _encoder(model_name: str | None):
    from echosearch.models import load_model
    from echosearch.models.registry import default_model

    return load_model(model_name or default_model())
