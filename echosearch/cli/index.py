"""``echosearch index PATH...`` (the bulk indexer), ``echosearch verify [--repair]`` and
``echosearch reindex`` (rebuild a space's vector index as the kind that suits its size)."""

from __future__ import annotations

import os

import click

from echosearch.cli.common import data_option, emit_json, json_option, space_option
from echosearch.cli.main import cli
from echosearch.errors import EchosearchError
from echosearch.lock import WriterLock
from echosearch.paths import data_dir as resolve_data_dir


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@data_option
@click.option(
    "--model", default=None, help="Registry name, bundle folder or arch:NAME (default: the registry's)."
)
@click.option("--workers", type=click.IntRange(min=0), default=None, help="Reader processes (0: in-process).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Frames per model forward pass.")
@click.option("--frames", default="uniform:16", show_default=True, help="Frame sampling policy per clip.")
@click.option(
    "--reports", type=click.Path(dir_okay=False, exists=True), help="CSV: study_uid/accession, report."
)
@click.option("--include", multiple=True, help="Only files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, help="Skip files matching this glob (repeatable).")
@click.option("--prune", is_flag=True, help="Remove indexed clips whose files are gone.")
@click.option(
    "--retry-failed", is_flag=True, help="Read again files that failed before with the same content."
)
@click.option("--no-mask", is_flag=True, help="Do not blank the image outside the ultrasound sector.")
@click.option(
    "--commit-every", type=click.IntRange(min=1), default=32, show_default=True, help="Clips per commit."
)
@click.option(
    "--tasks",
    type=click.Path(dir_okay=False, exists=True),
    help="Zero-shot task file (default: the model's).",
)
@click.option(
    "--thresholds",
    type=click.Path(dir_okay=False, exists=True),
    help="Thresholds file for the tasks (what `echosearch calibrate --out` writes).",
)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="DICOMweb: only studies from this date on.")
@click.option(
    "--study", "studies", multiple=True, help="DICOMweb: only this Study Instance UID (repeatable)."
)
@click.option("--modality", help="DICOMweb: only series of this modality (e.g. US).")
@click.option("--stills", is_flag=True, help="DICOMweb: index single-frame ultrasound stills too.")
@click.option("--keep", is_flag=True, help="DICOMweb: keep the retrieved files in DATA/spool/dicomweb.")
@click.option(
    "--all", "all_studies", is_flag=True, help="DICOMweb: ask for every study, not only recent ones."
)
@click.option(
    "--netrc", "netrc_file", type=click.Path(dir_okay=False), help="DICOMweb: a netrc file with the login."
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where readers and encoders run: processes here, or a Ray cluster (pip install 'echosearch[ray]').",
)
@click.option(
    "--ray-address",
    metavar="auto|ray://HOST:10001",
    default=None,
    help="The Ray cluster to join (default: start a local one).",
)
@click.option(
    "--encoders", type=click.IntRange(min=1), default=1, show_default=True, help="Ray encoder actors."
)
@click.option(
    "--gpus-per-encoder",
    type=click.FloatRange(min=0),
    default=0.0,
    help="GPUs per Ray encoder (0: CPU, bf16).",
)
@click.option(
    "--cpus-per-encoder",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="CPU threads per encoder.",
)
@click.option(
    "--index-memory",
    metavar="SIZE",
    default=None,
    help="Memory the vector index may take (e.g. 8GB): past it the index keeps compressed codes in "
    "memory and exact vectors on disk. Stored in the space; default: exact vectors in memory.",
)
@json_option
def index(
    paths, data, model, workers, batch_size, frames, reports, include, exclude, prune, retry_failed, no_mask,
    commit_every, tasks, thresholds, since, studies, modality, stills, keep, all_studies, netrc_file,
    engine, ray_address, encoders, gpus_per_encoder, cpus_per_encoder, index_memory, as_json,
) -> None:  # fmt: skip
    """Index clip files and folders (DICOM, AVI, MP4, DICOMDIR), or a DICOMweb server
    (dicomweb+http(s)://HOST/PATH; credentials from ECHOSEARCH_DICOMWEB_USER/_PASSWORD, _TOKEN or
    a netrc file), into the data dir."""
    from echosearch.index.spaces import parse_memory
    from echosearch.indexer.runner import IndexOptions, run_index
    from echosearch.models.registry import default_model

    try:
        memory = parse_memory(index_memory)
    except EchosearchError as exc:
        raise click.BadParameter(str(exc), param_hint="'--index-memory'") from None

    opts = IndexOptions(
        paths=list(paths),
        data_dir=str(resolve_data_dir(data)),
        model=model or default_model(),
        workers=workers,
        batch_size=batch_size,
        frames=frames,
        reports=reports,
        include=list(include),
        exclude=list(exclude),
        prune=prune,
        retry_failed=retry_failed,
        mask=not no_mask,
        commit_every=commit_every,
        tasks=tasks,
        thresholds=thresholds,
        progress=None,
        engine=engine,
        ray_address=ray_address,
        encoders=encoders,
        gpus_per_encoder=gpus_per_encoder,
        cpus_per_encoder=cpus_per_encoder,
        index_memory=memory,
    )
    if engine == "local" and (ray_address or encoders != 1 or gpus_per_encoder):
        raise click.UsageError("--ray-address, --encoders and --gpus-per-encoder need --engine ray")
    urls = [p for p in paths if p.startswith("dicomweb+")]
    dicomweb_only = (since, studies, modality, stills, keep, all_studies, netrc_file)
    if urls:
        if len(paths) > 1:
            raise click.UsageError("index one DICOMweb server per run, and files in a run of their own")
        if engine != "local":
            raise click.UsageError("a DICOMweb server is indexed with the local engine (--engine local)")
        summary = _index_dicomweb(
            opts, urls[0], since, studies, modality, stills, keep, all_studies, netrc_file
        )
    elif any(dicomweb_only):
        raise click.UsageError(
            "--since/--study/--modality/--stills/--keep/--all/--netrc are for DICOMweb URLs"
        )
    else:
        for p in paths:  # as click.Path(exists=True) did: a usage error (exit 2)
            if not os.path.exists(p):
                raise click.BadParameter(f"Path {p!r} does not exist.", param_hint="'PATHS...'")
        summary = run_index(opts)
    if as_json:
        emit_json(summary.to_dict())
    else:
        for line in summary.lines():
            click.echo(line)


