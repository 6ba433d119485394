"""``echosearch listen`` receiving from a real Orthanc over DICOM: searchable within a bounded time,
nothing lost when killed between the acknowledgement and the indexing, other AEs refused, a
graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pacs_server import Orthanc, skip_reason
from sqlalchemy import select

from echosearch.store.db import open_db
from echosearch.store.schema import STATUS_INDEXED, Video
from echosearch.synth import synthesize_archive

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

SEARCHABLE_WITHIN = 180.0  # seconds, model load included, on a busy 2-core CI machine


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """An Orthanc holding two studies, with the listener's port as its "echosearch" destination."""
    root = tmp_path_factory.mktemp("listen")
    synthesize_archive(
        root / "archive", patients=2, studies=(1, 1), clips_per_study=(2, 2), frames=(4, 6),
        formats=("dicom-explicit",),
    )  # fmt: skip
    server = Orthanc(root / "orthanc").start()
    answers = server.upload(sorted((root / "archive").rglob("*.dcm")))
    server.studies = sorted({a["ParentStudy"] for a in answers})
    yield server
    server.stop()


def start_listener(data: Path, port: int, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "echosearch", "listen", "--data", str(data), "--port", str(port)]
    cmd += ["--model", "echosearch-demo", "--allow", "ORTHANC", *extra]
    log = open(data.parent / f"listen-{data.name}.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SEARCHABLE_WITHIN  # a loaded CI machine can take a minute to import
    while time.monotonic() < deadline:  # wait until it answers C-ECHO
        assert proc.poll() is None, (data.parent / f"listen-{data.name}.log").read_text()[-2000:]
        if echo(port):
            return proc
        time.sleep(0.3)
    proc.kill()
    log_text = (data.parent / f"listen-{data.name}.log").read_text()[-2000:]
    raise AssertionError(f"the listener did not answer C-ECHO within {SEARCHABLE_WITHIN} s: {log_text}")


def echo(port: int, calling: str = "ORTHANC") -> bool:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="ECHOSEARCH")
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


def indexed(data: Path) -> list[str]:
    if not (data / "echosearch.db").is_file():
        return []
    db = open_db(data)
    try:
        with db.session() as s:
            return list(s.scalars(select(Video.path).where(Video.status == STATUS_INDEXED)))
    finally:
        db.close()


def wait_indexed(data: Path, n: int, proc: subprocess.Popen) -> float:
    start = time.monotonic()
    while time.monotonic() - start < SEARCHABLE_WITHIN:
        assert proc.poll() is None, "the listener died"
        if len(indexed(data)) >= n:
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"not indexed within {SEARCHABLE_WITHIN} s: {indexed(data)}")


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def test_a_study_sent_by_orthanc_is_searchable_and_other_aes_are_refused(tmp_path, pacs, cli):
    data = tmp_path / "data"
    data.mkdir()
    proc = start_listener(data, pacs.listener_port, "--batch-wait", "0.5")
    try:
        assert not echo(pacs.listener_port, calling="INTRUDER")  # not on the allow-list
        pacs.store_to_listener(pacs.studies[0])
        wait_indexed(data, 2, proc)
        keys = indexed(data)
        assert all(k.startswith("dicom://ORTHANC/studies/") for k in keys)
        viewer = "https://pacs.example/ohif/viewer?StudyInstanceUIDs={study_uid}&SOP={sop_uid}"
        (data / "site.yaml").write_text(f"viewer:\n  url: '{viewer}'\n")
        r = cli("search", "normal left ventricular function", "--data", str(data), "--json")
        assert r.returncode == 0, r.stderr
        hits = json.loads(r.stdout)["results"]
        assert {hit["path"] for hit in hits} == set(keys)
        for hit in hits:  # every result opens in the site's viewer
            assert hit["viewer_url"] == viewer.format(study_uid=hit["study_uid"], sop_uid=hit["sop_uid"])
            assert hit["path"].endswith(f"/series/{hit['series_uid']}/instances/{hit['sop_uid']}")
        assert not list((data / "spool" / "received").rglob("*.dcm"))  # indexed, then removed
    finally:
        assert stop(proc) == 0  # SIGTERM: a graceful stop


def test_killed_after_acknowledging_before_indexing_loses_nothing(tmp_path, pacs):
    data = tmp_path / "data"
    data.mkdir()
    proc = start_listener(data, pacs.listener_port, "--batch-wait", "600")  # acknowledges, waits
    try:
        pacs.store_to_listener(pacs.studies[1])  # synchronous: every instance acknowledged
        spooled = list((data / "spool" / "received").rglob("*.dcm"))
        assert len(spooled) == 2 and indexed(data) == []
    finally:
        proc.kill()  # kill -9: no chance to index
        proc.wait()
    proc = start_listener(data, pacs.listener_port, "--batch-wait", "0")
    try:
        wait_indexed(data, 2, proc)
        sops = {p.stem for p in spooled}
        assert {k.rsplit("/", 1)[1] for k in indexed(data)} == sops
    finally:
        assert stop(proc) == 0
