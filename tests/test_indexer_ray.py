"""The Ray engine (``index --engine ray``) on a local Ray cluster: the same clips, vectors and labels as the
local engine, an encoder actor killed mid-run loses no clip and writes none twice, and a driver killed
mid-run (kill -9) is finished by a rerun: every clip once, ``verify`` clean, no Ray process left."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from procs import cmdline, descendants, indexed_so_far, kill_9_once_committed, wait_gone
from sqlalchemy import func, select

from echosearch.index import Space
from echosearch.indexer.reconcile import verify_data_dir
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.store.db import open_db
from echosearch.store.schema import STATUS_INDEXED, Label, Video
from echosearch.synth import synthesize_archive

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'echosearch[ray]')")


@pytest.fixture(scope="module")
def ray_cluster():
    # logical CPUs (Ray does not pin them): two encoders of one thread each and a reader
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    # Ray's own processes (raylet, GCS, workers, ray::actors): not, say, the multiprocessing resource
    # tracker a local-engine run in this module started, which lives as long as pytest does
    others = descendants(os.getpid()) if sys.platform.startswith("linux") else set()
    cluster = {pid for pid in others if "ray" in cmdline(pid).lower()}
    ray.shutdown()
    left = wait_gone(cluster, 60)  # whatever the tests did, the cluster leaves no process behind
    assert not left, f"Ray processes outlived ray.shutdown(): {sorted(left)}"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray-archive") / "archive"
    synthesize_archive(
        out, patients=2, seed=11, studies=(1, 1), clips_per_study=(2, 2), frames=(4, 6),
        formats=("dicom-explicit",),
    )  # fmt: skip
    return out


def _opts(archive: Path, data: Path, bundle: Path, **kw) -> IndexOptions:
    base = dict(model=str(bundle), workers=0, frames="uniform:4", progress=False, commit_every=1)
    return IndexOptions([str(archive)], str(data), **{**base, **kw})


def _indexed(data: Path, space_name: str) -> dict[str, tuple[np.ndarray, dict]]:
    """path -> (clip vector, {task: (value, category)}) of every indexed clip."""
    index = Space.open(data, space_name).load_index()
    db = open_db(data)
    out = {}
    with db.session() as s:
        for v in s.scalars(select(Video).where(Video.status == STATUS_INDEXED)):
            labels = {
                lb.task: (lb.value, lb.category)
                for lb in s.scalars(select(Label).where(Label.video_id == v.id))
            }
            out[v.path] = (index.reconstruct([v.id])[0], labels)
    db.close()
    return out


def test_ray_engine_indexes_the_same_clips_vectors_and_labels_as_the_local_engine(
    tmp_path, archive, tiny_task_bundle, ray_cluster
):
    local = run_index(_opts(archive, tmp_path / "local", tiny_task_bundle))
    distributed = run_index(_opts(archive, tmp_path / "ray", tiny_task_bundle, engine="ray"))
    assert (distributed.new, distributed.failed, distributed.duplicates) == (local.new, 0, local.duplicates)
    # the summary says where the work ran: every clip read on some node, every new one embedded
    assert sum(distributed.nodes["read"].values()) == distributed.new + distributed.duplicates
    assert sum(distributed.nodes["embedded"].values()) == distributed.embedded == distributed.new
    assert local.nodes == {}
    a, b = _indexed(tmp_path / "local", local.space), _indexed(tmp_path / "ray", distributed.space)
    assert set(a) == set(b) and len(a) == local.new > 1
    for path, (vec, labels) in a.items():
        other_vec, other_labels = b[path]
        assert float(np.dot(vec, other_vec)) >= 0.999, path
        assert set(labels) == set(other_labels)
        for task, (value, category) in labels.items():
            assert other_labels[task][1] == category, (path, task)
            if value is not None and "." not in task:  # raw scores; derived 0/1 keys may sit on a threshold
                assert other_labels[task][0] == pytest.approx(value, abs=1e-2), (path, task)
    assert all(c.ok for c in verify_data_dir(tmp_path / "ray", open_db(tmp_path / "ray")))
    again = run_index(_opts(archive, tmp_path / "ray", tiny_task_bundle, engine="ray"))
    assert again.unchanged == local.new and again.embedded == 0  # incremental, like the local engine


def test_a_killed_encoder_actor_loses_no_clip_and_writes_none_twice(
    tmp_path, archive, tiny_task_bundle, ray_cluster, monkeypatch
):
    from echosearch.indexer import ray_engine

    kills: list[str] = []
    pools: list = []
    submit = ray_engine.RayEmbedding._submit_to

    def submit_then_kill(self, actor, reads):  # noqa: ANN001
        submit(self, actor, reads)
        pools.append(self)
        if not kills:  # the first batch's actor dies with the batch in flight
            ray.kill(actor)
            kills.append(reads[0].job.key)

    monkeypatch.setattr(ray_engine.RayEmbedding, "_submit_to", submit_then_kill)
    data = tmp_path / "data"
    summary = run_index(_opts(archive, data, tiny_task_bundle, engine="ray", encoders=2, batch_size=4))
    assert kills and pools[0].retried >= 1  # the killed actor's batch went to another actor
    n = summary.new
    assert summary.embedded == n and summary.failed == 0
    db = open_db(data)
    with db.session() as s:
        paths = s.scalars(select(Video.path).where(Video.status == STATUS_INDEXED)).all()
    assert len(paths) == len(set(paths)) == n and kills[0] in paths
    space = Space.open(data, summary.space)
    assert space.load_index().ntotal == n == len(space.frames())
    assert all(c.ok for c in verify_data_dir(data, db))
    db.close()


def _encoder_processes() -> set[int]:
    """This test's cluster's encoder actor processes (Ray titles them ``ray::_EncoderActor...``)."""
    out = set()
    for pid in descendants(os.getpid()):
        try:
            if b"_EncoderActor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.add(pid)
        except OSError:
            continue
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_driver_killed_mid_run_is_finished_by_a_rerun(tmp_path, tiny_task_bundle, ray_cluster, cli):
    """kill -9 of ``echosearch index --engine ray`` (the driver: the cluster lives on), rerun the same
    command on the same cluster: every clip indexed exactly once, ``verify`` exits 0, and the killed
    run's encoder actors do not outlive it."""
    src, data = tmp_path / "archive", tmp_path / "data"
    synthesize_archive(
        src, patients=4, seed=13, studies=(1, 1), clips_per_study=(3, 3), frames=(4, 6),
        formats=("dicom-explicit",),
    )  # fmt: skip
    clips = len(list(src.rglob("*.dcm")))
    cmd = [sys.executable, "-m", "echosearch", "index", str(src), "--data", str(data), "--model",
           str(tiny_task_bundle), "--frames", "uniform:4", "--commit-every", "1", "--batch-size", "4",
           "--engine", "ray", "--ray-address", ray_cluster]  # fmt: skip
    err = kill_9_once_committed(cmd, data / "echosearch.db", 2, 180, "the Ray driver")
    killed_at = indexed_so_far(data / "echosearch.db")
    assert 0 < killed_at < clips, (
        f"the kill should land mid-run ({killed_at}/{clips} indexed): {err[-2000:]!r}"
    )

    done = cli(*cmd[3:], "--json")
    assert done.returncode == 0, done.stderr
    rerun = json.loads(done.stdout)
    assert rerun["unchanged"] + rerun["new"] + rerun["updated"] == clips and rerun["failed"] == 0
    db = open_db(data)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Video)) == clips  # none written twice
        assert s.scalar(select(func.count()).where(Video.status == STATUS_INDEXED)) == clips
        paths = s.scalars(select(Video.path)).all()
    db.close()
    assert len(set(paths)) == clips
    space = Space.open(data, rerun["space"])
    assert space.load_index().ntotal == clips == len(space.frames())
    verified = cli("verify", "--data", str(data))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # Both drivers are gone: their encoder actors with them (Ray ends a dead driver's actors).
    assert not wait_gone(_encoder_processes(), 30), "encoder actors outlived their driver"
