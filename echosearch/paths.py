"""Where echosearch keeps things: the data dir (index + database) and the model cache."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = "echosearch-data"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data dir: ``--data`` if given, else ``$ECHOSEARCH_HOME``, else ``./echosearch-data``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("ECHOSEARCH_HOME")
    if env:
        return Path(env).expanduser()
    return Path(DEFAULT_DATA_DIR)


def cache_dir() -> Path:
    """The model cache: ``$ECHOSEARCH_CACHE``, default ``~/.cache/echosearch``."""
    env = os.environ.get("ECHOSEARCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "echosearch"


def package_data() -> Path:
    """Files shipped inside the package (demo model bundle, template vocabulary, task files)."""
    return Path(__file__).parent / "data"


def configs_dir() -> Path:
    """The YAML configuration folder (registry, defaults, zero-shot tasks): ``configs/`` at the repo root.

    ``$ECHOSEARCH_CONFIGS`` overrides it (a site's own registry and tasks).
    """
    env = os.environ.get("ECHOSEARCH_CONFIGS")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "configs"
