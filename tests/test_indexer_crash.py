"""Crash safety: kill -9 the indexer mid-run, rerun the same command: counts exact, verify clean."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from procs import children, indexed_so_far, kill_9_once_committed, wait_gone
from sqlalchemy import func, select

from echosearch.index import Space
from echosearch.indexer.reconcile import verify_data_dir
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.store.db import open_db
from echosearch.store.schema import STATUS_INDEXED, Label, Video
from echosearch.synth import synthesize_archive
from echosearch.synth.archive import read_manifest


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_is_exact(tmp_path, tiny_task_bundle):
    src, data = tmp_path / "archive", tmp_path / "data"
    synthesize_archive(src, patients=3, seed=11, frames=(6, 8))
    clips = len(read_manifest(src))
    cmd = [sys.executable, "-m", "echosearch", "index", str(src), "--data", str(data), "--model",
           str(tiny_task_bundle), "--frames", "uniform:4", "--commit-every", "1", "--workers", "1"]  # fmt: skip
    kill_9_once_committed(cmd, data / "echosearch.db", 2, 120, "the indexer")
    killed_at = indexed_so_far(data / "echosearch.db")
    assert 0 < killed_at < clips, f"the kill should land mid-run ({killed_at}/{clips} indexed)"

    summary = run_index(
        IndexOptions(
            paths=[str(src)],
            data_dir=str(data),
            model=str(tiny_task_bundle),
            workers=0,
            frames="uniform:4",
            progress=False,
        )  # fmt: skip
    )
    assert summary.unchanged + summary.new + summary.updated == clips
    assert summary.new + summary.updated == clips - summary.unchanged
    db = open_db(data)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Video)) == clips  # nothing indexed twice
        assert (
            s.scalar(select(func.count()).select_from(Video).where(Video.status == STATUS_INDEXED)) == clips
        )
        assert s.scalar(select(func.count()).select_from(Label)) == clips * 4  # 3 tasks + pacemaker.positive
    db.close()
    space = Space.open(data, summary.space)
    index, frames = space.load_index(), space.frames()
    assert index.ntotal == clips == len(frames)
    assert set(index.ids().tolist()) == set(frames.ids().tolist())

    checks = verify_data_dir(data, open_db(data))
    assert checks and all(c.ok for c in checks)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_indexer_leaves_no_reader_process(tmp_path, tiny_task_bundle):
    src, data = tmp_path / "archive", tmp_path / "data"
    synthesize_archive(src, patients=2, seed=12, frames=(6, 8))
    cmd = [sys.executable, "-m", "echosearch", "index", str(src), "--data", str(data), "--model",
           str(tiny_task_bundle), "--frames", "uniform:4", "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    readers: list[int] = []
    try:
        while len(readers) < 2 and proc.poll() is None:  # the pool's readers (and its resource tracker)
            assert time.monotonic() < deadline, "the indexer started no readers"
            readers = children(proc.pid)
            time.sleep(0.05)
    finally:
        proc.kill()  # kill -9 of the indexer alone: its readers get no signal from us
        proc.wait()
    left = wait_gone(set(readers), 10)
    assert not left, f"reader processes outlived the indexer: {sorted(left)}"
