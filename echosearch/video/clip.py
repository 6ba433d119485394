"""``read_clip``: any echo clip (DICOM, AVI, MP4, ...) -> :class:`EchoClip` (RGB frames + metadata + sector).

The format, and so the reader, comes from :mod:`echosearch.video.formats`: decided by the file's
content (its magic bytes) before its name, so a mis-named file gets a precise error rather than a
confusing one from the wrong reader.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echosearch.fsutil import sha256_file
from echosearch.video import formats
from echosearch.video.errors import ClipReadError, CorruptFile, NotAnImage, TooFewFrames, TooLarge, one_line
from echosearch.video.limits import Limits
from echosearch.video.meta import ClipMeta
from echosearch.video.sampling import DEFAULT_SAMPLING, Sampling, parse_sampling
from echosearch.video.sector import apply_mask, combine, estimate_sector

log = logging.getLogger(__name__)


@dataclass
class EchoClip:
    """Sampled frames of one clip: ``frames`` uint8 RGB ``[F,H,W,3]``, masked outside the sector when
    asked; ``frame_indices`` says which frames of the clip they are; ``sector_mask`` bool ``[H,W]``
    (``None`` when neither the file nor the frames reveal it)."""

    frames: np.ndarray
    fps: float | None
    meta: ClipMeta
    frame_indices: np.ndarray
    sector_mask: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def read_clip(
    path: str | os.PathLike,
    sampling: str | Sampling = DEFAULT_SAMPLING,
    site_key: bytes | None = None,
    mask_sector: bool = True,
    limits: Limits | None = None,
) -> EchoClip:
    """Read the sampled frames of a clip (DICOM or video: :mod:`echosearch.video.formats`) as RGB,
    with metadata and sector.

    Raises a :class:`ClipReadError` subclass (one line, no traceback) for anything unreadable,
    whatever the decoding libraries raise inside (a fuzzed file reaches code paths of pydicom, the
    codecs and FFmpeg that raise zlib, value, type, key, runtime errors...), and :class:`TooLarge`
    when the headers promise more decoded pixels than ``limits`` allow (default:
    :meth:`Limits.from_env`), before decoding. Without ``site_key`` the patient and accession keys
    are left ``None``: identifiers are never kept in the clear.
    """
    policy = parse_sampling(sampling)
    path = Path(path)
    try:
        return _read_clip(path, policy, site_key, mask_sector, limits or Limits.from_env())
    except ClipReadError:
        raise
    except MemoryError:
        raise TooLarge(f"{path.name}: decoding ran out of memory") from None
    except RecursionError:
        raise CorruptFile(f"{path.name}: nested too deeply to read") from None
    except OSError as e:
        raise ClipReadError(f"{path.name}: cannot be read ({one_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - any library error on a damaged file is a damaged file
        log.debug("unexpected error reading %s", path, exc_info=True)
        raise CorruptFile(f"{path.name}: damaged or unsupported ({one_line(e)})") from None


def _read_clip(
    path: Path, policy: Sampling, site_key: bytes | None, mask_sector: bool, limits: Limits
) -> EchoClip:
    if not path.is_file():
        raise ClipReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CorruptFile(f"{path.name}: empty file")
    fmt = formats.format_for(path, formats.read_head(path))
    if fmt is None:
        raise NotAnImage(f"{path.name}: not a DICOM and not a video type we read ({path.suffix.lower()})")
    sha = sha256_file(path)
    frames, indices, meta, region_mask = fmt.reader(path, policy, sha, site_key, limits)
    if len(frames) == 0:
        raise TooFewFrames(f"{path.name}: no frames")
    sector = combine(region_mask, estimate_sector(frames))
    if mask_sector:
        frames = apply_mask(frames, sector)
    log.debug("%s: %d frames %s", path.name, len(frames), frames.shape[1:])
    return EchoClip(frames=frames, fps=meta.fps, meta=meta, frame_indices=indices, sector_mask=sector)
