"""Discovery: recursion, globs, DICOMDIR, symlink loops, duplicates by link, missing paths."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom.data

from echosearch.indexer.discover import discover, looks_like_clip


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
