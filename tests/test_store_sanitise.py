"""Hostile strings reach the database safely on both backends (echosearch/store/types.py).

DICOM headers are attacker-controlled (a fuzzed file), file names need not be UTF-8, and failure
reasons and queries quote both. PostgreSQL rejects NUL in text and enforces VARCHAR(n); no UTF-8
encoder takes a lone surrogate. Each used to fail a whole transaction: here a clip with NULs and
5,000-character values in its header is indexed with the rest of its batch, a file with a
non-UTF-8 name that cannot be read is recorded as a failure, and an over-long query is audited.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from echosearch.indexer.reconcile import verify_data_dir
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.search import Engine
from echosearch.store import queries as q
from echosearch.store.db import open_db
from echosearch.store.schema import STATUS_INDEXED, AuditLog, Failure, Report, Study, Video
from echosearch.store.types import KEY_DIGEST_CHARS, storable_json, storable_text
from echosearch.synth import synthesize_archive

# pydicom warns about each over-long or invalid value it reads: those values are the point here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The value length:UserWarning"),
    pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning"),
    pytest.mark.filterwarnings("ignore:The PN component length:UserWarning"),
]

LONG = 5000
#: A 5,000-character value with NULs inside and a lone surrogate (a non-UTF-8 byte, surrogateescaped).
HOSTILE = ("A\x00B" + "x" * LONG)[:LONG] + "\udcff\x00"


def _bad(value: str) -> bool:
    return "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)


# ---------------------------------------------------------------- the sanitiser itself


def test_storable_text_removes_nul_escapes_surrogates_and_cuts_to_length():
    assert storable_text("ok") == "ok"
    assert storable_text("a\x00b\x00") == "ab"
    assert storable_text("caf\udce9") == "caf\\xe9"  # the byte a surrogateescape surrogate stands for
    assert storable_text("x\ud800y") == "x\\ud800y"  # any other lone surrogate
    assert storable_text("é" * 10, 4) == "éééé"  # characters, not bytes
    storable_text(HOSTILE).encode("utf-8")  # encodes: no surrogate left


def test_a_long_key_keeps_a_digest_so_long_values_stay_distinct_and_findable():
    a, b = "1.2." + "3" * 300, "1.2." + "3" * 299 + "4"
    sa, sb = storable_text(a, 128, key=True), storable_text(b, 128, key=True)
    assert (
        len(sa) == len(sb) == 128 and sa != sb and sa[: 128 - KEY_DIGEST_CHARS] == a[: 128 - KEY_DIGEST_CHARS]
    )
    assert storable_text(a, 128, key=True) == sa  # the same value, the same stored key, every time
    assert storable_text("short", 128, key=True) == "short"


def test_storable_json_cleans_every_string_keys_included():
    doc = {"q\x00": ["a\x00", {"b": "\udcff"}], "n": 3, "none": None}
    assert storable_json(doc) == {"q": ["a", {"b": "\\xff"}], "n": 3, "none": None}


# ---------------------------------------------------------------- every writer, both backends


def test_hostile_strings_are_stored_by_every_writer_and_found_again(tmp_path, db_backend):
    db = open_db(tmp_path / "data")
    uid = "1.2.840." + "9" * LONG + "\x00"
    path = "/archive/" + "d" * LONG + "\udcff.dcm"
    with db.session() as s:
        study = q.upsert_study(s, uid, description=HOSTILE)
        video = q.upsert_video(
            s, path, sop_uid=uid, series_uid=uid, study_id=study.id, manufacturer=HOSTILE, model=HOSTILE,
            view=HOSTILE, status=STATUS_INDEXED,
        )  # fmt: skip
        q.set_report(s, study.id, HOSTILE, cleaned_text=HOSTILE)
        q.record_failure(s, path, None, "cannot read \x00\x00 " + HOSTILE, kind="Corrupt\x00File" + "k" * 100)
        q.audit(s, "search\x00" + "a" * 100, {"text": HOSTILE, HOSTILE: [HOSTILE]}, who="ui:" + HOSTILE)
        q.upsert_labels(
            s, q.upsert_space(s, "space\x00", model_name=HOSTILE, dim=4).id, [(video.id, "t", 1.0, HOSTILE)]
        )
        vid = video.id
    with db.session() as s:  # a fresh session: what the database holds, not the objects written
        v = s.get(Video, vid)
        for col in Video.__table__.columns:
            value = getattr(v, col.key)
            if isinstance(value, str):
                assert not _bad(value) and len(value) <= col.type.length, col.key
        assert v.manufacturer.startswith("AB") and len(v.manufacturer) == 128
        # Lookups with the raw value (bound through the same column type) find the rows.
        assert q.video_by_path(s, path).id == vid and q.video_by_sop_uid(s, uid).id == vid
        assert q.find_study(s, uid).id == v.study_id
        failure = q.known_failure(s, path, None)
        assert (
            failure is not None and failure.reason.startswith("cannot read  AB") and not _bad(failure.reason)
        )
        report = s.scalars(select(Report)).one().text  # Text: nothing cut, NULs gone, the byte escaped
        assert len(report) == LONG - 1 + len("\\xff") and report.endswith("x\\xff")
        entry = s.scalars(select(AuditLog)).one()
        assert not _bad(entry.who + entry.action + repr(entry.query))
    with db.session() as s:  # the same failure again: found and counted, not a second row
        q.record_failure(s, path, None, "again\x00")
    with db.session() as s:
        assert [f.count for f in s.scalars(select(Failure))] == [2]
    db.close()


def test_long_label_names_stay_apart_and_are_overwritten_not_added(tmp_path, db_backend):
    """Derived names of a long task ("TASK.positive", "TASK.probability") share their first 64
    characters: cut plainly they would collide on (video, space, task); labelled again, they must
    update their rows."""
    db = open_db(tmp_path / "data")
    task = "t" * 70
    for value in (0.25, 0.75):  # index, then relabel
        with db.session() as s:
            vid = q.upsert_video(s, "/a.dcm", status=STATUS_INDEXED).id
            space = q.upsert_space(s, "sp", model_name="m", dim=4).id
            q.upsert_labels(
                s, space, [(vid, f"{task}.positive", value, None), (vid, f"{task}.probability", value, None)]
            )
    with db.session() as s:
        stored = q.labels_for(s, [vid])[vid]
    assert len(stored) == 2 and set(stored.values()) == {0.75}
    db.close()


# ---------------------------------------------------------------- the indexer and the audit log


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "archive"
    synthesize_archive(
        out, patients=2, seed=5, studies=(1, 1), clips_per_study=(2, 2), frames=(4, 5),
        formats=("dicom-explicit",),
    )  # fmt: skip
    return out


def _make_hostile(dcm: Path) -> str:
    """Rewrite ``dcm`` with NULs and 5,000-character values in many header fields; its SOP UID as read."""
    ds = pydicom.dcmread(dcm)
    for keyword in (
        "PatientName", "PatientID", "AccessionNumber", "StudyDescription", "SeriesDescription",
        "Manufacturer", "ManufacturerModelName", "InstitutionName", "ReferringPhysicianName",
    ):  # fmt: skip
        setattr(ds, keyword, HOSTILE.replace("\udcff", "\xff"))  # a header holds characters, not surrogates
    ds.SOPInstanceUID = "1.2.3." + "4" * LONG + "\x005"
    ds.SeriesInstanceUID = "1.2.3." + "6" * LONG
    with warnings.catch_warnings():  # pydicom warns about the values it writes: that is the point
        warnings.simplefilter("ignore")
        ds.save_as(dcm, enforce_file_format=False)
        return str(pydicom.dcmread(dcm, stop_before_pixels=True).SOPInstanceUID).strip()


def _opts(src: Path, data: Path, bundle: Path) -> IndexOptions:
    # one commit for the whole archive: the hostile clip shares its transaction with every other clip
    return IndexOptions(
        [str(src)],
        str(data),
        model=str(bundle),
        workers=0,
        frames="uniform:4",
        progress=False,
        commit_every=100,
    )


def test_a_hostile_dicom_is_indexed_with_the_rest_of_its_batch(
    tmp_path, small_archive, tiny_task_bundle, db_backend
):
    src, data = tmp_path / "src", tmp_path / "data"
    shutil.copytree(small_archive, src)
    dcms = sorted(src.rglob("*.dcm"))
    hostile_sop = _make_hostile(dcms[0])
    # A file that cannot be read, named in bytes that are not UTF-8: its failure reason quotes the name.
    broken = Path(os.fsdecode(os.fsencode(src) + b"/broken-\xff\xfe.dcm"))
    broken.write_bytes(dcms[1].read_bytes()[:600])

    summary = run_index(_opts(src, data, tiny_task_bundle))
    assert summary.new == len(dcms) and summary.failed == 1
    db = open_db(data)
    with db.session() as s:
        assert len(s.scalars(select(Video).where(Video.status == STATUS_INDEXED)).all()) == len(dcms)
        odd = q.video_by_sop_uid(s, hostile_sop)
        assert odd is not None and odd.status == STATUS_INDEXED
        assert odd.manufacturer.startswith("AB") and len(odd.manufacturer) == 128 and not _bad(odd.model)
        assert len(odd.sop_uid) == 128 and len(s.scalars(select(Study)).all()) == 2
        failure = s.scalars(select(Failure)).one()
        assert failure.path.endswith("broken-\\xff\\xfe.dcm") and not _bad(failure.reason)
    assert all(c.ok for c in verify_data_dir(data, db))
    db.close()

    # Another file with the same over-long SOP UID (other content) is the same instance: a duplicate,
    # though the database holds the UID cut to its column (the dedupe compares the stored form).
    twin = src / "twin.dcm"
    shutil.copy(dcms[0], twin)
    ds = pydicom.dcmread(twin)
    ds.StudyDescription = "ANOTHER COPY"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(twin, enforce_file_format=False)
    again = run_index(_opts(src, data, tiny_task_bundle))  # incremental as ever: nothing else read again
    assert (again.unchanged, again.new, again.duplicates, again.skipped_failed) == (len(dcms), 0, 1, 1)


def test_an_overlong_query_with_nuls_is_audited(tmp_path, small_archive, tiny_task_bundle, db_backend):
    data = tmp_path / "data"
    run_index(_opts(small_archive, data, tiny_task_bundle))
    with Engine.open(data) as engine:
        engine.who = "api:" + HOSTILE
        result = engine.search_text("PACER\x00 LEAD " + HOSTILE, k=3, literal=True)
        assert result.results
        with engine.db.session() as s:
            entry = s.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert entry is not None and entry.action == "search_text"
    assert entry.who.startswith("api:AB") and len(entry.who) == 128
    assert not _bad(entry.who + repr(entry.query)) and "PACER LEAD" in repr(entry.query)
