"""`verify` finds every kind of damage a data dir can suffer and exits non-zero; `verify --repair`
fixes it without losing anything intact (vectors rebuilt from the frame store, the frame map from
its checksummed copy, metadata from the database) and only clips whose frames are really gone are
read again, by the next `index`. A missing index file is an error, never an empty result."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from echosearch.index import Space
from echosearch.index.faiss_index import VectorIndexError
from echosearch.indexer.reconcile import StoreCheck, verify_data_dir
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.search import Engine
from echosearch.store.db import StoreError, open_db
from echosearch.synth import synthesize_archive


def _opts(archive: Path, data: Path, bundle: Path) -> IndexOptions:
    return IndexOptions(
        paths=[str(archive)], data_dir=str(data), model=str(bundle), workers=0,
        frames="uniform:4", progress=False, commit_every=4,
    )  # fmt: skip


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_task_bundle) -> dict:
    root = tmp_path_factory.mktemp("verify")
    archive, data = root / "archive", root / "data"
    synthesize_archive(archive, patients=2, seed=21, frames=(6, 8))
    summary = run_index(_opts(archive, data, tiny_task_bundle))
    return {"archive": archive, "data": data, "space": summary.space, "clips": summary.new}


@pytest.fixture
def copy(indexed, tmp_path) -> dict:
    data = tmp_path / "data"
    shutil.copytree(indexed["data"], data)
    space = Space.open(data, indexed["space"])
    return {**indexed, "data": data, "space": space, "vectors": _vectors(space)}


def _vectors(space: Space) -> dict[int, np.ndarray]:
    index = space.load_index()
    ids = index.ids()
    return {int(i): v for i, v in zip(ids, index.reconstruct(ids), strict=True)}


def _verify(data: Path, repair: bool = False) -> tuple[StoreCheck, list]:
    db = open_db(data, writer=repair)
    store = StoreCheck()
    try:
        return store, verify_data_dir(data, db, repair=repair, store=store)
    finally:
        db.close()


def _problems(data: Path) -> int:
    store, checks = _verify(data)
    return store.problems + sum(c.problems for c in checks)


def _video(checks):
    return next(c for c in checks if c.kind == "video")


def _same_vectors(space: Space, before: dict[int, np.ndarray]) -> None:
    after = _vectors(space)
    assert set(after) == set(before)
    for vid, vec in before.items():
        assert float(np.dot(after[vid], vec)) > 0.999


def test_an_intact_data_dir_verifies_clean(indexed, cli):
    assert _problems(indexed["data"]) == 0
    done = cli("verify", "--data", str(indexed["data"]))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_lost_frame_map_is_rebuilt_and_no_vector_is_lost(copy, cli):
    (copy["space"].frames_dir / "map.log").unlink()
    broken = cli("verify", "--data", str(copy["data"]))
    assert broken.returncode == 1 and "map.log lost the frames" in broken.stdout
    fixed = cli("verify", "--repair", "--data", str(copy["data"]))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "frame_map_rebuilt" in fixed.stdout
    _same_vectors(copy["space"], copy["vectors"])
    assert len(copy["space"].frames()) == copy["clips"] and _problems(copy["data"]) == 0


@pytest.mark.parametrize("how", ["deleted", "truncated", "nan"])
def test_a_damaged_shard_is_found_and_only_its_clips_are_read_again(copy, tiny_task_bundle, how, cli):
    shard = copy["space"].frames_dir / "shard-00000.f16"
    if how == "deleted":
        shard.unlink()
    elif how == "truncated":
        with open(shard, "r+b") as f:
            f.truncate(shard.stat().st_size // 2)
    else:
        raw = bytearray(shard.read_bytes())
        raw[: len(raw) // 3] = b"\x00\x7e" * (len(raw) // 6)  # float16 NaN
        shard.write_bytes(bytes(raw))
    store, checks = _verify(copy["data"])
    assert _video(checks).damaged_frames, f"a {how} shard went unnoticed"
    assert cli("verify", "--data", str(copy["data"])).returncode == 1

    fixed = cli("verify", "--repair", "--data", str(copy["data"]))
    assert fixed.returncode == 1 and "must be read again" in fixed.stderr  # says what is left to do
    _same_vectors(copy["space"], copy["vectors"])  # searchable meanwhile: no vector was dropped
    again = run_index(_opts(copy["archive"], copy["data"], tiny_task_bundle))
    assert again.updated == len(_video(checks).damaged_frames) and again.new == 0
    assert _problems(copy["data"]) == 0


def test_garbage_inside_the_sqlite_file_is_reported(copy, cli):
    db_file = copy["data"] / "echosearch.db"
    with sqlite3.connect(db_file) as conn:  # everything into the main file, so the damage is seen
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(db_file.read_bytes())
    third = len(raw) // 3
    raw[third : 2 * third] = b"\xde\xad\xbe\xef" * (third // 4) + b"\0" * (third % 4)
    db_file.write_bytes(bytes(raw))
    try:
        store, _ = _verify(copy["data"])
        assert any("SQLite" in d for d in store.damage)
    except StoreError:
        pass  # so damaged that it cannot be opened: also an error, never "ok"
    done = cli("verify", "--data", str(copy["data"]))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1


def test_an_unreadable_index_is_rebuilt_from_the_frame_store(copy, cli):
    path = copy["space"].index_path
    raw = bytearray(path.read_bytes())
    raw[:64] = b"\0" * 64
    path.write_bytes(bytes(raw))
    store, checks = _verify(copy["data"])
    assert any("unreadable" in d for d in _video(checks).damage)
    fixed = cli("verify", "--repair", "--data", str(copy["data"]))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    _same_vectors(copy["space"], copy["vectors"])


def test_a_missing_index_is_an_error_for_search_and_repair_rebuilds_it(copy, cli):
    copy["space"].index_path.unlink()
    with pytest.raises(VectorIndexError, match="verify --repair"):
        Engine.open(copy["data"])
    done = cli("search", "dilated left ventricle", "--data", str(copy["data"]))
    assert done.returncode == 1 and "index.faiss is missing" in done.stderr
    assert cli("verify", "--data", str(copy["data"])).returncode == 1
    assert cli("verify", "--repair", "--data", str(copy["data"])).returncode == 0
    _same_vectors(copy["space"], copy["vectors"])


def test_lost_metadata_files_are_rewritten_from_the_database(copy, cli):
    (copy["space"].root / "space.json").unlink()
    (copy["space"].frames_dir / "meta.json").write_text("{not json")
    broken = cli("verify", "--data", str(copy["data"]))
    assert broken.returncode == 1 and "space.json" in broken.stdout and "meta.json" in broken.stdout
    assert cli("verify", "--repair", "--data", str(copy["data"])).returncode == 0
    assert Space.open(copy["data"], copy["space"].name).info.dim == copy["space"].info.dim
    _same_vectors(copy["space"], copy["vectors"])
    assert _problems(copy["data"]) == 0


def test_relabel_leaves_clips_with_nan_frames_alone_instead_of_writing_null_labels(copy, cli):
    from sqlalchemy import func, select

    from echosearch.store.schema import Label

    shard = copy["space"].frames_dir / "shard-00000.f16"
    raw = bytearray(shard.read_bytes())
    raw[: len(raw) // 3] = b"\x00\x7e" * (len(raw) // 6)  # float16 NaN over the first clips
    shard.write_bytes(bytes(raw))
    done = cli("relabel", "--data", str(copy["data"]))
    assert done.returncode == 0, done.stderr
    assert "damaged" in done.stdout and "verify --repair" in done.stdout
    db = open_db(copy["data"])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Label).where(Label.value.is_(None))) == 0
    db.close()
