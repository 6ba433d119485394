"""Paths never abort an index run: names that are not UTF-8, spaces and newlines, FIFOs, dangling
links are indexed (where readable) or recorded as failures with a reason, and the rest commits.
A path given on the command line that does not exist is an error naming it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from echosearch.errors import UsageError
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.paths import filesystem_path, storable_path
from echosearch.sources import SourceRoots
from echosearch.store.db import open_db
from echosearch.store.schema import STATUS_INDEXED, Failure, Video
from echosearch.synth import synthesize_archive


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("synth") / "archive"
    synthesize_archive(out, patients=1, seed=3, studies=(1, 1), clips_per_study=(3, 3), frames=(6, 6))
    return sorted(p for p in out.rglob("*") if p.suffix in {".dcm", ".avi", ".mp4"})


def _opts(paths, data, bundle) -> IndexOptions:
    return IndexOptions(
        paths=[str(p) for p in paths], data_dir=str(data), model=str(bundle), workers=0,
        frames="uniform:4", progress=False, commit_every=2,
    )  # fmt: skip


def test_storable_path_round_trips_a_name_that_is_not_utf8(tmp_path):
    real = os.fsdecode(os.fsencode(str(tmp_path)) + b"/clip-\xff\xfe.dcm")
    Path(real).write_bytes(b"x")
    text = storable_path(real)
    text.encode("utf-8")  # storable
    assert "\\xff" in text and filesystem_path(text) == real
    assert storable_path("a b\nc.dcm") == "a b\nc.dcm" == filesystem_path("a b\nc.dcm")


def test_odd_paths_never_abort_the_run_and_the_good_clips_commit(tmp_path, clips, tiny_task_bundle):
    src, data = tmp_path / "src", tmp_path / "data"
    src.mkdir()
    bad_name = os.fsdecode(os.fsencode(str(src)) + b"/patient-\xe9\xff" + clips[0].suffix.encode())
    shutil.copy(clips[0], bad_name)
    shutil.copy(clips[1], src / f"with space\nand newline{clips[1].suffix}")
    shutil.copy(clips[2], src / clips[2].name)
    os.mkfifo(src / "pipe.dcm")  # opening it would block forever
    os.symlink(src / "gone.dcm", src / "dangling.dcm")
    (src / "garbage.dcm").write_bytes(b"not a dicom at all" * 10)

    summary = run_index(_opts([src], data, tiny_task_bundle))
    assert summary.new == 3 and summary.failed == 1  # garbage.dcm
    assert summary.unreadable_paths == 2  # the FIFO and the dangling link
    db = open_db(data)
    with db.session() as s:
        indexed = set(s.scalars(select(Video.path).where(Video.status == STATUS_INDEXED)))
        failures = {Path(p).name: (kind, reason) for p, kind, reason in s.execute(
            select(Failure.path, Failure.kind, Failure.reason))}  # fmt: skip
    roots = SourceRoots.load(db)
    db.close()
    key = roots.key_for(bad_name)  # stored below its source root, escaped, and read back to the name
    assert key == "root:1/" + storable_path(bad_name).rsplit("/", 1)[1] and key in indexed
    assert roots.path_for(key) == bad_name
    assert failures["pipe.dcm"] == ("Unreadable", "not a regular file (FIFO)")
    assert failures["dangling.dcm"] == ("Unreadable", "dangling symbolic link")
    assert "garbage.dcm" in failures

    again = run_index(_opts([src], data, tiny_task_bundle))  # the rerun sees the same names as unchanged
    assert again.unchanged == 3 and again.new == 0 and again.missing == 0


def test_a_path_that_does_not_exist_is_an_error_naming_it(tmp_path, tiny_task_bundle, cli):
    with pytest.raises(UsageError, match="no/such/dir"):
        run_index(_opts([tmp_path / "no/such/dir"], tmp_path / "data", tiny_task_bundle))
    done = cli("index", str(tmp_path / "no/such/dir"), "--data", str(tmp_path / "data"))
    assert done.returncode == 2 and "no/such/dir" in done.stderr and "does not exist" in done.stderr
