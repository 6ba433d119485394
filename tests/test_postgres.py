"""PostgreSQL as the metadata database: ``--db``, ``db migrate`` from SQLite, readers during an index run,
and clear one-line errors for a bad URL, an unreachable server or a data dir opened with another
database. (The store, indexer and verify tests run on both backends through ``db_backend``.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from echosearch.indexer.reconcile import verify_data_dir
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.search import Engine, parse_where
from echosearch.store.db import open_db, url_for_data_dir
from echosearch.store.schema import AuditLog, Video
from echosearch.synth import synthesize_archive

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pg-archive") / "archive"
    synthesize_archive(
        out, patients=2, seed=3, studies=(1, 1), clips_per_study=(2, 2), frames=(4, 6),
        formats=("dicom-explicit",),
    )  # fmt: skip
    return out


def _opts(archive: Path, data: Path, bundle: Path) -> IndexOptions:
    return IndexOptions([str(archive)], str(data), model=str(bundle), workers=0, frames="uniform:4")


def _search_ids(cli, data: Path, *extra: str) -> list[int]:
    done = cli("search", "PACER LEAD", "--data", str(data), "-k", "20", "--literal", "--json", *extra)
    assert done.returncode == 0, done.stderr
    return [hit["video_id"] for hit in json.loads(done.stdout)["results"]]


def test_db_migrate_moves_a_sqlite_site_to_postgresql_with_its_ids(
    tmp_path, tiny_archive, tiny_task_bundle, postgres, cli, monkeypatch
):
    monkeypatch.delenv("ECHOSEARCH_DB", raising=False)
    part = tmp_path / "part"
    shutil.copytree(tiny_archive, part)
    extra = sorted(part.rglob("*.dcm"))[-1]
    later = tmp_path / "later" / extra.name
    later.parent.mkdir()
    shutil.move(extra, later)
    data = tmp_path / "data"
    first = run_index(_opts(part, data, tiny_task_bundle))
    with Engine.open(data) as engine:
        hits = engine.search_text("PACER LEAD", k=20, literal=True, filters=parse_where(["view = A4C|PLAX"]))
        before = [h.video_id for h in hits.results]
    assert before and first.new == len(before)

    pg = postgres.new_database()
    moved = cli("db", "migrate", "--from", url_for_data_dir(data), "--to", pg, "--data", str(data), "--json")
    assert moved.returncode == 0, moved.stderr
    counts = json.loads(moved.stdout)["tables"]
    assert counts["videos"] == first.new and counts["labels"] > 0 and counts["index_runs"] == 1

    # The data dir now belongs to PostgreSQL: same ids, same answers; SQLite is refused, with the fix.
    assert _search_ids(cli, data, "--db", pg, "--where", "view = A4C|PLAX") == before
    refused = cli("search", "PACER LEAD", "--data", str(data))
    assert refused.returncode == 1 and "--db" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr

    # The next run (here through $ECHOSEARCH_DB) adds the new clip after the copied ids: sequences moved.
    monkeypatch.setenv("ECHOSEARCH_DB", pg)
    again = run_index(_opts(later.parent, data, tiny_task_bundle))
    assert again.new == 1
    db = open_db(data)
    with db.session() as s:
        ids = s.scalars(select(Video.id).order_by(Video.id)).all()
    assert all(c.ok for c in verify_data_dir(data, db))
    db.close()
    assert ids == list(range(1, first.new + 2))

    # A second copy into a database that has rows is refused (it would renumber ids).
    other = open_db(tmp_path / "other", db=url_for_data_dir(tmp_path / "other"))
    other.close()
    refused = cli("db", "migrate", "--from", url_for_data_dir(tmp_path / "other"), "--to", pg)
    assert refused.returncode == 1 and "not empty" in refused.stderr


def test_a_bad_database_url_is_a_usage_error(tmp_path, cli):
    done = cli("stats", "--data", str(tmp_path), "--db", "not a url")
    assert done.returncode == 2 and "not a database URL" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_server_is_one_clear_line(tmp_path, tiny_archive, tiny_task_bundle, cli):
    start = time.monotonic()
    done = cli(
        "index", str(tiny_archive), "--data", str(tmp_path / "d"), "--model", str(tiny_task_bundle),
        "--db", "postgresql://nobody@127.0.0.1:1/echosearch",
    )  # fmt: skip
    assert done.returncode == 1 and "127.0.0.1" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert time.monotonic() - start < 60


def test_readers_search_and_audit_while_an_index_run_writes(
    tmp_path, tiny_archive, tiny_task_bundle, postgres, monkeypatch
):
    """A running indexer (another process) and a reader (search + audit rows) at once on PostgreSQL:
    neither fails (tests/test_writer_lock.py has SQLite's)."""
    monkeypatch.setenv("ECHOSEARCH_DB", postgres.new_database())
    first, second = tmp_path / "first", tmp_path / "second"
    dcms = sorted(tiny_archive.rglob("*.dcm"))
    for folder, files in ((first, dcms[:1]), (second, dcms[1:])):
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
    data = tmp_path / "data"
    indexed = run_index(_opts(first, data, tiny_task_bundle)).new
    writer = subprocess.Popen(
        [sys.executable, "-m", "echosearch", "index", str(second), "--data", str(data), "--model",
         str(tiny_task_bundle), "--workers", "0", "--frames", "uniform:4", "--commit-every", "1", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    searches = 0
    with Engine.open(data) as engine:
        while writer.poll() is None or searches < 3:
            engine.reload()
            result = engine.search_text("PACER LEAD", k=5, literal=True)
            assert result.results
            searches += 1
            time.sleep(0.2)  # two cores here: leave the writer some
        out, err = writer.communicate()
        assert writer.returncode == 0, err
        indexed += json.loads(out)["new"]
        with engine.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Video)) == indexed > 1
            assert s.scalar(select(func.count()).select_from(AuditLog)) >= searches
