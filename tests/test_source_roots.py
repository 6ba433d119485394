"""PHI at rest, clip paths: clips are stored relative to a registered source root
(``root:<id>/...``), never with the archive's absolute path; a rerun through another spelling of
the same folder recognises every clip; a moved archive is one `echosearch sources move`; rows an
older version stored with absolute paths keep resolving and are rewritten by the next index run;
``index_runs.args`` names roots by id, never a path in the clear."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, select, text, update

from echosearch.indexer.reconcile import verify_data_dir
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.privacy import site_key_for
from echosearch.search import Engine
from echosearch.sources import SourceRoots, describe_path, parse_root_key, register_root, root_key
from echosearch.store.db import alembic_config, make_engine, open_db, url_for_data_dir
from echosearch.store.schema import STATUS_INDEXED, Failure, IndexRun, SourceRoot, Video
from echosearch.synth import synthesize_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "archive"
    synthesize_archive(out, patients=2, seed=5, studies=(1, 1), clips_per_study=(2, 2), frames=(6, 6))
    return out


def _opts(paths, data, bundle, **kw) -> IndexOptions:
    base = dict(model=str(bundle), workers=0, frames="uniform:4", progress=False, commit_every=4)
    base.update(kw)
    return IndexOptions(paths=[str(p) for p in paths], data_dir=str(data), **base)


def _rows(data: Path):
    db = open_db(data)
    with db.session() as s:
        videos = {v.id: v.path for v in s.scalars(select(Video).where(Video.status == STATUS_INDEXED))}
        failures = list(s.scalars(select(Failure.path)))
        roots = {r.id: r.path for r in s.scalars(select(SourceRoot))}
        runs = [r.args for r in s.scalars(select(IndexRun).order_by(IndexRun.id))]
    db.close()
    return videos, failures, roots, runs


# ---------------------------------------------------------------- the conversion itself


def test_keys_convert_both_ways_through_the_innermost_root(tmp_path):
    outer, inner = tmp_path / "archive", tmp_path / "archive" / "2021"
    (inner / "MRN42").mkdir(parents=True)
    roots = SourceRoots({1: str(inner), 2: str(outer)})
    clip = inner / "MRN42" / "a.dcm"
    assert roots.key_for(clip) == "root:1/MRN42/a.dcm"  # the innermost root holds it
    assert roots.key_for(outer / "b.dcm") == "root:2/b.dcm"
    assert roots.key_for(tmp_path / "elsewhere.dcm") is None
    assert roots.location("root:1/MRN42/a.dcm") == str(clip) == roots.path_for("root:1/MRN42/a.dcm")
    assert parse_root_key("root:7/x/y.dcm") == (7, "x/y.dcm") and root_key(7, "x/y.dcm") == "root:7/x/y.dcm"
    # an older absolute key resolves as it is; remote keys are no files; an unknown root is not guessed
    assert roots.path_for(str(clip)) == str(clip)
    remote = "dicomweb+https://pacs/dicom-web/studies/1/series/2/instances/3"
    assert roots.path_for(remote) is None and roots.location(remote) == remote
    assert roots.path_for("root:9/a.dcm") is None and roots.location("root:9/a.dcm") == "root:9/a.dcm"
    link = tmp_path / "link"
    link.symlink_to(outer)
    assert roots.key_for(link / "2021" / "MRN42" / "a.dcm") == "root:1/MRN42/a.dcm"  # same folder


def test_a_folder_inside_a_root_is_that_root_and_old_absolute_rows_are_rewritten(tmp_path):
    archive = tmp_path / "archive"
    (archive / "MRN1").mkdir(parents=True)
    db = open_db(tmp_path / "data")
    with db.session() as s:
        s.add(Video(path=str(archive / "MRN1" / "a.dcm")))  # as an older version stored it
        s.add(Failure(path=str(archive / "bad.dcm"), reason="x"))
        s.add(Video(path=str(tmp_path / "other" / "c.dcm")))  # under no root: left as it is
    with db.session() as s:
        done = register_root(s, archive)
        assert done.new and done.rekeyed == 2
        assert register_root(s, archive / "MRN1").id == done.id  # inside a root: no new root
        assert register_root(s, Path(os.path.relpath(archive))).id == done.id  # another spelling
        paths = set(s.scalars(select(Video.path))) | set(s.scalars(select(Failure.path)))
        assert paths == {
            f"root:{done.id}/MRN1/a.dcm",
            f"root:{done.id}/bad.dcm",
            str(tmp_path / "other" / "c.dcm"),
        }
        assert len(s.scalars(select(SourceRoot)).all()) == 1
    db.close()


# ---------------------------------------------------------------- the indexer


def test_clips_are_stored_below_a_registered_root_and_reruns_through_other_spellings_dedupe(
    tmp_path, archive, tiny_task_bundle, db_backend, monkeypatch
):
    src, data = tmp_path / "src", tmp_path / "data"
    shutil.copytree(archive, src)
    (src / "broken.dcm").write_bytes(b"not a dicom" * 20)
    first = run_index(_opts([src], data, tiny_task_bundle, reports=str(src / "reports.csv")))
    assert first.new > 0 and first.failed == 1
    videos, failures, roots, runs = _rows(data)
    assert roots == {1: str(src.resolve())}
    assert all(p.startswith("root:1/") for p in [*videos.values(), *failures])
    assert not any(str(src) in p for p in [*videos.values(), *failures])
    db = open_db(data)
    where = SourceRoots.load(db)
    db.close()
    assert all(os.path.isfile(where.path_for(p)) for p in videos.values())

    link = tmp_path / "link"
    link.symlink_to(src)
    monkeypatch.chdir(tmp_path)
    for given in (link, Path("src"), src / sorted(p.name for p in src.iterdir() if p.is_dir())[0]):
        again = run_index(_opts([given], data, tiny_task_bundle))
        assert again.new == 0 and again.embedded == 0 and again.duplicates == 0, given
        assert again.missing == 0
    assert _rows(data)[0] == videos and _rows(data)[2] == roots  # no new rows, no new roots

    # the runs name the root by id and what lies below it keyed: no path in the clear
    runs = _rows(data)[3]
    dumped = json.dumps(runs)
    study_folders = {p.name for p in src.rglob("*") if p.is_dir()}
    assert str(src) not in dumped and "reports.csv" not in dumped
    assert not any(name in dumped for name in study_folders)
    assert runs[0]["paths"] == ["root:1"] and runs[1]["paths"] == ["root:1"] == runs[2]["paths"]
    assert runs[3]["paths"][0].startswith("root:1/<path:") and runs[0]["reports"].startswith("<path:")


def test_a_symlink_out_of_the_root_registers_the_folder_its_file_lives_in(
    tmp_path, archive, tiny_task_bundle
):
    src, elsewhere, data = tmp_path / "src", tmp_path / "elsewhere", tmp_path / "data"
    src.mkdir()
    elsewhere.mkdir()
    clip = next(p for p in sorted(archive.rglob("*.dcm")))
    shutil.copy(clip, elsewhere / "real.dcm")
    (src / "link.dcm").symlink_to(elsewhere / "real.dcm")
    assert run_index(_opts([src], data, tiny_task_bundle)).new == 1
    videos, _failures, roots, _runs = _rows(data)
    assert set(roots.values()) == {str(src.resolve()), str(elsewhere.resolve())}
    rid = next(i for i, p in roots.items() if p == str(elsewhere.resolve()))
    assert list(videos.values()) == [f"root:{rid}/real.dcm"]


def test_a_moved_archive_is_one_sources_move_and_nothing_is_read_again(
    tmp_path, archive, tiny_task_bundle, cli
):
    src, data, moved = tmp_path / "mnt-old" / "archive", tmp_path / "data", tmp_path / "mnt-new" / "archive"
    shutil.copytree(archive, src)
    first = run_index(_opts([src], data, tiny_task_bundle))
    videos, *_ = _rows(data)
    moved.parent.mkdir()
    shutil.move(src, moved)

    listed = cli("sources", "list", "--data", str(data), "--json")
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert doc["roots"] == [{"id": 1, "path": str(src.resolve()), "present": False, "clips": first.new}]
    done = cli("sources", "move", "1", str(moved), "--data", str(data))
    assert done.returncode == 0, done.stderr
    unknown = cli("sources", "move", "9", str(moved), "--data", str(data))
    assert unknown.returncode == 1 and "no source root 9" in unknown.stderr

    again = run_index(_opts([moved], data, tiny_task_bundle))
    assert (again.new, again.missing, again.duplicates, again.embedded) == (0, 0, 0, 0)
    assert again.unchanged == first.new and _rows(data)[0] == videos
    db = open_db(data)
    assert all(c.ok for c in verify_data_dir(data, db))
    db.close()
    assert cli("verify", "--data", str(data)).returncode == 0
    relabelled = cli("relabel", "--data", str(data), "--json")
    assert relabelled.returncode == 0, relabelled.stderr
    assert json.loads(relabelled.stdout)["clips"] == first.new
    with Engine.open(data) as engine:
        vid = min(videos)
        hit = engine.video(vid)
        assert hit.path.startswith(str(moved.resolve()) + "/")  # an admin sees the file where it is now
        assert engine.cine(vid).frames > 0  # the viewer reads it from the new place


def test_rows_stored_with_absolute_paths_still_resolve_and_the_next_run_rekeys_them(
    tmp_path, archive, tiny_task_bundle, db_backend
):
    src, data = tmp_path / "src", tmp_path / "data"
    shutil.copytree(archive, src)
    (src / "broken.dcm").write_bytes(b"not a dicom" * 20)
    first = run_index(_opts([src], data, tiny_task_bundle))
    videos, *_ = _rows(data)
    absolute = str(src.resolve())
    db = open_db(data)
    with db.session() as s:  # turn the data dir into what an older version wrote
        for table in (Video, Failure):
            for row_id, key in s.execute(select(table.id, table.path)).all():
                s.execute(
                    update(table).where(table.id == row_id).values(path=absolute + key[len("root:1") :])
                )
        s.execute(delete(SourceRoot))
    db.close()
    with Engine.open(data) as engine:
        vid = min(videos)
        assert engine.video(vid).path == str(src.resolve()) + videos[vid][len("root:1") :]
        assert engine.cine(vid).frames > 0
    again = run_index(_opts([src], data, tiny_task_bundle))
    assert (again.new, again.missing, again.embedded) == (0, 0, 0) and again.unchanged == first.new
    assert again.skipped_failed == 1  # the failure recorded under its absolute path is known too
    now, failures, roots, _runs = _rows(data)
    rid = next(iter(roots))
    assert now == {vid: f"root:{rid}/" + key.split("/", 1)[1] for vid, key in videos.items()}
    assert failures == [f"root:{rid}/broken.dcm"]


def test_migration_0004_drops_clear_paths_from_old_runs(tmp_path):
    url = url_for_data_dir(tmp_path)
    engine = make_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        old = {"paths": ["/archive/MRN123", "dicomweb+https://pacs/dicom-web"], "reports": "/r.csv", "k": 1}
        conn.execute(
            text("INSERT INTO index_runs (started_at, status, args) VALUES ('2020-01-01', 'ok', :a)"),
            {"a": json.dumps(old)},
        )
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()
    db = open_db(url)
    with db.session() as s:
        args = s.scalars(select(IndexRun.args)).one()
    db.close()
    assert "MRN123" not in json.dumps(args) and "/r.csv" not in json.dumps(args)
    assert args["paths"][1] == "dicomweb+https://pacs/dicom-web" and args["k"] == 1


def test_describe_path_keys_what_lies_below_a_root(tmp_path):
    (tmp_path / "MRN9").mkdir()
    db = open_db(tmp_path / "data")
    key = site_key_for(tmp_path / "data", db)
    with db.session() as s:
        register_root(s, tmp_path)
    roots = SourceRoots.load(db)
    db.close()
    assert describe_path(str(tmp_path), roots, key) == "root:1"
    below = describe_path(str(tmp_path / "MRN9"), roots, key)
    assert below.startswith("root:1/<path:") and "MRN9" not in below
    assert below == describe_path(str(tmp_path / "MRN9") + "/", roots, key)  # same folder, same mark
    assert describe_path("dicomweb+https://pacs/x", roots, key) == "dicomweb+https://pacs/x"


def test_a_move_that_would_land_a_nested_root_on_another_root_is_refused_and_changes_nothing(
    tmp_path, db_backend
):
    from echosearch.errors import UsageError
    from echosearch.sources import move_root
    from echosearch.store import queries as q

    for folder in ("x/a/b", "y/b", "z/a/b"):
        (tmp_path / folder).mkdir(parents=True)
    db = open_db(tmp_path / "data")
    with db.session() as s:
        outer = q.add_source_root(s, str(tmp_path / "x" / "a"))
        inner = q.add_source_root(s, str(tmp_path / "x" / "a" / "b"))
        other = q.add_source_root(s, str(tmp_path / "y" / "b"))
    with pytest.raises(UsageError, match=f"root {inner}, inside it.*is source root {other} already"):
        with db.session() as s:
            move_root(s, outer, tmp_path / "y")
    with db.session() as s:
        assert q.source_roots(s)[inner] == str(tmp_path / "x" / "a" / "b")
        move_root(s, outer, tmp_path / "z" / "a")  # a free place: both move
    with db.session() as s:
        assert q.source_roots(s)[inner] == str(tmp_path / "z" / "a" / "b")
        move_root(s, outer, tmp_path / "z" / "a" / "b")  # into its own subfolder: no transient clash
    with db.session() as s:
        assert q.source_roots(s)[inner] == str(tmp_path / "z" / "a" / "b" / "b")
    db.close()
