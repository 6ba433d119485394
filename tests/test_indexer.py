"""The bulk indexer end to end on real files: a synthetic archive mixed with pydicom's ultrasound files,
a duplicate copy and corrupt files; incremental reruns, changed/touched/deleted files, verify/repair.

The model is a tiny bundle (ConvNeXt-Atto-sized EchoCLIP shape, random weights) written in the test,
with its own zero-shot tasks and a thresholds file, so labels go through the real bundle path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from sqlalchemy import func, select

from echosearch.index import Space, report_space_name
from echosearch.indexer.reconcile import verify_data_dir
from echosearch.indexer.runner import IndexOptions, Runner, run_index
from echosearch.labels.encoding import positive_key
from echosearch.sources import SourceRoots
from echosearch.store.db import open_db
from echosearch.store.schema import (
    STATUS_INDEXED,
    STATUS_REMOVED,
    Failure,
    Patient,
    Report,
    Study,
    Video,
)
from echosearch.synth import synthesize_archive
from echosearch.synth.archive import read_manifest
from echosearch.video import ClipReadError
from echosearch.video import errors as video_errors

US_FILES = ("US1_UNCR.dcm", "color3d_jpeg_baseline.dcm", "OBXXXX1A.dcm")
TASK_NAMES = {"pacemaker", positive_key("pacemaker"), "ejection_fraction", "view"}


@pytest.fixture(scope="module")
def tiny_bundle(tiny_task_bundle) -> Path:
    return tiny_task_bundle


@pytest.fixture(scope="module")
def synth_archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "archive"
    synthesize_archive(out, patients=2, seed=7, frames=(6, 8))
    return out


def _opts(paths, data, bundle, **kw) -> IndexOptions:
    base = dict(model=str(bundle), workers=0, frames="uniform:4", progress=False, commit_every=4)
    base.update(kw)
    return IndexOptions(paths=[str(p) for p in paths], data_dir=str(data), **base)


def _build_mixed(root: Path, synth: Path) -> dict:
    """Synthetic clips + pydicom US files + a duplicate copy + three corrupt files; the expected counts."""
    shutil.copytree(synth, root / "synth")
    (root / "pydicom").mkdir()
    for name in US_FILES:
        shutil.copy(pydicom.data.get_testdata_file(name), root / "pydicom" / name)
    first_dcm = sorted((root / "synth").rglob("*.dcm"))[0]
    shutil.copy(first_dcm, root / "copy-of-first.dcm")
    (root / "bad").mkdir()
    (root / "bad" / "truncated.dcm").write_bytes(first_dcm.read_bytes()[:600])
    (root / "bad" / "garbage.avi").write_bytes(os.urandom(2048))
    (root / "bad" / "empty.mp4").write_bytes(b"")
    sops = [pydicom.dcmread(root / "pydicom" / n, stop_before_pixels=True).SOPInstanceUID for n in US_FILES]
    assert len(set(sops)) == len(US_FILES)  # distinct instances, so each must be indexed
    synth_rows = read_manifest(root / "synth")
    clips = len(synth_rows) + len(US_FILES)
    copy_sha = hashlib.sha256(first_dcm.read_bytes()).hexdigest()
    return {
        "copy_sha": copy_sha,
        "found": clips + 1 + 3,
        "indexed": clips,
        "duplicates": 1,
        "failed": 3,
        "studies": synth_rows,
    }


def _counts(data: Path) -> dict:
    db = open_db(data)
    with db.session() as s:
        out = {
            "indexed": s.scalar(
                select(func.count()).select_from(Video).where(Video.status == STATUS_INDEXED)
            ),
            "removed": s.scalar(
                select(func.count()).select_from(Video).where(Video.status == STATUS_REMOVED)
            ),
            "videos": s.scalar(select(func.count()).select_from(Video)),
        }
    db.close()
    return out


def test_index_mixed_archive_counts_labels_thumbnails_and_rerun(
    tmp_path, synth_archive, tiny_bundle, db_backend
):
    src, data = tmp_path / "src", tmp_path / "data"
    src.mkdir()
    expect = _build_mixed(src, synth_archive)
    reports_csv = src / "synth" / "reports.csv"
    summary = run_index(_opts([src], data, tiny_bundle, reports=str(reports_csv)))

    assert summary.found == expect["found"]
    assert summary.new == expect["indexed"] and summary.unchanged == 0
    assert summary.duplicates == expect["duplicates"]
    assert summary.failed == expect["failed"] == sum(summary.failed_by_reason.values())
    for reason in summary.failed_by_reason:  # every reason is one of the reader's named errors
        assert issubclass(getattr(video_errors, reason), ClipReadError)
    assert summary.embedded == expect["indexed"] and summary.frames > 0

    db = open_db(data)
    with db.session() as s:
        videos = s.scalars(select(Video).where(Video.status == STATUS_INDEXED)).all()
        assert len(videos) == expect["indexed"]
        twins = [v for v in videos if v.sha256 == expect["copy_sha"]]
        assert len(twins) == 1  # the copy and its original: indexed once, under whichever came first
        for v in videos:
            assert (data / v.thumbnail_path).is_file() and (data / v.preview_path).is_file()
            labels = {lb.task: lb for lb in v.labels}
            assert set(labels) == TASK_NAMES
            assert labels["view"].category in ("A4C", "PLAX") and v.view == labels["view"].category
            assert 20 <= labels["ejection_fraction"].value <= 70
            assert labels[positive_key("pacemaker")].value == float(labels["pacemaker"].value >= 0.0)
        failures = s.scalars(select(Failure)).all()
        assert {Path(f.path).name for f in failures} == {"truncated.dcm", "garbage.avi", "empty.mp4"}
        synth_studies = {r["study_uid"] for r in expect["studies"]}
        studies = set(s.scalars(select(Study.study_uid)).all())
        assert synth_studies <= studies
        keys = s.scalars(select(Patient.key)).all()
        assert keys and all(len(k) == 64 and "SYN" not in k for k in keys)  # keyed hashes only
        assert s.scalar(select(func.count()).select_from(Report)) == len(synth_studies)
    db.close()
    space = Space.open(data, summary.space)
    assert space.load_index().ntotal == expect["indexed"] == len(space.frames())
    assert Space.open(data, report_space_name(summary.space)).load_index().ntotal == len(synth_studies)
    assert all(c.ok for c in verify_data_dir(data, open_db(data)))

    # Second run: nothing to embed, the model is not even loaded; known failures are skipped.
    runner = Runner(_opts([src], data, tiny_bundle, reports=str(reports_csv)))
    again = runner.run()
    assert not runner.model_loaded and again.embedded == 0
    assert again.unchanged == expect["indexed"]
    assert again.skipped_failed == expect["failed"] and again.failed == 0
    assert again.duplicates == expect["duplicates"]
    assert again.reports["embedded"] == 0

    # --retry-failed reads them again (and they fail again, for the same reasons).
    retried = run_index(_opts([src], data, tiny_bundle, retry_failed=True))
    assert retried.failed == expect["failed"] and retried.failed_by_reason == summary.failed_by_reason


def test_changed_touched_and_deleted_files(tmp_path, synth_archive, tiny_bundle, db_backend):
    src, data = tmp_path / "src", tmp_path / "data"
    shutil.copytree(synth_archive, src)
    first = run_index(_opts([src], data, tiny_bundle))
    total = first.new
    dcms = sorted(src.rglob("*.dcm"))
    changed, touched, deleted = dcms[0], dcms[1], dcms[2]
    db = open_db(data)
    key = SourceRoots.load(db).key_for(changed)  # its path below the registered source root
    assert key.startswith("root:") and str(src) not in key
    with db.session() as s:
        old = s.scalar(select(Video).where(Video.path == key))
    old_id, old_sha = old.id, old.sha256

    ds = pydicom.dcmread(changed)
    ds.SeriesDescription = "EDITED"
    ds.save_as(changed)
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    deleted.unlink()

    second = run_index(_opts([src], data, tiny_bundle))
    assert (second.updated, second.touched, second.missing, second.pruned) == (1, 1, 1, 0)
    assert second.unchanged == total - 3 and second.embedded == 1
    with db.session() as s:
        new = s.scalar(select(Video).where(Video.path == key))
        assert new.id == old_id and new.sha256 != old_sha
    space = Space.open(data, second.space)
    assert space.load_index().ntotal == total  # replaced in place; the deleted one stays until --prune

    third = run_index(_opts([src], data, tiny_bundle, prune=True))
    assert third.pruned == 1 and third.embedded == 0
    assert _counts(data) == {"indexed": total - 1, "removed": 1, "videos": total}
    assert space.load_index().ntotal == total - 1 == len(space.frames())
    assert all(c.ok for c in verify_data_dir(data, db))
    db.close()


def test_verify_catches_and_repairs_a_removed_vector(tmp_path, synth_archive, tiny_bundle, cli, db_backend):
    data = tmp_path / "data"
    summary = run_index(_opts([synth_archive], data, tiny_bundle))
    space = Space.open(data, summary.space)
    index = space.load_index()
    victim = int(index.ids()[1])
    original = index.reconstruct([victim])[0]
    index.remove([victim])
    space.save_index(index)

    broken = cli("verify", "--data", str(data))
    assert broken.returncode == 1 and "missing in index: 1" in broken.stdout
    assert "Traceback" not in broken.stderr and len(broken.stderr.strip().splitlines()) == 1
    [check] = [c for c in verify_data_dir(data, open_db(data), repair=True) if c.kind == "video"]
    assert check.missing_in_index == [victim] and check.repaired["vectors_rebuilt"] == 1
    assert all(c.ok for c in verify_data_dir(data, open_db(data)))
    rebuilt = space.load_index().reconstruct([victim])[0]
    assert float(np.dot(rebuilt, original)) > 0.999  # rebuilt from float16 frames: same vector


SITE_TASKS = """
tasks:
  pacemaker:
    kind: binary
    prompts: ["A PACEMAKER LEAD IS SEEN IN THE RIGHT VENTRICLE. "]
  mitraclip:
    kind: binary
    prompts: ["A MITRACLIP DEVICE IS ATTACHED TO THE MITRAL LEAFLETS. "]
