"""echosearch.store: schema round-trips, migrations, filters, portability, and WAL concurrency."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.dialects import postgresql

from echosearch.errors import UsageError
from echosearch.store import queries as Q
from echosearch.store.db import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    open_db,
    url_for_data_dir,
)
from echosearch.store.schema import STATUS_INDEXED, Base, Failure, Study, Video


@pytest.fixture
def db(tmp_path, db_backend):
    d = open_db(tmp_path)
    yield d
    d.close()


def test_empty_db_migrates_to_head_and_matches_orm(tmp_path):
    url = url_for_data_dir(tmp_path)
    engine = make_engine(url)
    assert current_revision(engine) is None
    db = open_db(url)
    assert current_revision(db.engine) == head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert set(inspect(db.engine).get_table_names()) >= set(Base.metadata.tables)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.close()
    # Opening again is a no-op upgrade (an existing data dir keeps its data).
    db2 = open_db(url)
    assert current_revision(db2.engine) == head_revision()
    db2.close()
    engine.dispose()


def _open_when_released(url: str, barrier, results) -> None:
    barrier.wait()
    try:
        open_db(url).close()
        results.put("ok")
    except Exception as exc:  # the failure itself is what the test reports
        results.put(str(exc))


def test_processes_creating_the_same_new_sqlite_database_at_once_all_open_it(tmp_path):
    """A search opening the database while the PACS listener creates it (a deferred migration
    transaction failed at once with "database is locked")."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for trial in range(3):
        url = f"sqlite:///{tmp_path / f'new-{trial}.db'}"
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_when_released, args=(url, barrier, results)) for _ in range(4)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
        assert outcomes == ["ok"] * 4
        db = open_db(url)
        assert current_revision(db.engine) == head_revision()
        db.close()


def test_opening_a_new_database_waits_for_another_connections_write_lock(tmp_path):
    """SQLite fails the switch to WAL at once (no busy wait) while another connection holds the
    write lock of a file not yet in WAL mode: a process creating the same database at that moment.
    Opening must wait for the lock, not fail with "database is locked"."""
    import sqlite3
    import threading

    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE scratch (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO scratch VALUES (1)")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        db = open_db(f"sqlite:///{path}")
    finally:
        release.join()
        other.close()
    assert current_revision(db.engine) == head_revision()
    db.close()


def test_migrations_compile_for_postgresql(capsys):
    """Offline mode renders the migrations as PostgreSQL DDL: nothing SQLite-only in them."""
    cfg = alembic_config("postgresql://user@localhost/echosearch")
    command.upgrade(cfg, "head", sql=True)
    ddl = capsys.readouterr().out
    assert "CREATE TABLE videos" in ddl and "AUTOINCREMENT" not in ddl
    for table in Base.metadata.tables:
        assert f"CREATE TABLE {table}" in ddl
    sql = str(
        Q.filter_select(Q.VideoFilter(views=["A4C"], labels=[Q.LabelCondition("ef", "<", 40)])).compile(
            dialect=postgresql.dialect()
        )
    )
    assert "lower(videos.view)" in sql


def test_round_trip(tmp_path, db_backend):
    db = open_db(tmp_path)
    with db.session() as s:
        st = Q.upsert_study(
            s, "1.2.3", accession_key="acc-hash", study_date=dt.date(2021, 5, 4), patient_key="p" * 64
        )
        v = Q.upsert_video(
            s, "/a/b.dcm", study_id=st.id, sop_uid="1.2.3.4", sha256="f" * 64, size=123456789012,
            mtime=1700000000.5, frames=120, fps=30.0, rows=480, cols=640, manufacturer="GE Healthcare",
            model="Vivid E95", view="A4C", status=STATUS_INDEXED, indexed_at=dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC),
            thumbnail_path="thumbs/1.jpg", preview_path="thumbs/1.webp",
        )  # fmt: skip
        Q.set_report(s, st.id, "Normal LV size.", "normal lv size.")
        sp = Q.upsert_space(s, "echoclip", model_name="echoclip", model_version="1", dim=512,
                            preprocessing={"size": 224, "mean": [0.5] * 3})  # fmt: skip
        Q.upsert_labels(s, sp.id, [(v.id, "ef", 55.5, None), (v.id, "view", None, "A4C")])
        run = Q.start_run(s, {"paths": ["/a"], "workers": 2})
        Q.finish_run(s, run.id, {"indexed": 1, "failed": 0})
        Q.record_failure(s, "/bad.dcm", "e" * 64, "not a DICOM", kind="NotAnImage")
        Q.audit(s, "search_text", {"q": "pacer", "k": 10}, who="dr.x")
        vid = v.id
    db.close()

    db = open_db(tmp_path)
    with db.session() as s:
        v = Q.video_by_path(s, "/a/b.dcm")
        assert v.id == vid and v.size == 123456789012 and v.mtime == 1700000000.5
        assert (v.frames, v.fps, v.rows, v.cols, v.view) == (120, 30.0, 480, 640, "A4C")
        assert v.indexed_at.replace(tzinfo=dt.UTC) == dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC)
        assert v.study.study_uid == "1.2.3" and v.study.study_date == dt.date(2021, 5, 4)
        assert v.study.patient.key == "p" * 64
        assert Q.find_study(s, "acc-hash").id == v.study_id
        assert v.study.reports[0].cleaned_text == "normal lv size."
        assert Q.labels_for(s, [vid]) == {vid: {"ef": 55.5, "view": "A4C"}}
        sp = Q.get_space(s, "echoclip")
        assert sp.preprocessing == {"size": 224, "mean": [0.5] * 3}
        assert Q.video_by_sop_uid(s, "1.2.3.4").id == vid
        assert Q.is_unchanged(s, "/a/b.dcm", 123456789012, 1700000000.5)
        assert not Q.is_unchanged(s, "/a/b.dcm", 123456789012, 1700000001.0)
        counts = Q.table_counts(s)
        assert counts["videos"] == 1 and counts["audit_log"] == 1 and counts["index_runs"] == 1
        # Upserts update in place rather than duplicating.
        Q.upsert_video(s, "/a/b.dcm", view="PLAX")
        Q.upsert_study(s, "1.2.3", description="TTE")
        Q.record_failure(s, "/bad.dcm", "e" * 64, "still not a DICOM", kind="NotAnImage")
        Q.upsert_labels(s, sp.id, [(vid, "ef", 35.0, None)])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Video)) == 1
        assert Q.video_by_path(s, "/a/b.dcm").view == "PLAX"
        f = Q.known_failure(s, "/bad.dcm", "e" * 64)
        assert f.count == 2 and f.reason == "still not a DICOM" and f.last_seen >= f.first_seen
        assert Q.known_failure(s, "/bad.dcm", "0" * 64) is None
        assert Q.labels_for(s, [vid])[vid]["ef"] == 35.0
        with pytest.raises(UsageError):
            Q.upsert_space(s, "echoclip", model_name="other", model_version="1", dim=512)
        with pytest.raises(UsageError):
            Q.upsert_video(s, "/a/b.dcm", colour="green")
    with db.session() as s:
        Q.mark_removed(s, [vid])
        assert Q.indexed_video_ids(s).size == 0
        Q.clear_failures(s, "/bad.dcm")
        assert s.scalar(select(func.count()).select_from(Failure)) == 0
    db.close()


