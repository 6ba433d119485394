"""``echosearch models list | info NAME | pull NAME [--from DIR]``: the model registry and cache."""

from __future__ import annotations

from pathlib import Path

import click

from echosearch.cli.common import data_option, emit_json, json_option
from echosearch.cli.main import cli


@cli.group()
def models() -> None:
    """List, inspect and fetch model bundles (EchoCLIP, EchoCLIP-R, the demo model)."""


@models.command("list")
@data_option
@json_option
def list_cmd(data: str | None, as_json: bool) -> None:
    """Registry models and whether each is ready, not pulled, or not built yet."""
    from echosearch.models import list_models

    rows = list_models()
    if as_json:
        emit_json(rows)
        return
    width = max(len(r["name"]) for r in rows) if rows else 4
    for r in rows:
        flag = "" if r["clinical"] else "  [not clinical]"
        click.echo(f"{r['name']:<{width}}  {r['status']:<13}  {r['tokenizer']:<9}  {r['description']}{flag}")


@models.command()
@click.argument("name")
@data_option
@json_option
def info(name: str, data: str | None, as_json: bool) -> None:
    """Details of a registry model (or bundle folder): source, license, files, checksums."""
    from echosearch.models.bundle import BundleError
    from echosearch.models.registry import get_entry, resolve_bundle

    try:
        bundle = resolve_bundle(name, verify=False)
    except BundleError:
        bundle = None
    if bundle is None:  # registered but not present: show the registry entry
        entry = get_entry(name)
        doc = {
            "name": entry.name,
            "status": entry.status(),
            "path": str(entry.bundle_dir),
            "description": entry.description,
            "source": entry.weights or entry.bundle,
            "revision": entry.revision,
            "files": {f.name: {"url": f.url, "sha256": f.sha256} for f in entry.files},
            "tokenizer": entry.tokenizer,
            "license": entry.license,
            "intended_use": entry.intended_use,
            "clinical": entry.clinical,
        }
    else:
        doc = {
            "status": "ready",
            "path": str(bundle.path) if bundle.path else None,
            **bundle.manifest.to_dict(),
        }
        site = bundle.site_thresholds_path  # what `echosearch calibrate` wrote for this model, if anything
        doc["site_thresholds"] = str(site) if site and site.is_file() else None
        doc["model_cfg"] = bundle.model_cfg
        doc["preprocess_cfg"] = bundle.preprocess_cfg
    if as_json:
        emit_json(doc)
        return
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        else:
            click.echo(f"{key}: {value}")


@models.command()
@click.argument("name")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Build the bundle from files copied in by hand (hub snapshot + vocabulary files), offline.",
)
@click.option("--force", is_flag=True, help="Replace a bundle already in the cache.")
@data_option
@json_option
def pull(name: str, from_dir: Path | None, force: bool, data: str | None, as_json: bool) -> None:
    """Fetch NAME from its pinned public sources into the cache ($ECHOSEARCH_CACHE), verified."""
    from echosearch.models.pull import pull as do_pull

    bundle = do_pull(name, from_dir=from_dir, force=force)
    doc = {
        "name": bundle.name,
        "version": bundle.version,
        "path": str(bundle.path),
        "files": bundle.manifest.files,
    }
    if as_json:
        emit_json(doc)
    else:
        click.echo(
            f"{bundle.name} {bundle.version} ready at {bundle.path} ({len(bundle.manifest.files)} files verified)"
        )
