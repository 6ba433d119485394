"""Reader: one clip file -> sampled, sector-masked, cropped frames ready for the model, plus thumbnails.

This is the CPU-heavy, model-free half of indexing (decode, colour conversion, masking, resizing),
so it runs in worker processes (see :mod:`echosearch.indexer.distributor`) while the main process runs the
model. What travels back is small on purpose: uint8 ``[F,3,S,S]`` frames (4x smaller than float32;
the mapper normalises a whole batch at once), the clip's metadata, and the thumbnail paths.
Anything that goes wrong with one file becomes a failure record, never an exception, so one bad
file cannot stop a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from echosearch.fsutil import sha256_file
from echosearch.paths import storable_path
from echosearch.thumbnails import write_thumbnails
from echosearch.video import ClipMeta, ClipReadError, crop_and_scale, read_clip
from echosearch.video.errors import one_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReaderConfig:
    """Everything a worker needs; picklable, so a remote worker can receive it too."""

    data_dir: str
    sampling: str = "uniform:16"
    size: int = 224
    mask_sector: bool = True
    site_key: bytes | None = None
    thumbnails: bool = True


@dataclass(frozen=True)
class ReadJob:
    """One file to read. ``known_sha256``: the content hash the database has for this path, if any
    (a file that was only touched is then recognised after hashing, without decoding it).
    ``source``: the key the database stores for the clip (:mod:`echosearch.sources`): a file's key
    under its registered source root (``root:<id>/...``), or where the clip really lives when
    ``path`` is only a spooled copy (a DICOMweb instance URL, a C-STORE sender), so the same
    instance is the same row whichever temporary file carried it."""

    path: str
    size: int
    mtime_ns: int
    known_sha256: str | None = None
    source: str | None = None

    @property
    def key(self) -> str:
        """The ``source`` key; without one (a caller that registered no root), the path as text the
        database can store (:func:`echosearch.paths.storable_path`); ``path`` stays the real one, for reading."""
        return self.source or storable_path(self.path)


@dataclass
class ReadResult:
    """What the reader made of one file: ``frames`` (uint8 ``[F,3,S,S]``) and ``meta``, or a failure."""

    job: ReadJob
    sha256: str | None = None
    meta: ClipMeta | None = None
    frames: np.ndarray | None = None
    thumbnail: str | None = None
    preview: str | None = None
    unchanged_content: bool = False  # same bytes as already indexed (only the mtime moved)
    error_kind: str | None = None
    error: str | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error_kind is None and not self.unchanged_content

    @property
    def num_frames(self) -> int:
        """Frames read (also while they wait elsewhere, in the Ray engine's object store)."""
        if self.frames is None:
            return int(self.extra.get("num_frames", 0))
        return int(self.frames.shape[0])


def read_one(job: ReadJob, cfg: ReaderConfig) -> ReadResult:
    """Read, sample, mask, crop+scale one clip and write its thumbnails; failures are returned."""
    import time

    start = time.perf_counter()
    result = ReadResult(job=job)
    try:
        result.sha256 = sha256_file(job.path)
        if job.known_sha256 is not None and result.sha256 == job.known_sha256:
            result.unchanged_content = True
            return result
        clip = read_clip(job.path, sampling=cfg.sampling, site_key=cfg.site_key, mask_sector=cfg.mask_sector)
        if clip.num_frames == 0:
            raise ClipReadError(f"{Path(job.path).name}: no frames")
        result.meta = clip.meta
        result.frames = crop_and_scale(clip.frames, size=cfg.size).numpy()
        if cfg.thumbnails:
            thumbs = write_thumbnails(Path(cfg.data_dir), clip.meta.sha256, clip.frames, clip.fps or 0.0)
            result.thumbnail, result.preview = thumbs.still, thumbs.preview
    except ClipReadError as exc:
        result.error_kind, result.error = type(exc).__name__, str(exc)
    except OSError as exc:  # vanished or unreadable between discovery and reading
        result.error_kind, result.error = "OSError", one_line(exc)
    except Exception as exc:  # a decoder bug on one odd file must not stop the archive
        log.debug("unexpected error reading %s", job.path, exc_info=True)
        result.error_kind, result.error = "UnexpectedError", one_line(exc)
    result.seconds = time.perf_counter() - start
    return result
