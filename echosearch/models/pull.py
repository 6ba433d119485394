"""``models pull``: fetch a registry model (hub snapshot + raw files), verify it, write the bundle.

Why two routes: most hospital machines have no internet, so ``--from DIR`` builds the very same
bundle from files copied in by hand (a hub snapshot folder plus the vocabulary files); the online
route only adds the downloading. Offline, the online route fails within seconds (short timeouts,
``HF_HUB_OFFLINE`` honoured) and says how to use ``--from``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from echosearch.errors import EchosearchError, UsageError
from echosearch.fsutil import sha256_file
from echosearch.models.bundle import BIN_NAME, OPEN_CLIP_CONFIG, SAFETENSORS_NAME, ModelBundle, write_bundle
from echosearch.models.registry import RegistryEntry, get_entry

log = logging.getLogger(__name__)

HUB_HOST = "huggingface.co"
WEIGHT_CANDIDATES = (SAFETENSORS_NAME, "open_clip_pytorch_model.safetensors", "model.safetensors", BIN_NAME)


class PullError(EchosearchError):
    """A model could not be fetched or imported."""


def _offline_hint(entry: RegistryEntry) -> str:
    files = ", ".join(f.name for f in entry.files)
    extra = f" plus {files}" if files else ""
    return (
        f"copy the hub snapshot of {entry.weights} (open_clip_config.json and the weights){extra} into a "
        f"folder and run `echosearch models pull {entry.name} --from DIR`"
    )


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_online(host: str = HUB_HOST, timeout: float = 5.0) -> None:
    """Fail fast (seconds, not minutes of retries) when the hub cannot be reached."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        raise PullError(f"cannot reach {host} ({exc.__class__.__name__}: {exc})") from exc


def find_weights(folder: Path) -> Path:
    """The weights file of a hub snapshot folder (safetensors preferred over .bin)."""
    for name in WEIGHT_CANDIDATES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not found:
        raise PullError(f"no weights in {folder} (expected {SAFETENSORS_NAME} or {BIN_NAME})")
    return found[0]


def _verify_raw(path: Path, expected: str, name: str) -> None:
    h = sha256_file(path)
    if h != expected:
        raise PullError(
            f"{name} at {path} has sha256 {h}, but the registry pins {expected}: wrong or altered file"
        )


def build_from_folder(
    entry: RegistryEntry,
    folder: Path,
    out_dir: Path | None = None,
    force: bool = False,
    record_origin: bool = True,
) -> ModelBundle:
    """Write ``entry``'s bundle from a hub-snapshot-like folder (config + weights + the raw files)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UsageError(f"--from folder not found: {folder}")
    config_path = folder / OPEN_CLIP_CONFIG
    if not config_path.is_file():
        raise PullError(
            f"{folder} has no {OPEN_CLIP_CONFIG}; it should hold the hub snapshot of {entry.weights}"
        )
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise PullError(f"{config_path} is not valid JSON: {exc}") from exc
    if "model_cfg" not in config:
        raise PullError(f"{config_path} has no model_cfg")
    weights = find_weights(folder)
    extra: dict[str, Path] = {}
    missing = []
    for raw in entry.files:
        p = folder / raw.name
        if not p.is_file():
            missing.append(f"{raw.name} ({raw.url})")
            continue
        _verify_raw(p, raw.sha256, raw.name)
        extra[raw.name] = p
    if missing:
        raise PullError(f"{folder} lacks files the {entry.name} bundle needs: {'; '.join(missing)}")
    manifest = entry.manifest_template()
    if record_origin:
        manifest.source["imported_from"] = str(folder)
    return write_bundle(
        out_dir or entry.bundle_dir,
        manifest,
        config["model_cfg"],
        config.get("preprocess_cfg", {}),
        weights_file=weights,
        extra_files=extra,
        overwrite=force,
    )


def _download_raw(entry: RegistryEntry, dest: Path, timeout: float) -> None:
    for raw in entry.files:
        target = dest / raw.name
        try:
            with urllib.request.urlopen(raw.url, timeout=timeout) as resp, open(target, "wb") as f:
                shutil.copyfileobj(resp, f)
        except (urllib.error.URLError, OSError) as exc:
            raise PullError(f"could not download {raw.url}: {exc}") from exc
        _verify_raw(target, raw.sha256, raw.name)


def _download_hub(entry: RegistryEntry, dest: Path) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi()
    files = set(api.list_repo_files(entry.hub_repo, revision=entry.revision))
    weights = next((n for n in WEIGHT_CANDIDATES if n in files), None)
    if weights is None or OPEN_CLIP_CONFIG not in files:
        raise PullError(
            f"{entry.weights} does not look like an open_clip model repo (files: {sorted(files)})"
        )
    for name in (OPEN_CLIP_CONFIG, weights):
        hf_hub_download(entry.hub_repo, name, revision=entry.revision, local_dir=dest)


def pull(
    name: str,
    from_dir: str | os.PathLike | None = None,
    *,
    registry: str | os.PathLike | None = None,
    force: bool = False,
    timeout: float = 5.0,
) -> ModelBundle:
    """Fetch registry model ``name`` into the cache (or import it ``from_dir``) and return the bundle."""
    entry = get_entry(name, registry)
    if from_dir is not None:
        if not entry.pullable:
            raise UsageError(f"model {name!r} is not pulled from the hub; nothing to import")
        return build_from_folder(entry, Path(from_dir), force=force)
    if not entry.pullable:
        raise UsageError(f"model {name!r} ships with echosearch ({entry.bundle}); there is nothing to pull")
    if (entry.bundle_dir / "manifest.json").is_file() and not force:
        from echosearch.models.bundle import open_bundle

        return open_bundle(entry.bundle_dir)
    if _hub_offline():
        raise PullError(f"HF_HUB_OFFLINE is set, so {name} cannot be downloaded; {_offline_hint(entry)}")
    try:
        check_online(timeout=timeout)
    except PullError as exc:
        raise PullError(f"{exc}; no network? {_offline_hint(entry)}") from exc
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout)))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(max(timeout, 30))))
    entry.bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".pull-{name}.", dir=entry.bundle_dir.parent))
    try:
        try:
            _download_hub(entry, staging)
        except PullError:
            raise
        except Exception as exc:  # huggingface_hub raises many kinds (HTTP, offline, gated, ...)
            raise PullError(f"download of {entry.weights} failed: {exc}; {_offline_hint(entry)}") from exc
        _download_raw(entry, staging, timeout=max(timeout, 30))
        return build_from_folder(entry, staging, force=force, record_origin=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