"""


def test_site_tasks_and_thresholds_label_the_index_and_new_clips_alike(tmp_path, synth_archive, tiny_bundle):
    """`index --tasks --thresholds`: stored labels follow the site's file, the reworded pacemaker task
    drops the bundle's threshold, and labels computed later for a new clip use the same tasks."""
    from echosearch.search import Engine

    tasks, thresholds, data = tmp_path / "site.yaml", tmp_path / "site-thresholds.json", tmp_path / "data"
    tasks.write_text(SITE_TASKS)
    thresholds.write_text('{"mitraclip": -1.0}')
    summary = run_index(
        _opts([synth_archive], data, tiny_bundle, tasks=str(tasks), thresholds=str(thresholds))
    )
    assert summary.embedded > 0
    expected = {"pacemaker", "mitraclip", positive_key("mitraclip")}
    db = open_db(data)
    with db.session() as s:
        for v in s.scalars(select(Video).where(Video.status == STATUS_INDEXED)).all():
            labels = {lb.task: lb.value for lb in v.labels}
            assert set(labels) == expected and labels[positive_key("mitraclip")] == 1.0
    db.close()
    tasks_kept, thresholds_kept = Space.open(data, summary.space).recorded_tasks()
    assert [t.name for t in tasks_kept] == ["pacemaker", "mitraclip"] and thresholds_kept == {
        "mitraclip": -1.0
    }

    other = tmp_path / "other"
    synthesize_archive(other, patients=1, seed=8, frames=(6, 8))
    new_clip = next(p for p in sorted(other.rglob("*")) if p.suffix in (".dcm", ".avi", ".mp4"))
    with Engine.open(data) as engine:
        assert set(engine.clip_labels(new_clip)) == expected