def _index_dicomweb(opts, url, since, studies, modality, stills, keep, all_studies, netrc_file):  # noqa: ANN001
    """``echosearch index dicomweb+http(s)://...`` (see :mod:`echosearch.indexer.dicomweb`)."""
    import logging
    from urllib.parse import urlsplit

    from echosearch.indexer.dicomweb import DicomwebOptions, run_dicomweb_index
    from echosearch.pacs.credentials import resolve_credentials
    from echosearch.sources import dicomweb_base

    try:
        base = dicomweb_base(url)
    except EchosearchError as exc:
        raise click.BadParameter(str(exc), param_hint="PATHS") from None
    source = DicomwebOptions(
        url=base,
        since=since.date() if since else None,
        studies=list(studies),
        modality=modality,
        stills=stills,
        keep=keep,
        all=all_studies,
        credentials=resolve_credentials(urlsplit(base).hostname or "", netrc_file),
    )
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # each retry: the error says it
    return run_dicomweb_index(opts, source)


@cli.command()
@data_option
@space_option
@click.option(
    "--tasks",
    type=click.Path(dir_okay=False, exists=True),
    help="Zero-shot task file (default: the model's).",
)
@click.option(
    "--thresholds",
    type=click.Path(dir_okay=False, exists=True),
    help="Thresholds file for the tasks (what `echosearch calibrate --out` writes).",
)
@json_option
def relabel(data, model, tasks, thresholds, as_json) -> None:
    """Recompute every zero-shot label from the stored frame embeddings (no video is read again)."""
    from echosearch.indexer.relabel import relabel as run
    from echosearch.labels.calibration import load_thresholds
    from echosearch.labels.tasks import load_tasks
    from echosearch.search import Engine

    if tasks:  # a broken file fails before the model loads
        load_tasks(tasks)
    if thresholds:
        load_thresholds(thresholds)
    with WriterLock(resolve_data_dir(data)):
        with Engine.open(data, space=model, writer=True) as engine:
            summary = run(engine.db, engine.space, engine.encoder, tasks, thresholds)
    if as_json:
        emit_json(summary.to_dict())
    else:
        for line in summary.lines():
            click.echo(line)


