"""The model registry (``configs/models.yaml``) and name -> bundle resolution.

Why a YAML file: adding or pinning a model is editing data, as in open_clip's pretrained registry.
A site can point ``$ECHOSEARCH_MODELS_REGISTRY`` (or the ``registry=`` argument) at its own file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from echosearch.errors import ConfigError, UsageError
from echosearch.models import arch
from echosearch.models.bundle import BundleError, Manifest, ModelBundle, open_bundle
from echosearch.paths import cache_dir, configs_dir, package_data

REGISTRY_ENV = "ECHOSEARCH_MODELS_REGISTRY"
HF_PREFIX = "hf-hub:"
PACKAGE_PREFIX = "package:"


@dataclass
class RawFile:
    """A file fetched besides the hub snapshot (vocabulary, WordPiece base, prompts), checksummed."""

    name: str
    url: str
    sha256: str


@dataclass
class RegistryEntry:
    name: str
    description: str = ""
    version: str = "unknown"
    weights: str | None = None
    bundle: str | None = None
    revision: str | None = None
    tokenizer: dict[str, Any] | None = None  # hub entries: required; shipped bundles carry their own
    files: list[RawFile] = field(default_factory=list)
    tasks: dict[str, str] | None = None
    license: str = "unknown"
    intended_use: str = ""
    clinical: bool = False
    paper: str | None = None
    lexicon: str | None = None  # configs/lexicon/<name>.yaml: how free-text queries become its phrases
    registry_dir: Path = field(default_factory=Path)

    @property
    def hub_repo(self) -> str | None:
        if self.weights and self.weights.startswith(HF_PREFIX):
            return self.weights[len(HF_PREFIX) :]
        return None

    @property
    def bundle_dir(self) -> Path:
        """Where this model's bundle lives: the pulled copy in the cache, or the shipped/declared folder."""
        if self.bundle:
            if self.bundle.startswith(PACKAGE_PREFIX):
                return package_data() / self.bundle[len(PACKAGE_PREFIX) :]
            p = Path(self.bundle).expanduser()
            return p if p.is_absolute() else self.registry_dir / p
        return cache_dir() / "models" / self.name

    @property
    def pullable(self) -> bool:
        return self.hub_repo is not None

    def status(self) -> str:
        if (self.bundle_dir / "manifest.json").is_file():
            return "ready"
        return "not pulled" if self.pullable else "not built yet"

    def manifest_template(self) -> Manifest:
        """The manifest fields a pull fills in (files/checksums are added when the bundle is written)."""
        source: dict[str, Any] = {"weights": self.weights, "revision": self.revision}
        if self.files:
            source["files"] = {f.name: f.url for f in self.files}
        if self.paper:
            source["paper"] = self.paper
        return Manifest(
            name=self.name,
            version=self.version,
            tokenizer=dict(self.tokenizer or {"kind": "clip-bpe"}),
            source=source,
            license=self.license,
            intended_use=self.intended_use,
            clinical=self.clinical,
            description=self.description,
            tasks=dict(self.tasks) if self.tasks else None,
        )


def registry_path(registry: str | os.PathLike | None = None) -> Path:
    if registry:
        return Path(registry).expanduser()
    env = os.environ.get(REGISTRY_ENV)
    return Path(env).expanduser() if env else configs_dir() / "models.yaml"


def load_registry(registry: str | os.PathLike | None = None) -> dict[str, RegistryEntry]:
    """Parse the registry YAML into entries by name (raises ConfigError on a malformed file)."""
    path = registry_path(registry)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"model registry not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"model registry {path} is not valid YAML: {exc}") from exc
    models = data.get("models")
    if not isinstance(models, dict):
        raise ConfigError(f"model registry {path} has no 'models' mapping")
    entries = {}
    for name, raw in models.items():
        if not isinstance(raw, dict):
            raise ConfigError(f"registry entry {name!r} in {path} is not a mapping")
        raw = dict(raw)
        try:
            files = [
                RawFile(name=n, url=f["url"], sha256=f["sha256"])
                for n, f in (raw.pop("files", {}) or {}).items()
            ]
            entries[name] = RegistryEntry(name=name, files=files, registry_dir=path.parent, **raw)
        except (TypeError, KeyError) as exc:
            raise ConfigError(f"registry entry {name!r} in {path} is malformed: {exc}") from exc
        if not (entries[name].weights or entries[name].bundle):
            raise ConfigError(f"registry entry {name!r} in {path} needs 'weights' or 'bundle'")
    return entries


def get_entry(name: str, registry: str | os.PathLike | None = None) -> RegistryEntry:
    entries = load_registry(registry)
    if name not in entries:
        raise UsageError(
            f"unknown model {name!r}; known: {', '.join(sorted(entries))} (or a bundle folder path)"
        )
    return entries[name]


def default_model(registry: str | os.PathLike | None = None) -> str:
    data = yaml.safe_load(registry_path(registry).read_text()) or {}
    return str(data.get("default", "echosearch-demo"))


def list_models(registry: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One record per registry entry: name, description, source, status, path, clinical, tokenizer."""
    return [
        {
            "name": e.name,
            "description": e.description,
            "source": e.weights or e.bundle,
            "status": e.status(),
            "path": str(e.bundle_dir),
            "clinical": e.clinical,
            "tokenizer": _tokenizer_kind(e),
        }
        for e in load_registry(registry).values()
    ]


def _tokenizer_kind(entry: RegistryEntry) -> str:
    """The tokenizer kind: from the bundle's manifest when present, else from the registry entry."""
    manifest = entry.bundle_dir / "manifest.json"
    if manifest.is_file():
        try:
            return str(json.loads(manifest.read_text())["tokenizer"]["kind"])
        except (ValueError, KeyError, TypeError):
            return "?"
    return str((entry.tokenizer or {}).get("kind", "-"))


def arch_bundle(name: str) -> ModelBundle:
    """An in-memory bundle for ``arch:NAME``: the real architecture, random weights, not clinical."""
    model_cfg, preprocess_cfg, tok = arch.arch_config(name)
    manifest = Manifest(
        name=name,
        version="random-init",
        tokenizer=tok,
        intended_use="Speed benchmarks only: random weights, meaningless embeddings",
        clinical=False,
    )
    return ModelBundle(
        path=None,
        manifest=manifest,
        open_clip_config={"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg},
    )


def resolve_bundle(
    name_or_path: str | os.PathLike, registry: str | os.PathLike | None = None, verify: bool = True
) -> ModelBundle:
    """A bundle from ``arch:NAME``, a bundle folder path, or a registry name (pulled or shipped)."""
    text = str(name_or_path)
    if arch.is_arch(text):
        return arch_bundle(text)
    as_path = Path(text).expanduser()
    if as_path.is_dir():
        return open_bundle(as_path, verify=verify)
    if os.sep in text or text.startswith("."):
        raise BundleError(f"model folder not found: {as_path}")
    entry = get_entry(text, registry)
    folder = entry.bundle_dir
    if not (folder / "manifest.json").is_file():
        if entry.pullable:
            raise BundleError(
                f"model {entry.name!r} is not in the cache ({folder}); run `echosearch models pull {entry.name}`"
                f" (offline: `echosearch models pull {entry.name} --from DIR`)"
            )
        raise BundleError(f"model {entry.name!r} is not built yet (expected at {folder})")
    return open_bundle(folder, verify=verify)
