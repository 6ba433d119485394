"""Reading and writing the YAML/JSON files of the label code: task files and thresholds files.

Why a module of its own: both kinds of file are hand-edited by a site, so both need the same
one-line errors for a missing or malformed file and the same refusal of a repeated key (two tasks of
one name); :mod:`echosearch.labels.tasks` and :mod:`echosearch.labels.calibration` read through it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from echosearch.errors import ConfigError
from echosearch.fsutil import atomic_write_text


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (two tasks of the same name)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def read_structured(path: Path) -> Any:
    """Read YAML (JSON is YAML too) with a one-line error for a missing or malformed file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML/JSON{where}: {getattr(exc, 'problem', exc)}") from None


def write_structured(path: Path, data: Any) -> None:
    """Write ``data`` as JSON for a ``.json`` path, YAML otherwise (the parent folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    atomic_write_text(path, text)
