"""Model bundles: a folder open_clip can load (``local-dir:``) plus what echosearch needs around it.

Layout (the Hugging Face hub layout open_clip reads, plus our files)::

    manifest.json            name, version, source, license, intended use, clinical flag,
                             tokenizer spec, task file, thresholds file, sha256 of every other file
    open_clip_config.json    {"model_cfg": ..., "preprocess_cfg": ...}
    open_clip_model.safetensors  (or open_clip_pytorch_model.bin, loaded with weights_only=True)
    template_vocab.txt, wordpiece.tokenizer, tasks file, thresholds.json   (as the manifest says)

Why checksums on every load: bundles are copied between machines by hand in offline hospitals, and
a truncated or altered weight file gives silently wrong embeddings. Hashing ~600 MB on each start
is slow, so a verified file is remembered by (inode, size, mtime) in the cache dir and re-hashed
only when one of those changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echosearch.errors import ConfigError, EchosearchError
from echosearch.fsutil import atomic_write_text, sha256_file
from echosearch.paths import cache_dir

if TYPE_CHECKING:  # torch is imported only to write weights: reading a manifest stays light
    import torch

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
OPEN_CLIP_CONFIG = "open_clip_config.json"
SAFETENSORS_NAME = "open_clip_model.safetensors"
BIN_NAME = "open_clip_pytorch_model.bin"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")
FORMAT_VERSION = 1
SITE_THRESHOLDS_DIR = "thresholds"  # in the cache dir: see ModelBundle.site_thresholds_path


class BundleError(EchosearchError):
    """A model bundle is missing, incomplete or malformed."""


class ChecksumError(BundleError):
    """A bundle file does not match the sha256 its manifest records (tampered or corrupted)."""


@dataclass
class Manifest:
    """What a bundle is, where it came from, and the sha256 of each of its files."""

    name: str
    version: str
    tokenizer: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    license: str = "unknown"
    intended_use: str = ""
    clinical: bool = False
    description: str = ""
    tasks: dict[str, str] | None = None
    thresholds: str | None = None
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = set(cls.__dataclass_fields__)
        missing = {"name", "version", "tokenizer"} - set(data)
        if missing:
            raise BundleError(f"manifest is missing {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in known})


class _VerifiedCache:
    """Remembers files already hashed: "device:inode" -> (size, mtime_ns, sha256).

    Keyed by inode rather than path so that a bundle written in a temp folder and renamed into
    place (or moved by hand) keeps its entries; any rewrite changes size or mtime and re-hashes.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "verified-files.json"
        try:
            self.entries: dict[str, list] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def sha256(self, path: Path) -> str:
        st = path.stat()
        key = f"{st.st_dev}:{st.st_ino}"
        stamp = [st.st_size, st.st_mtime_ns]
        hit = self.entries.get(key)
        if hit and hit[:2] == stamp:
            return hit[2]
        digest = sha256_file(path)
        self.entries[key] = [*stamp, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if not self.dirty:
            return
        try:  # a read-only cache only costs speed, never correctness
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.entries), fsync=False)
        except OSError as exc:
            log.debug("could not save checksum cache %s: %s", self.path, exc)


