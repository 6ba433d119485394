"""Cine loops: every masked frame of a clip as an MP4 at its own frame rate, made once and reused."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from echosearch.cine import Cine, cached_cine, encode_mp4, make_cine, prune_cine_cache, read_frames
from echosearch.video.errors import ClipReadError


def _frames(n: int = 24, h: int = 63, w: int = 81) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return np.stack([np.roll(base, i, axis=1) for i in range(n)])


def test_encode_and_read_back_every_frame(tmp_path):
    path = tmp_path / "c.mp4"
    height, width = encode_mp4(_frames(), 25.0, path)
    assert (height, width) == (62, 80)  # 4:2:0 needs even sizes
    assert path.stat().st_mode & 0o777 == 0o600
    back = read_frames(path)
    assert len(back) == 24 and back[0].shape == (62, 80, 3)
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == pytest.approx(25.0)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_make_cine_masks_plays_at_the_clip_rate_and_is_reused(tmp_path, video_writer):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:96, :128]
    disc = (yy - 56) ** 2 + (xx - 64) ** 2 < 35**2
    frames = np.zeros((30, 96, 128, 3), np.uint8)
    frames[:, disc] = rng.integers(40, 255, (30, int(disc.sum()), 1), dtype=np.uint8)  # moving speckle
    frames[:, 2:12, 2:50] = 255  # a static burned-in banner outside the sector: masked away
    source = video_writer(tmp_path / "clip.mp4", frames, fps=15)
    data = tmp_path / "data"
    cine = make_cine(data, 7, source)
    assert cine.path == data / "cine" / "7.mp4" and cine.frames == 30 and cine.fps == pytest.approx(15)
    assert cine.duration_s == pytest.approx(2.0) and cine.heart_rate is None
    first = read_frames(cine.path)[0]
    assert first[2:12, 2:50].mean() < 20 and first[disc].mean() > 60  # banner gone, sector kept
    sidecar = json.loads(cine.path.with_suffix(".json").read_text())
    assert sidecar["frames"] == 30 and sidecar["path"] == "7.mp4"
    mtime = cine.path.stat().st_mtime
    assert make_cine(data, 7, source) == cine and cine.path.stat().st_mtime == mtime  # reused
    later = time.time() + 5
    os.utime(source, (later, later))  # the source changed: the loop is made again
    assert cached_cine(data, 7, source) is None
    assert make_cine(data, 7, source).source_mtime == later


def test_a_missing_source_is_a_one_line_error(tmp_path):
    with pytest.raises(ClipReadError, match="no longer at its indexed place"):
        make_cine(tmp_path, 1, tmp_path / "gone.dcm")


def test_partner_frames_follow_the_clip_fraction_or_the_heartbeat(tmp_path):
    from echosearch.ui.player import FRACTION, HEARTBEAT, partner_frame, sync_modes

    a = Cine(tmp_path / "a.mp4", fps=30, frames=60, width=2, height=2, heart_rate=60)  # 1 s beats
    b = Cine(tmp_path / "b.mp4", fps=30, frames=30, width=2, height=2, heart_rate=120)  # 0.5 s beats
    assert sync_modes(a, b) == [FRACTION, HEARTBEAT]
    assert partner_frame(30, a, b, FRACTION) == 15  # half way through each
    assert partner_frame(15, a, b, HEARTBEAT) == 7  # a quarter beat into each
    assert partner_frame(45, a, b, HEARTBEAT) == 22  # half way into the second beat of each
    long = Cine(tmp_path / "l.mp4", fps=30, frames=90, width=2, height=2, heart_rate=60)
    assert partner_frame(75, long, b, HEARTBEAT) == 7  # a's third beat: b (two beats long) starts again
    c = Cine(tmp_path / "c.mp4", fps=30, frames=30, width=2, height=2)
    assert sync_modes(a, c) == [FRACTION]


def test_the_cine_cache_stays_under_its_cap_dropping_the_least_recently_watched(
    tmp_path, video_writer, monkeypatch
):
    frames = np.random.default_rng(2).integers(0, 255, (12, 64, 80, 3), dtype=np.uint8)
    source = video_writer(tmp_path / "clip.mp4", frames, fps=10)
    data = tmp_path / "data"
    loops = [make_cine(data, vid, source) for vid in (1, 2, 3)]
    size = max(c.path.stat().st_size for c in loops)
    for i, c in enumerate(loops):  # watched in the order 1, 2, 3 ...
        os.utime(c.path.with_suffix(".json"), (1000 + i, 1000 + i))
    assert cached_cine(data, 1, source) is not None  # ... then 1 again: now 2 is the oldest
    monkeypatch.setenv("ECHOSEARCH_CINE_CACHE_MB", str(2.5 * size / 2**20))
    make_cine(data, 4, source)  # a fourth loop: the cache holds 2.5 loops' worth, so two go
    left = sorted(int(p.stem) for p in (data / "cine").glob("*.mp4"))
    assert left == [1, 4]
    assert not (data / "cine" / "2.json").exists() and not (data / "cine" / "3.json").exists()
    assert make_cine(data, 2, source).frames == 12  # a pruned loop is simply made again
    assert prune_cine_cache(data, max_bytes=0) == 2 and sorted((data / "cine").iterdir()) == []
