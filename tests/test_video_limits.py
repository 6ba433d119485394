"""Pixel bombs: caps on decoded pixels per frame and per clip, checked from the headers (DICOM
Rows x Columns, each compressed frame's own header, a video stream's size) before anything is
decoded, in the reader and in the UI upload; a clear TooLarge error, in well under a second."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage, generate_uid

from echosearch.errors import ConfigError
from echosearch.synth.writers import write_video
from echosearch.video import Limits, TooLarge, read_clip
from echosearch.video.limits import codestream_size


def _jpeg(h: int, w: int, claim: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    if claim is not None:  # rewrite the SOF0 frame header's height and width
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 7] = claim[0].to_bytes(2, "big")
        data[sof + 7 : sof + 9] = claim[1].to_bytes(2, "big")
    return bytes(data)


def _dicom(path: Path, rows: int, cols: int, pixel_data: bytes, frames: int = 1, jpeg: bool = False) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit if jpeg else pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel = 3 if jpeg else 1
    ds.PhotometricInterpretation = "YBR_FULL_422" if jpeg else "MONOCHROME2"
    if jpeg:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = pixel_data
    if jpeg:
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def _read_fails_fast(path: Path, **kw) -> TooLarge:
    start = time.perf_counter()
    with pytest.raises(TooLarge) as info:
        read_clip(path, **kw)
    assert time.perf_counter() - start < 2.0
    return info.value


def test_codestream_size_reads_the_jpeg_frame_header():
    assert codestream_size(_jpeg(16, 24)) == (16, 24)
    assert codestream_size(_jpeg(16, 16, claim=(8000, 8000))) == (8000, 8000)
    assert codestream_size(b"not a codestream") is None


def test_a_jpeg_frame_claiming_8000x8000_is_refused_before_decoding(tmp_path):
    bomb = _jpeg(16, 16, claim=(8000, 8000))  # a few hundred bytes
    path = _dicom(tmp_path / "bomb.dcm", 16, 16, encapsulate([bomb]), jpeg=True)
    assert path.stat().st_size < 3000
    error = _read_fails_fast(path)
    assert "8000x8000" in str(error) and "per frame" in str(error)
    honest = _dicom(tmp_path / "ok.dcm", 16, 16, encapsulate([_jpeg(16, 16)]), jpeg=True)
    assert read_clip(honest).frames.shape == (1, 16, 16, 3)


def test_a_header_claiming_huge_frames_or_too_many_is_refused(tmp_path):
    big = _dicom(tmp_path / "big.dcm", 8000, 8000, b"\0" * 64)
    assert "per frame" in str(_read_fails_fast(big))
    many = _dicom(tmp_path / "many.dcm", 1000, 1000, b"\0" * 64, frames=5000)
    assert "per clip" in str(_read_fails_fast(many, sampling="all"))


def test_caps_apply_to_videos_and_come_from_the_environment(tmp_path, monkeypatch):
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    write_video(tmp_path / "v.mp4", frames, 30.0, "mp4")
    _read_fails_fast(tmp_path / "v.mp4", limits=Limits(frame_pixels=1000))
    monkeypatch.setenv("ECHOSEARCH_MAX_CLIP_PIXELS", "5000")
    assert "per clip" in str(_read_fails_fast(tmp_path / "v.mp4"))
    monkeypatch.setenv("ECHOSEARCH_MAX_CLIP_PIXELS", "lots")
    with pytest.raises(ConfigError, match="ECHOSEARCH_MAX_CLIP_PIXELS"):
        Limits.from_env()


def test_the_ui_upload_refuses_a_pixel_bomb_with_a_one_line_error(tmp_path, monkeypatch):
    from echosearch.ui.views import clip as view

    monkeypatch.setattr(view, "UPLOAD_DIR", tmp_path / "uploads")
    bomb = _dicom(tmp_path / "bomb.dcm", 16, 16, encapsulate([_jpeg(16, 16, claim=(8000, 8000))]), jpeg=True)
    with pytest.raises(TooLarge, match="8000x8000"):
        view.save_upload("bomb.dcm", bomb.read_bytes())
