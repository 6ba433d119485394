"""One writer at a time per data dir, with a refusal naming the holder; readers writing the audit
log never make the indexer fail with "database is locked"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.lock import DataDirBusy, WriterLock
from echosearch.store import queries as q
from echosearch.store.db import open_db
from echosearch.store.schema import AuditLog, Failure
from echosearch.synth import synthesize_archive

HOLD = "import sys,time; from echosearch.lock import WriterLock; WriterLock(sys.argv[1], 'echosearch index /pacs').acquire(); print('held', flush=True); time.sleep(60)"  # noqa: E501


def _hold_lock(data: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_the_lock_dies_with_it(
    tmp_path, tiny_task_bundle, cli
):
    data = tmp_path / "data"
    holder = _hold_lock(data)
    try:
        with pytest.raises(DataDirBusy) as info:
            WriterLock(data).acquire()
        message = str(info.value)
        assert f"pid {holder.pid}" in message and "echosearch index /pacs" in message
        src = tmp_path / "src"
        src.mkdir()
        done = cli("index", str(src), "--data", str(data), "--model", str(tiny_task_bundle))
        assert done.returncode == 1 and f"pid {holder.pid}" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: the kernel drops the flock
        holder.wait()
    with WriterLock(data):  # free again, no stale lock to clean up
        pass


def test_audit_writes_at_full_speed_never_fail_a_running_indexer(tmp_path, tiny_task_bundle):
    archive, data = tmp_path / "archive", tmp_path / "data"
    synthesize_archive(archive, patients=1, seed=5, studies=(1, 1), clips_per_study=(3, 3), frames=(6, 6))
    for i in range(20):  # failures make the writer read-then-write in many small transactions
        (archive / f"bad{i}.dcm").write_bytes(b"junk" * 100)
    open_db(data).close()
    stop, audits, errors = threading.Event(), [0], []

    def searcher() -> None:
        db = open_db(data, migrate=False)
        while not stop.is_set():
            try:
                with db.session() as s:
                    q.audit(s, "search_text", {"text": "dilated lv"})
                audits[0] += 1
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            time.sleep(0.002)
        db.close()

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        opts = IndexOptions(
            paths=[str(archive)], data_dir=str(data), model=str(tiny_task_bundle), workers=0,
            frames="uniform:2", progress=False, commit_every=1,
        )  # fmt: skip
        summary = run_index(opts)
    finally:
        stop.set()
        thread.join()
    assert summary.new == 3 and summary.failed == 20 and not errors
    db = open_db(data)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog)) == audits[0] > 20
        assert s.scalar(select(func.count()).select_from(Failure)) == 20
    db.close()


def test_the_lock_file_names_the_command_but_no_path(tmp_path, monkeypatch):
    """The holder's arguments name archive folders (MRN/accession layouts): the lock says which
    command holds it, never the paths it was given."""
    from echosearch.lock import LOCK_FILE

    monkeypatch.setattr(
        sys, "argv", ["echosearch", "index", "/pacs/MRN12345/ACC987", "--data", str(tmp_path)]
    )
    with WriterLock(tmp_path):
        text = (tmp_path / LOCK_FILE).read_text()
        with pytest.raises(DataDirBusy, match="`echosearch index`"):
            WriterLock(tmp_path).acquire()
    assert "echosearch index" in text and "MRN12345" not in text and str(tmp_path) not in text
