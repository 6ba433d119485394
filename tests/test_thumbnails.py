"""Thumbnails: a readable still PNG and an animated WebP with the expected frame count."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from echosearch.thumbnails import write_thumbnails


def test_still_and_animated_preview(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(40, 300, 400, 3), dtype=np.uint8)
    thumbs = write_thumbnails(tmp_path, "ab" * 32, frames, fps=30)
    still = Image.open(tmp_path / thumbs.still)
    assert still.format == "PNG" and still.height == 240 and still.width == 320
    preview = Image.open(tmp_path / thumbs.preview)
    assert preview.format == "WEBP" and preview.n_frames == 16
    assert not list(tmp_path.rglob("*.tmp"))


def test_short_clip_uses_every_frame(tmp_path):
    frames = np.stack([np.full((64, 64, 3), 60 * i, dtype=np.uint8) for i in range(3)])
    thumbs = write_thumbnails(tmp_path, "cd" * 32, frames, fps=0)
    assert Image.open(tmp_path / thumbs.preview).n_frames == 3


def test_rejects_empty_clip(tmp_path):
    with pytest.raises(ValueError):
        write_thumbnails(tmp_path, "ef" * 32, np.zeros((0, 8, 8, 3), np.uint8), fps=30)
