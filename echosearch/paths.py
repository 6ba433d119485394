"""Where echosearch keeps things: the data dir (index + database) and the model cache."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

DEFAULT_DATA_DIR = "echosearch-data"
#: The metadata database's URL when not given with ``--db`` (see :func:`echosearch.store.db.database_url`).
DB_ENV = "ECHOSEARCH_DB"


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
    """The YAML configuration folder (model registry, zero-shot tasks, query lexicons).

    ``$ECHOSEARCH_CONFIGS`` if set (a site's own registry and tasks); else the copy a wheel ships as
    package data (``echosearch/_configs/``, built from the repository's ``configs/``); else, in a
    checkout or an editable install, the repository's ``configs/`` itself, the one source of both.
    """
    env = os.environ.get("ECHOSEARCH_CONFIGS")
    if env:
        return Path(env).expanduser()
    packaged = resources.files("echosearch").joinpath("_configs")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "configs"


def storable_path(path: str | os.PathLike) -> str:
    """A file path as text the database (UTF-8) can store, the same text for the same path every run.

    POSIX file names are bytes; Python hands names that are not valid UTF-8 over as strings with
    lone surrogates (``surrogateescape``), which no UTF-8 encoder accepts, so one such name used to
    abort the whole transaction it was in. Those bytes are written as ``\\xNN`` escapes instead
    (:func:`filesystem_path` reverses it). Valid UTF-8 names (spaces, newlines included) are kept as is.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return text


def filesystem_path(stored: str) -> str:
    """The path on disk for a path text from the database (the inverse of :func:`storable_path`)."""
    if "\\x" not in stored or os.path.lexists(stored):
        return stored
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), stored.encode("utf-8"))
    return os.fsdecode(raw)


def make_private_dir(path: str | os.PathLike) -> Path:
    """Create a data dir readable by its owner only (0700); an existing folder is left as it is.

    The data dir holds patient data at rest (keyed hashes, dates, file paths, thumbnails, query
    history); with the default umask a new folder would be world-readable (0755).
    """
    path = Path(path)
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is masked by the umask
    return path