@dataclass
class ModelBundle:
    """A loaded manifest + open_clip config; ``path`` is None for an in-memory ``arch:`` bundle."""

    path: Path | None
    manifest: Manifest
    open_clip_config: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def clinical(self) -> bool:
        return bool(self.manifest.clinical)

    @property
    def model_cfg(self) -> dict[str, Any]:
        return self.open_clip_config["model_cfg"]

    @property
    def preprocess_cfg(self) -> dict[str, Any]:
        """size, mean, std, interpolation, resize_mode: open_clip defaults overlaid by the config."""
        from open_clip.transform import PreprocessCfg, merge_preprocess_dict

        cfg = merge_preprocess_dict(PreprocessCfg(), self.open_clip_config.get("preprocess_cfg", {}))
        cfg.setdefault("size", self.model_cfg.get("vision_cfg", {}).get("image_size", 224))
        size = cfg["size"]
        cfg["size"] = int(size[0] if isinstance(size, list | tuple) else size)
        cfg["mean"], cfg["std"] = tuple(cfg["mean"]), tuple(cfg["std"])
        return cfg

    @property
    def context_length(self) -> int:
        return int(self.model_cfg.get("text_cfg", {}).get("context_length", 77))

    @property
    def tokenizer_spec(self) -> dict[str, Any]:
        return dict(self.manifest.tokenizer)

    @property
    def weights_path(self) -> Path | None:
        if self.path is None:
            return None
        for name in (SAFETENSORS_NAME, BIN_NAME):
            if (self.path / name).is_file():
                return self.path / name
        found = sorted(p for p in self.path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        return found[0] if found else None

    @property
    def tasks_path(self) -> Path | None:
        if self.path is None or not self.manifest.tasks:
            return None
        return self.path / self.manifest.tasks["file"]

    @property
    def thresholds(self) -> dict[str, float]:
        """Calibrated zero-shot thresholds by task name: the bundle's own, overlaid task by task by
        this site's (:attr:`site_thresholds_path`, what ``echosearch calibrate`` writes); empty when
        there are none."""
        from echosearch.labels.calibration import load_thresholds

        own = self.path / self.manifest.thresholds if self.path and self.manifest.thresholds else None
        site = self.site_thresholds_path
        return {
            **(load_thresholds(own) if own else {}),
            **(load_thresholds(site) if site and site.is_file() else {}),
        }

    @property
    def identity(self) -> str | None:
        """sha256 over the bundle's checksummed files except its thresholds file: the same for every
        copy of the same model (weights, config, tokenizer, tasks), different for any other."""
        if self.path is None:
            return None
        files = sorted((k, v) for k, v in self.manifest.files.items() if k != self.manifest.thresholds)
        return hashlib.sha256(json.dumps(files).encode()).hexdigest()

    @property
    def site_thresholds_path(self) -> Path | None:
        """This site's calibrated thresholds for this model, kept outside the bundle (which may be
        package data of an installed echosearch, or a pulled copy): ``<cache>/thresholds/NAME-ID.json``,
        ID from :attr:`identity`, so a retrained or re-pulled model never inherits them."""
        if self.identity is None:
            return None
        name = re.sub(r"[^\w.-]", "_", self.name)
        return cache_dir() / SITE_THRESHOLDS_DIR / f"{name}-{self.identity[:16]}.json"

    def load_tasks(self) -> list:
        """The bundle's zero-shot tasks, through echosearch.labels.tasks (format named in the manifest)."""
        if self.tasks_path is None:
            return []
        from echosearch.labels.tasks import load_tasks, tasks_from_echoclip_prompts

        fmt = self.manifest.tasks.get("format", "echosearch")
        if fmt == "echoclip-prompts":
            return tasks_from_echoclip_prompts(json.loads(self.tasks_path.read_text()))
        return load_tasks(self.tasks_path)

    def verify(self, use_cache: bool = True) -> None:
        """Raise :class:`ChecksumError` unless every file matches the manifest and no weights are unlisted."""
        if self.path is None:
            return
        cache = _VerifiedCache() if use_cache else None
        try:
            for rel, expected in sorted(self.manifest.files.items()):
                f = self.path / rel
                if not f.is_file():
                    raise BundleError(f"bundle {self.path} is incomplete: {rel} is missing")
                actual = cache.sha256(f) if cache else sha256_file(f)
                if actual != expected:
                    raise ChecksumError(
                        f"{f} fails its checksum (sha256 {actual[:12]}…, manifest says {expected[:12]}…): "
                        "the file was altered or corrupted; re-pull or re-copy the model"
                    )
        finally:
            if cache:
                cache.save()
        # open_clip loads whichever weight file it finds: an unlisted one must not slip in.
        stray = [p.name for p in self.path.iterdir() if p.suffix in WEIGHT_SUFFIXES]
        stray = [n for n in stray if n not in self.manifest.files]
        if stray:
            raise ChecksumError(
                f"bundle {self.path} holds weight files not in its manifest: {', '.join(stray)}"
            )


def open_bundle(path: str | os.PathLike, verify: bool = True) -> ModelBundle:
    """Read a bundle folder; verify its checksums unless ``verify=False``."""
    path = Path(path).expanduser()
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path} is not a model bundle (no {MANIFEST})")
    try:
        manifest = Manifest.from_dict(json.loads(manifest_path.read_text()))
        config = json.loads((path / OPEN_CLIP_CONFIG).read_text())
    except FileNotFoundError as exc:
        raise BundleError(f"bundle {path} is incomplete: {OPEN_CLIP_CONFIG} is missing") from exc
    except ValueError as exc:
        raise BundleError(f"bundle {path} has an unreadable JSON file: {exc}") from exc
    if "model_cfg" not in config:
        raise BundleError(f"{path / OPEN_CLIP_CONFIG} has no model_cfg")
    if OPEN_CLIP_CONFIG not in manifest.files:
        raise BundleError(f"{manifest_path} does not checksum {OPEN_CLIP_CONFIG}")
    bundle = ModelBundle(path=path, manifest=manifest, open_clip_config=config)
    if verify:
        bundle.verify()
    return bundle