@cli.command()
@data_option
@click.option(
    "--repair",
    is_flag=True,
    help="Fix what is wrong without losing what is intact (rebuild vectors and the frame map, rewrite metadata).",
)
@json_option
def verify(data, repair, as_json) -> None:
    """Check the database, FAISS indexes, frame stores and metadata files: present, intact, in agreement."""
    from echosearch.indexer.reconcile import StoreCheck, verify_data_dir
    from echosearch.store.db import has_database, open_db

    root = resolve_data_dir(data)
    if not has_database(root):
        raise EchosearchError(f"{root} has no echosearch.db (run `echosearch index` first)")
    lock = WriterLock(root).acquire() if repair else None  # checking alone never waits for a writer
    db = open_db(root, writer=repair)
    store, after = StoreCheck(), StoreCheck()
    try:
        checks = verify_data_dir(root, db, repair=repair, store=store)
        remaining = verify_data_dir(root, db, store=after) if repair else checks
    finally:
        db.close()
        if lock is not None:
            lock.release()
    if not repair:
        after = store
    problems = store.problems + sum(c.problems for c in checks)
    left = after.problems + sum(c.problems for c in remaining)
    if as_json:
        emit_json(
            {
                "data_dir": str(root),
                "ok": problems == 0,
                "repaired": repair,
                "problems": problems,
                "problems_left": left,
                "damage": store.damage,
                "store_repaired": store.repaired,
                "spaces": [c.to_dict() for c in checks],
            }
        )
    else:
        for line in store.damage:
            click.echo(f"damaged: {line}")
        if store.repaired:
            click.echo("repaired: " + ", ".join(f"{k} {v}" for k, v in store.repaired.items()))
        for c in checks:
            state = "ok" if c.ok else f"{c.problems} problems"
            frames = "" if c.frames_count is None else f", frames {c.frames_count}"
            click.echo(f"{c.space} ({c.kind}): db {c.db_count}, index {c.index_count}{frames}: {state}")
            for line in c.damage:
                click.echo(f"  damaged: {line}")
            for key in c.ID_LISTS:
                ids = getattr(c, key)
                if ids:
                    click.echo(f"  {key.replace('_', ' ')}: {len(ids)} (e.g. {', '.join(map(str, ids[:5]))})")
            if c.repaired:
                click.echo("  repaired: " + ", ".join(f"{k} {v}" for k, v in c.repaired.items() if v))
    if problems and not repair:
        raise EchosearchError(f"verify found {problems} problems; run `echosearch verify --repair`")
    if left:
        raise EchosearchError(_what_is_left(after, remaining, left))


def _what_is_left(store, checks, left: int) -> str:  # noqa: ANN001
    """One line: what the repair could not do here, and what will."""
    if any(d.startswith("SQLite") for d in store.damage):
        return (
            "the database file is damaged and cannot be repaired in place: restore echosearch.db from "
            "a backup, or salvage it with `sqlite3 echosearch.db .recover`"
        )
    reread = sum(len(c.missing_frames) for c in checks if c.kind == "video")
    reembed = sum(len(c.missing_in_index) for c in checks if c.kind == "report")
    if reread or reembed:
        return (
            f"{reread} clips must be read again and {reembed} reports embedded again: run "
            "`echosearch index` on the archive (it re-reads only those)"
        )
    return f"{left} problems are left after the repair"


@cli.command()
@data_option
@space_option
@click.option(
    "--index-memory",
    metavar="SIZE",
    default=None,
    help="A new memory budget for the index (e.g. 8GB, stored in the space; default: keep the space's).",
)
@click.option(
    "--kind",
    type=click.Choice(["auto", "flat", "ivf", "ivf-sq8", "ivf-pq", "hnsw"]),
    default="auto",
    show_default=True,
    help="The index kind (auto: by size and memory budget).",
)
@json_option
def reindex(data, model, index_memory, kind, as_json) -> None:
    """Rebuild a space's vector index as the kind that suits its size and memory budget (exact,
    IVF, IVF with 8-bit or PQ codes), retrained on a sample and filled in chunks; searches keep
    answering from the old index meanwhile."""
    from echosearch.index.spaces import list_spaces, parse_memory

    try:
        memory = parse_memory(index_memory)
    except EchosearchError as exc:
        raise click.BadParameter(str(exc), param_hint="'--index-memory'") from None
    root = resolve_data_dir(data)
    spaces = [sp for sp in list_spaces(root) if sp.info.kind == "video"]
    if not spaces:
        raise click.UsageError(f"no embedding space in {root}: index some clips first")
    if model:
        chosen = [sp for sp in spaces if model in (sp.name, sp.info.model_name)]
        if not chosen:
            names = ", ".join(sp.name for sp in spaces)
            raise click.BadParameter(f"no space {model!r} in {root} (have: {names})", param_hint="'--space'")
        spaces = chosen
    with WriterLock(root, "reindex"):
        results = [sp.reindex(memory=memory, kind=None if kind == "auto" else kind) for sp in spaces]
    if as_json:
        emit_json({"spaces": results})
        return
    for r in results:
        b, a = r["before"], r["after"]
        click.echo(f"{r['space']}: {b['ntotal']:,} vectors, {b['kind']} -> {a['kind']}" + _ivf_detail(a))


def _ivf_detail(d: dict) -> str:
    if "nlist" not in d:
        return ""
    return f" ({d['nlist']} lists, {d['code_bytes']} bytes per vector, nprobe {d['nprobe']})"