def test_foreign_keys_enforced(db):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), db.session() as s:
        Q.upsert_video(s, "/x.dcm", study_id=999)


# ---------------------------------------------------------------- filters


@pytest.fixture
def archive(db):
    """A small archive with known attributes; expected filter results are computed from `rows`."""
    rng = np.random.default_rng(1)
    rows = []
    views, makers = ["A4C", "PLAX", "PSAX", "A2C"], ["GE Healthcare", "Philips", "Siemens"]
    with db.session() as s:
        sp = Q.upsert_space(s, "demo", model_name="demo", model_version="0", dim=8)
        for p in range(6):
            pkey = f"{p:064d}"
            for k in range(3):
                date = dt.date(2019 + k, 1 + p, 10)
                st = Q.upsert_study(s, f"1.2.{p}.{k}", study_date=date, patient_key=pkey)
                for c in range(4):
                    view, maker = views[(p + c) % 4], makers[(k + c) % 3]
                    ef, pacer = float(rng.uniform(15, 75)), float(rng.uniform(0, 1))
                    status = STATUS_INDEXED if c < 3 or p % 2 else "failed"
                    v = Q.upsert_video(s, f"/arch/{p}/{k}/{c}.dcm", study_id=st.id, view=view,
                                       manufacturer=maker, status=status)  # fmt: skip
                    Q.upsert_labels(s, sp.id, [(v.id, "ef", ef, None), (v.id, "pacemaker", pacer, None)])
                    rows.append(dict(id=v.id, patient=pkey, study=st.study_uid, date=date, view=view,
                                     maker=maker, ef=ef, pacer=pacer, indexed=status == STATUS_INDEXED))  # fmt: skip
    return db, rows


def _expect(rows, pred):
    return sorted(r["id"] for r in rows if r["indexed"] and pred(r))