def write_manifest(folder: Path, manifest: Manifest) -> Manifest:
    """Hash every file in ``folder`` (except the manifest) into ``manifest.files`` and write it."""
    cache = _VerifiedCache()  # primes the fast path, so the first load does not hash again
    manifest.files = {
        p.relative_to(folder).as_posix(): cache.sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    cache.save()
    (folder / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return manifest


def save_weights(state_dict: dict[str, torch.Tensor], folder: Path, fmt: str = "safetensors") -> Path:
    """Write a state dict as ``open_clip_model.safetensors`` (default) or ``open_clip_pytorch_model.bin``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        out = folder / SAFETENSORS_NAME
        save_file(tensors, str(out))
    elif fmt == "bin":
        import torch

        out = folder / BIN_NAME
        torch.save(tensors, out)
    else:
        raise ValueError(f"unknown weights format {fmt!r}")
    return out


def write_bundle(
    out_dir: str | os.PathLike,
    manifest: Manifest,
    model_cfg: dict[str, Any],
    preprocess_cfg: dict[str, Any],
    state_dict: dict[str, torch.Tensor] | None = None,
    weights_file: Path | None = None,
    extra_files: dict[str, Path] | None = None,
    thresholds: dict[str, float] | None = None,
    weights_format: str = "safetensors",
    overwrite: bool = False,
) -> ModelBundle:
    """Write a complete bundle atomically (built in a temp folder, then renamed into place).

    Give either ``state_dict`` (saved in ``weights_format``) or an existing ``weights_file`` (copied
    under its own name, e.g. from a hub snapshot). ``extra_files`` maps bundle file names to sources
    (tokenizer vocabulary, WordPiece base, task file); their names must match what the manifest's
    tokenizer spec and ``tasks`` refer to.
    """
    out = Path(out_dir).expanduser()
    if out.exists() and not overwrite:
        raise BundleError(f"{out} already exists (use overwrite/--force to replace it)")
    if (state_dict is None) == (weights_file is None):
        raise ValueError("give exactly one of state_dict or weights_file")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
        (tmp / OPEN_CLIP_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        if state_dict is not None:
            save_weights(state_dict, tmp, weights_format)
        else:
            shutil.copyfile(weights_file, tmp / Path(weights_file).name)
        for name, src in (extra_files or {}).items():
            shutil.copyfile(src, tmp / name)
        if thresholds:
            manifest.thresholds = manifest.thresholds or "thresholds.json"
            (tmp / manifest.thresholds).write_text(json.dumps(thresholds, indent=2) + "\n")
        _check_references(tmp, manifest)
        write_manifest(tmp, manifest)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_bundle(out)


def _check_references(folder: Path, manifest: Manifest) -> None:
    """Every file the manifest names (tokenizer files, tasks, thresholds) must be in the bundle."""
    named = [v for k, v in manifest.tokenizer.items() if k != "kind" and isinstance(v, str)]
    if manifest.tasks:
        named.append(manifest.tasks["file"])
    if manifest.thresholds:
        named.append(manifest.thresholds)
    missing = [n for n in named if not (folder / n).is_file()]
    if missing:
        raise ConfigError(
            f"bundle {manifest.name!r} refers to files it does not contain: {', '.join(missing)}"
        )