def test_relabel_recomputes_labels_from_the_frame_store(tmp_path, synth_archive, tiny_bundle, cli):
    """Relabelling with a site's tasks gives the labels indexing with them gives (up to the float16
    frame store), without reading a video; relabelling with the model's own tasks restores them."""
    from echosearch.indexer.relabel import relabel
    from echosearch.search import Engine

    tasks, thresholds = tmp_path / "site.yaml", tmp_path / "site-thresholds.json"
    tasks.write_text(SITE_TASKS)
    thresholds.write_text('{"mitraclip": -1.0}')
    direct, later = tmp_path / "direct", tmp_path / "later"
    run_index(_opts([synth_archive], direct, tiny_bundle, tasks=str(tasks), thresholds=str(thresholds)))
    run_index(_opts([synth_archive], later, tiny_bundle))

    def labels(data: Path) -> dict[str, dict[str, float]]:
        db = open_db(data)
        with db.session() as s:
            videos = s.scalars(select(Video).where(Video.status == STATUS_INDEXED)).all()
            out = {v.path: {lb.task: lb.value for lb in v.labels} for v in videos}
        db.close()
        return out

    before = labels(later)
    assert all(set(v) == TASK_NAMES for v in before.values())
    with Engine.open(later) as engine:
        summary = relabel(engine.db, engine.space, engine.encoder, tasks, thresholds)
    assert summary.clips == len(before) and summary.tasks == ["pacemaker", "mitraclip"]
    expected, got = labels(direct), labels(later)
    assert got.keys() == expected.keys()
    for path, values in got.items():
        assert values.keys() == expected[path].keys()
        for task, value in values.items():
            assert value == pytest.approx(expected[path][task], abs=2e-3), (path, task)

    res = cli("relabel", "--data", str(later), "--json")  # the model's own tasks again
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["clips"] == len(before)
    restored = labels(later)
    for path, values in restored.items():  # (random weights: EF and view may flip on float16 noise)
        assert values.keys() == before[path].keys()
        assert values["pacemaker"] == pytest.approx(before[path]["pacemaker"], abs=2e-3)
    res = cli("relabel", "--data", str(tmp_path / "nothing"))
    assert res.returncode == 1 and "no echosearch index" in res.stderr and "Traceback" not in res.stderr


def test_rerun_with_other_tasks_relabels_the_clips_indexed_before(tmp_path, synth_archive, tiny_bundle):
    tasks = tmp_path / "site.yaml"
    tasks.write_text(SITE_TASKS)
    data = tmp_path / "data"
    first = run_index(_opts([synth_archive], data, tiny_bundle))
    runner = Runner(_opts([synth_archive], data, tiny_bundle, tasks=str(tasks)))
    second = runner.run()
    assert second.embedded == 0 and second.relabelled == first.embedded
    assert any("relabelled" in line for line in second.lines())
    db = open_db(data)
    with db.session() as s:
        for v in s.scalars(select(Video).where(Video.status == STATUS_INDEXED)).all():
            assert {lb.task for lb in v.labels} == {"pacemaker", "mitraclip"}  # the bundle's 0.0 threshold
    db.close()  # is not carried to the reworded pacemaker task, and no clip keeps old labels
    runner = Runner(_opts([synth_archive], data, tiny_bundle, tasks=str(tasks)))
    third = runner.run()  # same tasks again: nothing to redo, the model is not even loaded
    assert third.relabelled == 0 and not runner.model_loaded
