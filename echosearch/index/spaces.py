"""The on-disk layout of embedding spaces: ``<data_dir>/spaces/<space>/``.

* ``index.faiss`` — the :class:`~echosearch.index.faiss_index.VectorIndex` (ids = video ids, or
  report ids in a report space); for the compressed kinds (IVF-SQ8/PQ, chosen when the space's
  ``--index-memory`` budget is too small for float32 vectors) also ``index.vectors.f16`` and
  ``index.vectors.ids``, the exact vectors used for re-ranking (:mod:`echosearch.index.vectorfile`)
* ``frames/`` — the :class:`~echosearch.index.frames.FrameStore` (video spaces only)
* ``space.json`` — :class:`SpaceInfo`: model name/version, dim, preprocessing, kind, index config
* ``tasks.yaml`` + ``thresholds.json`` — the zero-shot tasks and thresholds the indexer labelled with
  (the model's own or a site's ``--tasks``/``--thresholds``), so labels computed later for a new clip
  match the stored ones

A space holds vectors of one model only: vectors of different models are not comparable. Report-text
embeddings live in a second space of kind ``"report"`` (by convention ``report_space_name(name)``),
with the same index class. The database's ``embedding_spaces`` table mirrors ``space.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from echosearch.errors import UsageError
from echosearch.fsutil import atomic_write_text
from echosearch.index.faiss_index import KINDS, IndexConfig, VectorIndex
from echosearch.index.frames import FrameStore

SPACES_DIR = "spaces"
INDEX_FILE = "index.faiss"
FRAMES_DIR = "frames"
INFO_FILE = "space.json"
TASKS_FILE = "tasks.yaml"
THRESHOLDS_FILE = "thresholds.json"
SPACE_KINDS = ("video", "report")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B?)\s*$", re.IGNORECASE)


def parse_memory(text: str | int | None) -> int | None:
    """``"8GB"``, ``"512M"``, ``"1.5GiB"`` or a number of bytes as bytes (powers of 1024, as RAM is
    sold); None/"" stays None (no budget)."""
    if text is None or text == "":
        return None
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"not a memory size: {text!r} (e.g. 8GB, 512MB)")
    return int(float(m.group(1)) * 1024 ** "BKMGT".index(m.group(2).upper() or "B"))


def report_space_name(video_space: str) -> str:
    """The conventional name of the report-text space that goes with a video space."""
    return f"{video_space}-reports"


@dataclass
class SpaceInfo:
    """What ``space.json`` says about a space."""

    name: str
    model_name: str
    dim: int
    model_version: str | None = None
    kind: str = "video"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)  # IndexConfig.to_dict()
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpaceInfo:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


class Space:
    """One embedding space folder. ``Space.create`` / ``Space.open``; then ``load_index``, ``frames``."""

    def __init__(self, root: Path, info: SpaceInfo) -> None:
        self.root = root
        self.info = info

    # ------------------------------------------------------------ paths

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    @property
    def frames_dir(self) -> Path:
        return self.root / FRAMES_DIR

    @property
    def info_path(self) -> Path:
        return self.root / INFO_FILE

    def record_tasks(self, tasks: list, thresholds: dict[str, float]) -> None:
        """Keep the zero-shot tasks and thresholds this space's labels come from (see module doc)."""
        from echosearch.labels.calibration import save_thresholds
        from echosearch.labels.tasks import save_tasks

        if not tasks:  # a task file cannot be empty: no record means "the model's own (none)"
            for name in (TASKS_FILE, THRESHOLDS_FILE):
                (self.root / name).unlink(missing_ok=True)
            return
        save_tasks(tasks, self.root / TASKS_FILE)
        save_thresholds(self.root / THRESHOLDS_FILE, thresholds)

    def recorded_tasks(self) -> tuple[list, dict[str, float]] | None:
        """The tasks and thresholds of :meth:`record_tasks`; None for a space indexed before either."""
        from echosearch.labels.calibration import load_thresholds
        from echosearch.labels.tasks import load_tasks

        if not (self.root / TASKS_FILE).is_file():
            return None
        thresholds = self.root / THRESHOLDS_FILE
        return load_tasks(self.root / TASKS_FILE), load_thresholds(thresholds) if thresholds.is_file() else {}

    @property
    def index_config(self) -> IndexConfig:
        return IndexConfig.from_dict(self.info.index)

    # ------------------------------------------------------------ lifecycle

    @staticmethod
    def path_for(data_dir: str | os.PathLike, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise UsageError(f"bad space name {name!r} (letters, digits, '_', '.', '-')")
        return Path(data_dir) / SPACES_DIR / name

    @classmethod
    def create(cls, data_dir: str | os.PathLike, info: SpaceInfo, *, exist_ok: bool = True) -> Space:
        """Create the folder and space.json; an existing space must have the same model and dim."""
        if info.kind not in SPACE_KINDS:
            raise UsageError(f"unknown space kind {info.kind!r} (use {', '.join(SPACE_KINDS)})")
        root = cls.path_for(data_dir, info.name)
        if (root / INFO_FILE).is_file():
            old = cls.open(data_dir, info.name)
            same = (old.info.model_name, old.info.model_version, old.info.dim, old.info.kind) == (
                info.model_name,
                info.model_version,
                info.dim,
                info.kind,
            )
            if not exist_ok or not same:
                raise UsageError(
                    f"space {info.name!r} already exists for {old.info.model_name} {old.info.model_version} "
                    f"(dim {old.info.dim}, {old.info.kind})"
                )
            return old
        if not info.index:
            info.index = IndexConfig().to_dict()
        space = cls(root, info)
        root.mkdir(parents=True, exist_ok=True)
        space.write_info()
        return space

    @classmethod
    def open(cls, data_dir: str | os.PathLike, name: str) -> Space:
        root = cls.path_for(data_dir, name)
        try:
            info = SpaceInfo.from_dict(json.loads((root / INFO_FILE).read_text()))
        except FileNotFoundError:
            raise UsageError(f"no embedding space {name!r} in {data_dir}") from None
        return cls(root, info)

    def write_info(self) -> None:
        """Write space.json atomically."""
        atomic_write_text(self.info_path, json.dumps(asdict(self.info), indent=2, sort_keys=True))

    # ------------------------------------------------------------ contents

    def load_index(self, *, mmap: bool | None = False) -> VectorIndex:
        """The space's vector index (an empty exact one when nothing was saved yet).

        ``mmap=None`` (readers: searches, the UI, the API) memory-maps the compressed kinds, whose
        codes are sized to the archive, and reads the others into memory."""
        if not self.index_path.is_file():
            return VectorIndex(self.info.dim, self.index_config)
        return VectorIndex.load(self.index_path, self.index_config, mmap=mmap)

    def set_index_memory(self, budget: int | None) -> bool:
        """Record the index memory budget in space.json; whether it changed."""
        if self.info.index.get("memory_budget") == budget:
            return False
        self.info.index = {**IndexConfig().to_dict(), **self.info.index, "memory_budget": budget}
        self.write_info()
        return True

    def reindex(self, *, memory: int | None = None, kind: str | None = None) -> dict[str, Any]:
        """Rebuild the index as the kind that suits its size and budget (or ``kind``), streaming
        the vectors from the current index, and compact the exact-vector files. The caller holds the
        data dir's writer lock; readers keep the old files open until they reload."""
        if kind is not None and kind not in KINDS:
            raise UsageError(f"unknown index kind {kind!r} (use one of {', '.join(KINDS)})")
        if memory is not None:
            self.set_index_memory(memory)
        old = self.load_index(mmap=True)
        before = old.describe()
        n, cfg = old.ntotal, self.index_config
        new = VectorIndex.build_streamed(old.iter_vectors, n, self.info.dim, self.index_path, cfg, kind)
        return {"space": self.name, "before": before, "after": new.describe()}

    def save_index(self, index: VectorIndex) -> None:
        if index.dim != self.info.dim:
            raise UsageError(
                f"index dim {index.dim} does not match space {self.name!r} (dim {self.info.dim})"
            )
        index.save(self.index_path)

    def frames(self) -> FrameStore:
        """The space's per-frame store (created on first use)."""
        if self.info.kind != "video":
            raise UsageError(f"space {self.name!r} holds {self.info.kind} vectors, which have no frames")
        return FrameStore(self.frames_dir, dim=self.info.dim)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def list_spaces(data_dir: str | os.PathLike) -> list[Space]:
    """All spaces of a data dir, by name."""
    base = Path(data_dir) / SPACES_DIR
    if not base.is_dir():
        return []
    return [Space.open(data_dir, p.name) for p in sorted(base.iterdir()) if (p / INFO_FILE).is_file()]
