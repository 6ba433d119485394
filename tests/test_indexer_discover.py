"""Discovery: recursion, globs, DICOMDIR, symlink loops, duplicates by link, missing paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av
import numpy as np
import pydicom.data
import pytest

from echosearch.indexer.discover import discover, looks_like_clip
from echosearch.video import formats, read_clip


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_walks_recursively_and_filters_by_extension(tmp_path):
    _touch(tmp_path / "a" / "one.dcm")
    _touch(tmp_path / "a" / "b" / "two.avi")
    _touch(tmp_path / "a" / "notes.txt")
    _touch(tmp_path / "a" / "reports.csv")
    found = discover([tmp_path])
    assert sorted(c.path.name for c in found.candidates) == ["one.dcm", "two.avi"]


def test_extensionless_dicom_is_sniffed(tmp_path):
    _touch(tmp_path / "IM0001", b"\0" * 128 + b"DICM" + b"\0" * 10)
    _touch(tmp_path / "README", b"hello")
    assert looks_like_clip(tmp_path / "IM0001")
    assert [c.path.name for c in discover([tmp_path]).candidates] == ["IM0001"]


def test_include_and_exclude_globs(tmp_path):
    _touch(tmp_path / "keep" / "a.dcm")
    _touch(tmp_path / "skip" / "b.dcm")
    _touch(tmp_path / "keep" / "c.mp4")
    found = discover([tmp_path], include=["*.dcm"], exclude=["*/skip/*"])
    assert [c.path.name for c in found.candidates] == ["a.dcm"]


def test_symlink_loop_and_double_link_are_visited_once(tmp_path):
    _touch(tmp_path / "root" / "sub" / "a.dcm")
    os.symlink(tmp_path / "root", tmp_path / "root" / "sub" / "loop")
    os.symlink(tmp_path / "root" / "sub" / "a.dcm", tmp_path / "root" / "alias.dcm")
    found = discover([tmp_path / "root", tmp_path / "root" / "sub"])
    assert len(found.candidates) == 1


def test_missing_path_is_reported_not_raised(tmp_path):
    found = discover([tmp_path / "nope"])
    assert found.candidates == []
    assert found.unreadable and "no such file" in found.unreadable[0][1]


def test_dicomdir_contributes_referenced_files():
    dicomdir = Path(pydicom.data.get_testdata_file("DICOMDIR"))
    found = discover([dicomdir])
    assert len(found.candidates) == 31
    assert all(c.path.is_file() and c.size > 0 for c in found.candidates)


def test_finds_every_type_read_clip_reads(tmp_path, video_writer):
    """.mpg/.mpeg/.wmv/.ogv/.dic clips were read by read_clip but skipped by the folder scan."""
    clips = tmp_path / "clips"
    clips.mkdir()
    frames = np.full((4, 48, 64, 3), 90, dtype=np.uint8)
    for name, codec, pix_fmt in (
        ("a.mpg", "mpeg1video", "yuv420p"),
        ("b.mpeg", "mpeg2video", "yuv420p"),
        ("c.wmv", "wmv2", "yuv420p"),
        ("d.ogv", "libvpx", "yuv420p"),
        ("e.MKV", "mpeg4", "yuv420p"),
    ):
        if codec not in av.codecs_available:
            pytest.skip(f"FFmpeg in this PyAV has no {codec} encoder")
        video_writer(clips / name, frames, codec, pix_fmt)
    shutil.copyfile(pydicom.data.get_testdata_file("US1_J2KR.dcm"), clips / "f.dic")
    shutil.copyfile(clips / "a.mpg", clips / "G0001")  # no suffix: known by its bytes
    _touch(clips / "notes.txt", b"\0" * 128 + b"DICM")  # another suffix: not even opened
    _touch(clips / "NOTES", b"The free text of a note\n" * 30)
    found = discover([tmp_path])
    assert [c.path.name for c in found.candidates] == [
        "G0001", "a.mpg", "b.mpeg", "c.wmv", "d.ogv", "e.MKV", "f.dic"
    ]  # fmt: skip
    for c in found.candidates:
        assert read_clip(c.path, sampling="all").num_frames > 0, c.path.name
    assert all(formats.format_for(c.path, formats.read_head(c.path)) for c in found.candidates)
