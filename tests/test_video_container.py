"""AVI and MP4 through PyAV: written here with PyAV, read back with read_clip."""

from __future__ import annotations

import av
import numpy as np
import pytest

from echosearch.video import read_clip


def _frames(n: int = 30, h: int = 96, w: int = 128) -> np.ndarray:
    """A bright square moving across a grey field: each frame is identifiable by its position."""
    arr = np.full((n, h, w, 3), 60, dtype=np.uint8)
    for i in range(n):
        x = 2 + i * (w - 20) // n
        arr[i, 30:50, x : x + 16] = (230, 120, 40)
    return arr


def _square_x(frame: np.ndarray) -> float:
    orange = (frame[..., 0] > 180) & (frame[..., 2] < 100)
    return float(np.nonzero(orange)[1].mean())


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt"),
    [("clip.avi", "mjpeg", "yuvj420p"), ("clip.mp4", "mpeg4", "yuv420p"), ("h264.mp4", "libx264", "yuv420p")],
)
def test_video_reads_sampled_frames_with_colour(tmp_path, video_writer, name, codec, pix_fmt):
    if codec not in av.codecs_available:
        pytest.skip(f"FFmpeg in this PyAV has no {codec} encoder")
    src = _frames()
    path = video_writer(tmp_path / name, src, codec, pix_fmt)
    clip = read_clip(path, sampling="uniform:5", mask_sector=False)
    assert clip.frames.shape == (5, 96, 128, 3) and clip.frames.dtype == np.uint8
    assert clip.frame_indices.tolist() == [0, 7, 14, 22, 29]
    assert clip.meta.frame_count == 30
    assert clip.fps == pytest.approx(30.0)
    assert clip.meta.format == "video"
    for frame, i in zip(clip.frames, clip.frame_indices, strict=True):
        assert abs(_square_x(frame) - _square_x(src[i])) < 1.5, f"frame {i} is not the one asked for"
        r, g, b = frame[80, 4:10].astype(int).mean(axis=0)  # grey background stays grey
        assert abs(r - g) < 8 and abs(g - b) < 8 and abs(r - 60) < 8
        x = int(round(_square_x(src[i])))
        assert np.abs(frame[40, x].astype(int) - (230, 120, 40)).max() < 25  # orange stays orange


def test_video_all_and_stride(tmp_path, video_writer):
    path = video_writer(tmp_path / "c.avi", _frames(12), "mjpeg", "yuvj420p")
    assert read_clip(path, sampling="all").frames.shape[0] == 12
    clip = read_clip(path, sampling="stride:3,limit:8")
    assert clip.frame_indices.tolist() == [0, 3, 6]


def test_video_uids_come_from_content(tmp_path, video_writer):
    a = video_writer(tmp_path / "a.avi", _frames(6), "mjpeg", "yuvj420p")
    b = tmp_path / "copy.avi"
    b.write_bytes(a.read_bytes())
    c = video_writer(tmp_path / "c.avi", _frames(7), "mjpeg", "yuvj420p")
    ma, mb, mc = (read_clip(p).meta for p in (a, b, c))
    assert ma.sop_instance_uid == mb.sop_instance_uid and ma.study_instance_uid == mb.study_instance_uid
    assert ma.sop_instance_uid != mc.sop_instance_uid
    assert len({ma.sop_instance_uid, ma.series_instance_uid, ma.study_instance_uid}) == 3
    assert ma.sop_instance_uid.startswith("2.25.") and len(ma.sop_instance_uid) <= 64
    assert ma.patient_key is None and ma.sha256 == mb.sha256
