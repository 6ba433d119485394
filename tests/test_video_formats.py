"""The clip-format registry: real files of every format are sniffed by their bytes and read; names
decide only when the bytes say nothing; the upload check takes only what the bytes show."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pydicom.data
import pytest

from echosearch.video import NotAnImage, formats, read_clip

US_DICOM = Path(pydicom.data.get_testdata_file("US1_J2KR.dcm"))

#: file name -> (codec, pixel format, the format the registry must name)
VIDEOS = {
    "clip.avi": ("mjpeg", "yuvj420p", "avi"),
    "clip.mp4": ("mpeg4", "yuv420p", "mp4"),
    "clip.m4v": ("mpeg4", "yuv420p", "mp4"),
    "clip.mov": ("mpeg4", "yuv420p", "mp4"),
    "clip.mkv": ("mpeg4", "yuv420p", "mkv"),
    "clip.webm": ("libvpx", "yuv420p", "mkv"),
    "clip.mpg": ("mpeg1video", "yuv420p", "mpeg"),
    "clip.mpeg": ("mpeg2video", "yuv420p", "mpeg"),
    "clip.wmv": ("wmv2", "yuv420p", "wmv"),
    "clip.ogv": ("libvpx", "yuv420p", "ogg"),  # VP8 in Ogg: this PyAV has no Theora encoder
}


def _frames(n: int = 6, h: int = 48, w: int = 64) -> np.ndarray:
    arr = np.full((n, h, w, 3), 60, dtype=np.uint8)
    for i in range(n):
        arr[i, 10:30, 4 + 6 * i : 16 + 6 * i] = (230, 120, 40)
    return arr


@pytest.fixture
def video(tmp_path, video_writer):
    def make(name: str) -> Path:
        codec, pix_fmt, _ = VIDEOS[name]
        if codec not in av.codecs_available:
            pytest.skip(f"FFmpeg in this PyAV has no {codec} encoder")
        return video_writer(tmp_path / name, _frames(), codec, pix_fmt)

    return make


@pytest.mark.parametrize("name", list(VIDEOS))
def test_every_video_format_is_sniffed_and_read(video, name):
    path = video(name)
    fmt = formats.sniff(formats.read_head(path))
    assert fmt is not None and fmt.name == VIDEOS[name][2]
    assert path.suffix in fmt.suffixes and path.suffix in formats.clip_suffixes()
    clip = read_clip(path, sampling="all", mask_sector=False)
    assert clip.frames.shape == (6, 48, 64, 3) and clip.meta.format == "video"


def test_the_bytes_decide_before_the_name(video, tmp_path):
    misnamed = tmp_path / "really-an-mp4.avi"
    shutil.copyfile(video("clip.mp4"), misnamed)
    assert formats.format_for(misnamed, formats.read_head(misnamed)).name == "mp4"
    dicom_as_avi = tmp_path / "dicom.avi"
    shutil.copyfile(US_DICOM, dicom_as_avi)
    assert formats.format_for(dicom_as_avi, formats.read_head(dicom_as_avi)).name == "dicom"
    assert read_clip(dicom_as_avi).meta.format == "dicom"


def test_dicom_suffixes_and_extensionless_files(video, tmp_path):
    dic = tmp_path / "IM0001.dic"
    shutil.copyfile(US_DICOM, dic)
    assert read_clip(dic).meta.format == "dicom"
    bare = tmp_path / "IM0002"
    shutil.copyfile(video("clip.mpg"), bare)
    assert formats.format_for(bare, formats.read_head(bare)).name == "mpeg"
    assert read_clip(bare, sampling="all").frames.shape[0] == 6


def test_names_decide_only_when_the_bytes_say_nothing():
    text = b"The free text of a note, not a clip.\n" * 20
    assert formats.sniff(text) is None
    assert formats.format_for("notes.mov", text).name == "mp4"  # the reader will refuse it
    assert formats.format_for("notes.dcm", text).name == "dicom"
    assert formats.format_for("notes.txt", text) is None
    assert formats.format_for("NOTES", text) is formats.PROBE  # FFmpeg probes it (and refuses text)
    # strict (an upload): only DICOM, whose files may lack the preamble, is taken on its name
    assert formats.format_for("notes.mov", text, strict=True) is None
    assert formats.format_for("notes.dcm", text, strict=True).name == "dicom"
    assert formats.format_for("NOTES", text, strict=True) is None


def test_suffixes_are_one_list():
    by_format = [s for fmt in formats.registered() for s in fmt.suffixes]
    assert len(by_format) == len(set(by_format)), "a suffix names two formats"
    assert formats.clip_suffixes() == set(by_format)
    read_before = {".dcm", ".dicom", ".dic", ".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg"}
    assert read_before | {".wmv", ".ogv"} == formats.clip_suffixes()  # what read_clip read by name
    assert all(s == s.lower() and s.startswith(".") for s in by_format)


def test_unknown_suffix_is_refused_by_name(tmp_path):
    path = tmp_path / "clip.xyz"
    path.write_bytes(b"\0" * 1000)
    with pytest.raises(NotAnImage, match=r"clip.xyz: not a DICOM and not a video type we read \(.xyz\)"):
        read_clip(path)


def test_upload_check_takes_what_the_bytes_show(video):
    from echosearch.ui.views.clip import BadUpload, check_upload

    assert check_upload("scan.bin", video("clip.mkv").read_bytes()).name == "mkv"
    assert check_upload("x.mp4", US_DICOM.read_bytes()).name == "dicom"
    assert check_upload("no-preamble.dcm", b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" * 30).name == "dicom"
    for name, data in (("notes.txt", b"hello"), ("notes.mp4", b"not a clip\n" * 100), ("clip", b"\0" * 999)):
        with pytest.raises(BadUpload) as info:
            check_upload(name, data)
        assert str(info.value) == f"{name} is not a DICOM, AVI, MP4/MOV, MKV/WebM, MPEG, WMV or Ogg file"
