"""Thumbnails: a still PNG and a small animated WebP preview of a (sector-masked) clip.

They are what the UI shows on result cards, so they are made from the masked frames: burned-in
names, dates and the ECG strip never reach a thumbnail. Files are named by the clip's content hash,
so a re-index of the same bytes rewrites the same files and nothing is orphaned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from echosearch.fsutil import atomic_path

STILL_HEIGHT = 240
PREVIEW_HEIGHT = 160
PREVIEW_FRAMES = 16


@dataclass(frozen=True)
class Thumbnails:
    """Paths relative to the data dir, as stored in the database."""

    still: str
    preview: str


def _resize(frame: np.ndarray, height: int) -> Image.Image:
    image = Image.fromarray(frame)
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.BILINEAR)


def _atomic_save(image: Image.Image, path: Path, **kwargs) -> None:
    # no fsync: two thumbnails a clip on the indexing path, and a lost one is made again from the clip
    with atomic_path(path, fsync=False) as tmp:
        image.save(tmp, format=kwargs.pop("format"), **kwargs)


def thumbnail_paths(sha256: str) -> Thumbnails:
    """Where the thumbnails of the clip with this content hash live (relative to the data dir)."""
    folder = f"thumbs/{sha256[:2]}"
    return Thumbnails(still=f"{folder}/{sha256}.png", preview=f"{folder}/{sha256}.webp")


def write_thumbnails(data_dir: Path, sha256: str, frames: np.ndarray, fps: float) -> Thumbnails:
    """Write the still (middle frame) and the animated preview (up to 16 frames, looping)."""
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError("write_thumbnails needs frames shaped [F, H, W, 3] with F >= 1")
    paths = thumbnail_paths(sha256)
    (data_dir / paths.still).parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(_resize(frames[len(frames) // 2], STILL_HEIGHT), data_dir / paths.still, format="PNG")
    picks = np.linspace(0, len(frames) - 1, min(PREVIEW_FRAMES, len(frames))).round().astype(int)
    images = [_resize(frames[i], PREVIEW_HEIGHT) for i in picks]
    step = max(1, len(frames) // len(picks))
    duration_ms = int(1000 * step / fps) if fps and fps > 0 else 66
    _atomic_save(
        images[0],
        data_dir / paths.preview,
        format="WEBP",
        save_all=True,
        append_images=images[1:],
        duration=duration_ms,
        loop=0,
        quality=70,
    )
    return paths
