"""Indexing from a real Orthanc over DICOMweb (QIDO-RS + WADO-RS): the same index as from disk,
incremental reruns, a server that stops mid-run, wrong credentials, a corrupt instance."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pacs_server import PASSWORD, USER, Orthanc, skip_reason
from sqlalchemy import select

from echosearch.index import Space
from echosearch.indexer.dicomweb import DicomwebOptions, run_dicomweb_index
from echosearch.indexer.distributor import InlineDistributor
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.pacs.credentials import Credentials
from echosearch.pacs.dicomweb import SourceError
from echosearch.store.db import open_db
from echosearch.store.schema import STATUS_INDEXED, Failure, Label, Study, Video
from echosearch.synth import synthesize_archive

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

CREDS = Credentials(user=USER, password=PASSWORD)
TINY = dict(studies=(1, 1), clips_per_study=(2, 2), frames=(4, 6), formats=("dicom-explicit",))


def dicom_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.dcm"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pacs") / "archive"
    synthesize_archive(out, patients=2, **TINY)
    return out


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory, archive):
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    server.upload(dicom_files(archive))
    yield server
    server.stop()


def opts(data: Path, workers: int = 0) -> IndexOptions:
    return IndexOptions(
        paths=[], data_dir=str(data), model="echosearch-demo", workers=workers, progress=False
    )


def index_dicomweb(server: Orthanc, data: Path, workers: int = 0, distributor=None, **source):
    src = DicomwebOptions(url=server.dicomweb, credentials=source.pop("credentials", CREDS), **source)
    return run_dicomweb_index(opts(data, workers), src, distributor=distributor)


def by_sop(data: Path) -> dict[str, dict]:
    """Per SOP Instance UID: key, study, vector, labels (what the index says about each clip)."""
    db = open_db(data)
    space = Space.open(data, "echosearch-demo")
    index = space.load_index()
    try:
        with db.session() as s:
            rows = s.execute(
                select(Video.id, Video.sop_uid, Video.path, Study.study_uid, Video.frames, Video.view)
                .join(Study, Video.study_id == Study.id)
                .where(Video.status == STATUS_INDEXED)
            ).all()
            labels = {}
            for vid, task, value in s.execute(select(Label.video_id, Label.task, Label.value)):
                labels.setdefault(vid, {})[task] = value
        return {
            sop: dict(key=key, study=study, frames=frames, view=view, vector=index.reconstruct([vid])[0],
                      labels=labels.get(vid, {}))
            for vid, sop, key, study, frames, view in rows
        }  # fmt: skip
    finally:
        db.close()


def test_dicomweb_index_is_the_disk_index(tmp_path, archive, orthanc):
    disk = run_index(_with_paths(tmp_path / "disk", archive))
    web = index_dicomweb(orthanc, tmp_path / "web", workers=1, all=True)
    assert disk.new == web.new == 4 and web.failed == 0
    assert web.source["listed"] == web.source["fetched"] == 4
    a, b = by_sop(tmp_path / "disk"), by_sop(tmp_path / "web")
    assert a.keys() == b.keys()
    for sop, clip in b.items():
        assert clip["key"] == (
            f"{orthanc.dicomweb}/studies/{clip['study']}/series/"
            f"{clip['key'].split('/series/')[1].split('/')[0]}/instances/{sop}"
        )
        assert (clip["study"], clip["frames"], clip["view"]) == (
            a[sop]["study"],
            a[sop]["frames"],
            a[sop]["view"],
        )
        np.testing.assert_allclose(clip["vector"], a[sop]["vector"], atol=1e-5)
        assert clip["labels"].keys() == a[sop]["labels"].keys()
        for task, value in clip["labels"].items():
            assert value == pytest.approx(a[sop]["labels"][task], abs=1e-4)
    assert not list((tmp_path / "web" / "spool" / "dicomweb").rglob("*.dcm"))  # deleted after reading


def _with_paths(data: Path, archive: Path) -> IndexOptions:
    o = opts(data)
    o.paths = [str(archive)]
    return o


def new_study(folder: Path, seed: int, when: dt.date, patients: int = 1) -> list[Path]:
    """A study that has just arrived: synthetic clips dated ``when``."""
    synthesize_archive(folder, patients=patients, seed=seed, **TINY)
    files = dicom_files(folder)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
        ds.save_as(f)
    return files


def test_rerun_fetches_nothing_and_a_new_study_alone_is_fetched(tmp_path, orthanc):
    data = tmp_path / "data"
    first = index_dicomweb(orthanc, data)
    assert first.new == 4 and first.source["since"] is None
    again = index_dicomweb(orthanc, data)  # asks only for studies since the last run: none
    assert again.source["since"] == (dt.date.today() - dt.timedelta(days=1)).isoformat()
    assert again.source["fetched"] == again.new == 0
    everything = index_dicomweb(orthanc, data, all=True)  # every study listed, none fetched again
    assert everything.source["listed"] == 4 and everything.source["fetched"] == 0
    assert everything.unchanged == 4
    orthanc.upload(new_study(tmp_path / "new", seed=7, when=dt.date.today()))
    later = index_dicomweb(orthanc, data)
    assert later.source["listed"] == later.source["fetched"] == later.new == 2
    assert len(by_sop(data)) == 6


def test_orthanc_stopped_mid_run_is_a_clear_error_and_a_rerun_completes(tmp_path, archive):
    server = Orthanc(tmp_path / "orthanc").start()
    try:
        server.upload(dicom_files(archive))

        class StopsTheServer(InlineDistributor):
            """Yields the first result, then the PACS goes down."""

            def map_unordered(self, fn, jobs, cfg):
                for i, result in enumerate(super().map_unordered(fn, jobs, cfg)):
                    yield result
                    if i == 0:
                        server.stop()

        data = tmp_path / "data"
        with pytest.raises(SourceError, match=r"is not answering.*rerun"):
            index_dicomweb(server, data, all=True, distributor=StopsTheServer())
        db = open_db(data)
        with db.session() as s:
            assert s.scalar(select(Failure.id)) is None  # nothing held against the clips
        db.close()
        server.start()
        rerun = index_dicomweb(server, data, all=True)
        assert rerun.failed == 0 and rerun.new + rerun.unchanged == 4
        assert len(by_sop(data)) == 4
    finally:
        server.stop()


def test_a_corrupt_instance_is_recorded_and_the_run_goes_on(tmp_path, orthanc):
    files = new_study(tmp_path / "study", seed=11, when=dt.date(2015, 3, 1))
    ds = pydicom.dcmread(files[1])
    ds.NumberOfFrames = 500  # the header promises frames the pixel data does not hold
    ds.save_as(files[1])
    orthanc.upload(files)
    study = pydicom.dcmread(files[0]).StudyInstanceUID
    data = tmp_path / "data"
    summary = index_dicomweb(orthanc, data, studies=[study])
    assert summary.new == 1 and summary.failed == 1
    db = open_db(data)
    with db.session() as s:
        (failure,) = s.scalars(select(Failure)).all()
    db.close()
    assert failure.path.endswith(f"/instances/{ds.SOPInstanceUID}") and failure.reason
    rerun = index_dicomweb(orthanc, data, studies=[study])  # recorded: not fetched again
    assert rerun.skipped_failed == 1 and rerun.source["fetched"] == 0


def test_wrong_credentials_are_one_clear_line(tmp_path, orthanc, cli):
    env = dict(os.environ, ECHOSEARCH_DICOMWEB_USER=USER, ECHOSEARCH_DICOMWEB_PASSWORD="wrong-horse")
    r = cli("index", orthanc.dicomweb, "--data", str(tmp_path / "d"), "--model", "echosearch-demo", env=env)
    assert r.returncode == 1
    assert "refused the credentials (HTTP 401)" in r.stderr and "Traceback" not in r.stderr
    assert "wrong-horse" not in r.stderr + r.stdout


def test_a_pacs_clip_plays_in_the_cine_viewer_and_no_copy_of_it_stays(tmp_path, orthanc, monkeypatch):
    """A clip indexed from DICOMweb has no file here: the viewer's loop is made from the instance
    fetched back over WADO-RS (credentials from the environment, as for indexing), and only the masked
    loop is kept."""
    from echosearch.search import Engine

    data = tmp_path / "web"
    index_dicomweb(orthanc, data, all=True)
    monkeypatch.setenv("ECHOSEARCH_DICOMWEB_USER", USER)
    monkeypatch.setenv("ECHOSEARCH_DICOMWEB_PASSWORD", PASSWORD)
    with Engine.open(data) as engine:
        clips = by_sop(data)
        vid = engine.index.ids()[0]
        cine = engine.cine(int(vid))
        assert cine.path.is_file() and cine.frames in {c["frames"] for c in clips.values()}
        assert not list(data.rglob("*.dcm")) and not list((data / "cine").glob(".retrieve-*"))
        monkeypatch.setenv("ECHOSEARCH_DICOMWEB_PASSWORD", "wrong")  # made once: no second retrieval
        assert engine.cine(int(vid)) == cine
        with pytest.raises(Exception, match="cannot retrieve the clip from the PACS"):
            engine.cine(int(engine.index.ids()[1]))  # not made yet, and now the login is refused
