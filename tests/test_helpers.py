"""The shared helpers: atomic file writes (mode, no leftovers), sha256 of a file, batches of a sequence."""

from __future__ import annotations

import hashlib
import os
import stat

import numpy as np
import pytest

from echosearch.batching import batches
from echosearch.fsutil import PRIVATE, atomic_path, atomic_write_bytes, atomic_write_text, sha256_file


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "space.json"
    path.write_text("old")
    atomic_write_text(path, '{"new": true}\n')
    assert path.read_text() == '{"new": true}\n'
    atomic_write_bytes(path, b"\x00\x01", fsync=False)
    assert path.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["space.json"]


def test_modes_follow_the_umask_or_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "public", "x")
        atomic_write_text(tmp_path / "private", "x", mode=PRIVATE)
        (tmp_path / "over").write_text("x")
        (tmp_path / "over").chmod(0o644)
        atomic_write_bytes(tmp_path / "over", b"key", mode=PRIVATE)  # replacing never widens
    finally:
        os.umask(old)
    assert _mode(tmp_path / "public") == 0o644  # what open() would have made
    assert _mode(tmp_path / "private") == 0o600
    assert _mode(tmp_path / "over") == 0o600


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "index.faiss"
    path.write_bytes(b"intact")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer died")
    assert path.read_bytes() == b"intact"
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]


def test_atomic_path_is_for_writers_that_want_a_name(tmp_path):
    path = tmp_path / "thumb.png"
    with atomic_path(path, fsync=False) as tmp:
        assert tmp.parent == tmp_path and tmp != path and tmp.exists()
        tmp.write_bytes(b"png")
        assert not path.exists()
    assert path.read_bytes() == b"png"


def test_sha256_file_matches_hashlib(tmp_path):
    data = np.random.default_rng(0).bytes(3 << 20)  # more than one read's worth
    (tmp_path / "clip.dcm").write_bytes(data)
    assert sha256_file(tmp_path / "clip.dcm") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()


def test_batches_are_slices_of_the_sequence():
    assert list(batches([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(batches([], 3)) == []
    assert list(batches(range(5), 5)) == [range(5)]
    ids = np.arange(7, dtype=np.int64)
    parts = list(batches(ids, 3))
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5], [6]]
    assert all(isinstance(p, np.ndarray) and np.shares_memory(p, ids) for p in parts)
    with pytest.raises(ValueError):
        list(batches([1], 0))
