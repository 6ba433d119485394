"""Every bad input raises a typed ClipReadError quickly: no hang, no bare traceback."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.uid import UID

from echosearch.errors import EchosearchError
from echosearch.video import (
    BadSamplingSpec,
    ClipReadError,
    CorruptFile,
    NotAnImage,
    TooFewFrames,
    UnsupportedTransferSyntax,
    read_clip,
)

SONOSITE = Path(pydicom.data.get_testdata_file("color3d_jpeg_baseline.dcm"))
PALETTE = Path(pydicom.data.get_testdata_file("OBXXXX1A.dcm"))


def _zero_frame_video(path: Path, codec: str, pix_fmt: str) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=30)
    stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
    container.start_encoding()  # write the header, then no frames at all
    container.close()
    return path


def _make(kind: str, tmp: Path) -> Path:
    if kind == "truncated_jpeg_cine":
        data = SONOSITE.read_bytes()
        (tmp / "t.dcm").write_bytes(data[: len(data) // 2])
        return tmp / "t.dcm"
    if kind == "truncated_native":
        data = PALETTE.read_bytes()
        (tmp / "t.dcm").write_bytes(data[:-1000])
        return tmp / "t.dcm"
    if kind == "truncated_header":
        (tmp / "t.dcm").write_bytes(SONOSITE.read_bytes()[:400])
        return tmp / "t.dcm"
    if kind == "random_dcm":
        (tmp / "r.dcm").write_bytes(np.random.default_rng(0).bytes(20000))
        return tmp / "r.dcm"
    if kind == "random_mp4":
        (tmp / "r.mp4").write_bytes(np.random.default_rng(1).bytes(20000))
        return tmp / "r.mp4"
    if kind == "empty":
        (tmp / "e.dcm").write_bytes(b"")
        return tmp / "e.dcm"
    if kind == "structured_report":
        return Path(pydicom.data.get_testdata_file("test-SR.dcm"))
    if kind == "zero_frame_mp4":
        return _zero_frame_video(tmp / "z.mp4", "mpeg4", "yuv420p")
    if kind == "zero_frame_avi":
        return _zero_frame_video(tmp / "z.avi", "mjpeg", "yuvj420p")
    if kind == "text_file":
        (tmp / "notes.txt").write_text("not a clip\n" * 100)
        return tmp / "notes.txt"
    if kind == "text_named_avi":
        (tmp / "notes.avi").write_text("not a clip\n" * 100)
        return tmp / "notes.avi"
    if kind == "text_no_suffix":  # FFmpeg would render this as ANSI art if we let it
        (tmp / "README").write_text("not a clip\n" * 100)
        return tmp / "README"
    raise AssertionError(kind)


CASES = {
    "truncated_jpeg_cine": CorruptFile,
    "truncated_native": CorruptFile,
    "truncated_header": CorruptFile,
    "random_dcm": NotAnImage,
    "random_mp4": NotAnImage,
    "empty": CorruptFile,
    "structured_report": NotAnImage,
    "zero_frame_mp4": TooFewFrames,
    "zero_frame_avi": TooFewFrames,
    "text_file": NotAnImage,
    "text_named_avi": NotAnImage,
    "text_no_suffix": NotAnImage,
}


@pytest.mark.parametrize(("kind", "error"), CASES.items(), ids=list(CASES))
def test_bad_input_raises_typed_error(tmp_path, kind, error):
    path = _make(kind, tmp_path)
    start = time.monotonic()
    with pytest.raises(error) as info:
        read_clip(path)
    assert time.monotonic() - start < 10
    assert isinstance(info.value, ClipReadError) and isinstance(info.value, EchosearchError)
    message = str(info.value)
    assert "\n" not in message and path.name in message


def test_missing_file():
    with pytest.raises(ClipReadError, match="no such file"):
        read_clip("/nonexistent/clip.dcm")


def test_unsupported_transfer_syntax_names_it(tmp_path):
    """A private transfer syntax no library knows."""
    ds = pydicom.dcmread(SONOSITE)
    ds.file_meta.TransferSyntaxUID = UID("1.2.3.4.5.6.7")
    ds.save_as(tmp_path / "private.dcm")
    with pytest.raises(UnsupportedTransferSyntax, match="1.2.3.4.5.6.7"):
        read_clip(tmp_path / "private.dcm")


def test_bad_sampling_spec_is_a_clip_read_error():
    for spec in ("uniform:0", "uniform:x", "every:3", "stride:2,max:4", "stride:"):
        with pytest.raises(BadSamplingSpec):
            read_clip(SONOSITE, sampling=spec)


def test_only_sampled_frames_are_decoded(tmp_path):
    """Break the JPEG of frame 1 of the SonoSite cine: sampling that skips it still reads."""
    from pydicom.encaps import generate_frames

    raw = bytearray(SONOSITE.read_bytes())
    frame1 = list(generate_frames(pydicom.dcmread(SONOSITE).PixelData, number_of_frames=120))[1]
    pos = raw.find(frame1)
    raw[pos : pos + 16] = bytes(16)  # no SOI marker: undecodable
    path = tmp_path / "frame1_broken.dcm"
    path.write_bytes(raw)
    clip = read_clip(path, sampling="uniform:2")
    assert clip.frame_indices.tolist() == [0, 119]
    with pytest.raises(CorruptFile) as info:
        read_clip(path, sampling="stride:1,limit:3")
    assert "\n" not in str(info.value)


def test_missing_codec_plugin_is_named(tmp_path):
    """With the JPEG-LS plugin unavailable (as on a site without pylibjpeg), the error says what
    to install. The plugin is taken out of pydicom's registry for this test and put back after."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSNearLossless

    decoder = get_decoder(JPEGLSNearLossless)
    saved = dict(decoder._available)
    decoder._available.clear()
    try:
        with pytest.raises(UnsupportedTransferSyntax, match="pyjpegls") as info:
            read_clip(pydicom.data.get_testdata_file("SC_rgb_jls_lossy_sample.dcm"))
        assert "JPEG-LS" in str(info.value)
    finally:
        decoder._available.update(saved)
    assert read_clip(pydicom.data.get_testdata_file("SC_rgb_jls_lossy_sample.dcm")).frames.ndim == 4