@pytest.mark.parametrize(
    "filt, pred",
    [
        (
            Q.VideoFilter(date_from=dt.date(2020, 1, 1), date_to=dt.date(2020, 12, 31)),
            lambda r: r["date"].year == 2020,
        ),
        (Q.VideoFilter(date_from=dt.date(2020, 3, 10)), lambda r: r["date"] >= dt.date(2020, 3, 10)),
        (Q.VideoFilter(views=["a4c", "PLAX"]), lambda r: r["view"] in ("A4C", "PLAX")),
        (Q.VideoFilter(manufacturers=["ge"]), lambda r: r["maker"] == "GE Healthcare"),
        (Q.VideoFilter(labels=[Q.LabelCondition.parse("EF < 40")]), lambda r: r["ef"] < 40),
        (Q.VideoFilter(labels=[Q.LabelCondition.parse("pacemaker>0.5")]), lambda r: r["pacer"] > 0.5),
        (
            Q.VideoFilter(
                labels=[Q.LabelCondition.parse("ef>=30"), Q.LabelCondition.parse("ef <= 50")], views=["A4C"]
            ),
            lambda r: 30 <= r["ef"] <= 50 and r["view"] == "A4C",
        ),
        (Q.VideoFilter(patient_key=f"{3:064d}"), lambda r: r["patient"] == f"{3:064d}"),
        (Q.VideoFilter(study_uids=["1.2.2.1", "1.2.5.0"]), lambda r: r["study"] in ("1.2.2.1", "1.2.5.0")),
        (Q.VideoFilter(exclude_study_uids=["1.2.0.0"]), lambda r: r["study"] != "1.2.0.0"),
    ],
)
def test_filters(archive, filt, pred):
    db, rows = archive
    with db.session() as s:
        got = Q.filter_video_ids(s, filt)
    assert got.dtype == np.int64
    want = _expect(rows, pred)
    assert want, "the fixture should make every filter non-trivial"
    assert got.tolist() == want


def test_empty_filter_is_none_and_indexed_ids(archive):
    db, rows = archive
    with db.session() as s:
        assert Q.filter_video_ids(s, Q.VideoFilter()) is None
        assert Q.filter_video_ids(s, None) is None
        assert Q.indexed_video_ids(s).tolist() == _expect(rows, lambda r: True)
        excl = Q.filter_video_ids(s, Q.VideoFilter(exclude_video_ids=[rows[0]["id"]]))
        assert rows[0]["id"] not in excl and len(excl) == len(_expect(rows, lambda r: True)) - 1


@pytest.mark.parametrize("bad", ["ef", "ef ~ 3", "< 40", "ef < forty"])
def test_bad_label_condition(bad):
    with pytest.raises(UsageError):
        Q.LabelCondition.parse(bad)


# ---------------------------------------------------------------- concurrency


def test_concurrent_reader_sees_consistent_state(tmp_path, db_backend):
    """A reader with its own connection, while a writer commits study+5 videos per transaction,
    always sees whole transactions, and counts never go backwards. SQLite (WAL) gives a session one
    snapshot, so two statements agree; PostgreSQL runs at READ COMMITTED (see echosearch.store.db), where
    each statement sees whole committed transactions, so there the two counts are one statement."""
    url = db_backend or url_for_data_dir(tmp_path)
    writer = open_db(url)
    reader = open_db(url, migrate=False)
    n_tx, per = 120, 5
    done = threading.Event()
    errors: list[str] = []
    seen: list[int] = []

    def write() -> None:
        try:
            for i in range(n_tx):
                with writer.session() as s:
                    st = Q.upsert_study(s, f"9.{i}")
                    for j in range(per):
                        Q.upsert_video(s, f"/w/{i}/{j}.dcm", study_id=st.id, status=STATUS_INDEXED)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))
        finally:
            done.set()

    t = threading.Thread(target=write)
    t.start()
    last = 0
    while not done.is_set() or len(seen) < 3:
        with reader.session() as s:
            count_studies = select(func.count()).select_from(Study)
            count_videos = select(func.count()).select_from(Video)
            if db_backend is None:  # two separate statements in one read transaction
                n_studies, n_videos = s.scalar(count_studies), s.scalar(count_videos)
            else:
                n_studies, n_videos = s.execute(
                    select(count_studies.scalar_subquery(), count_videos.scalar_subquery())
                ).one()
        if n_videos != per * n_studies:
            errors.append(f"torn read: {n_studies} studies, {n_videos} videos")
        if n_studies < last:
            errors.append(f"went back from {last} to {n_studies}")
        last = n_studies
        seen.append(n_studies)
    t.join()
    assert not errors, errors[:3]
    with reader.session() as s:
        assert s.scalar(select(func.count()).select_from(Video)) == n_tx * per
    assert len(set(seen)) > 2, "the reader should have observed the writer in progress"
    writer.close()
    reader.close()
