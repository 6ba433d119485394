"""Shared fixtures: the reference EchoCLIP folder (skips where absent), a CLI runner, a video writer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED_ECHOCLIP = REPO.parent / "shared" / "echoclip"


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster for the session (see tests/pgcluster.py); skips where it cannot run."""
    from pgcluster import PgCluster, why_unavailable

    why = why_unavailable()
    if why:
        pytest.skip(f"PostgreSQL tests need a local server: {why}")
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_backend(request, monkeypatch) -> str | None:
    """Runs a test on each metadata backend: None for SQLite (the data dir's default), else the URL of a
    fresh PostgreSQL database, also set as $ECHOSEARCH_DB so that ``open_db(data_dir)``, the Engine,
    the indexer and CLI subprocesses all use it."""
    if request.param == "sqlite":
        monkeypatch.delenv("ECHOSEARCH_DB", raising=False)
        return None
    url = request.getfixturevalue("postgres").new_database()
    monkeypatch.setenv("ECHOSEARCH_DB", url)
    return url


@pytest.fixture(scope="session")
def echoclip_ref() -> Path:
    """The reference EchoCLIP files in ../shared/echoclip; tests using them skip where it is absent."""
    if not SHARED_ECHOCLIP.is_dir():
        pytest.skip(f"reference EchoCLIP files not found at {SHARED_ECHOCLIP}")
    return SHARED_ECHOCLIP


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m echosearch ARGS`` in a subprocess, as a user would, capturing output."""
    return subprocess.run(
        [sys.executable, "-m", "echosearch", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


@pytest.fixture
def cli():
    return run_cli


def write_test_video(
    path: Path, frames, codec: str = "mjpeg", pix_fmt: str = "yuvj420p", fps: int = 30
) -> Path:
    """Write ``frames`` (uint8 RGB ``[F,H,W,3]``) with PyAV; the container follows the file's suffix."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.options = {"qscale": "2"} if codec in ("mpeg4", "mjpeg") else {}
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture
def video_writer():
    """:func:`write_test_video`: ``video_writer(path, frames, codec, pix_fmt, fps=30) -> path``."""
    return write_test_video


#: A task file with one task of each kind (the label tests' example; ``example_tasks`` edits a copy).
EXAMPLE_TASKS = {
    "version": 1,
    "tasks": {
        "pacer": {
            "kind": "binary",
            "description": "pacemaker or ICD lead",
            "prompts": ["PACER LEAD IN RIGHT VENTRICLE. ", "PACER LEAD IN RIGHT ATRIUM. "],
            "threshold": 0.25,
        },
        "ef": {
            "kind": "regression",
            "unit": "%",
            "templates": ["EF IS <#>%. ", "LVEF <#>%. "],
            "range": [30, 40],
            "step": 5,
        },
        "lv_size": {
            "kind": "categorical",
            "classes": {"normal": ["NORMAL LV SIZE. "], "dilated": ["DILATED LV. ", "LARGE LV. "]},
        },
    },
}


@pytest.fixture
def task_file(tmp_path) -> Path:
    """:data:`EXAMPLE_TASKS` as a YAML task file."""
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(EXAMPLE_TASKS, sort_keys=False))
    return path


def example_tasks(task: str, **changes) -> dict:
    """A copy of :data:`EXAMPLE_TASKS` with keys of one task changed (``None`` removes a key)."""
    data = json.loads(json.dumps(EXAMPLE_TASKS))
    for key, value in changes.items():
        if value is None:
            data["tasks"][task].pop(key)
        else:
            data["tasks"][task][key] = value
    return data


TINY_TASKS = """
tasks:
  pacemaker:
    kind: binary
    prompts: ["ECHO DENSITY IN RIGHT VENTRICLE SUGGESTIVE OF PACER LEAD. "]
  ejection_fraction:
    kind: regression
    templates: ["LV EJECTION FRACTION IS <#>%. "]
    range: [20, 70]
  view:
    kind: categorical
    classes:
      A4C: ["APICAL FOUR CHAMBER VIEW. "]
      PLAX: ["PARASTERNAL LONG AXIS VIEW. "]
"""


@pytest.fixture(scope="session")
def tiny_task_bundle(tmp_path_factory) -> Path:
    """A tiny model bundle (EchoCLIP's shape at toy size, random weights) with zero-shot tasks
    (binary, regression, categorical "view") and a thresholds file (pacemaker: 0.0)."""
    import open_clip
    import torch

    from echosearch.models import Manifest, write_bundle
    from echosearch.models.arch import echoclip_preprocess_cfg, tiny_model_cfg

    root = tmp_path_factory.mktemp("tiny-bundle")
    (root / "tasks.yaml").write_text(TINY_TASKS)
    cfg = tiny_model_cfg(image_size=32)
    torch.manual_seed(0)  # the same random weights every session: a failure can be reproduced
    manifest = Manifest(
        name="tiny-test", version="1", tokenizer={"kind": "clip-bpe"}, tasks={"file": "tasks.yaml"}
    )
    write_bundle(
        root / "tiny-test",
        manifest,
        cfg,
        echoclip_preprocess_cfg(32),
        state_dict=open_clip.CLIP(**cfg).state_dict(),
        extra_files={"tasks.yaml": root / "tasks.yaml"},
        thresholds={"pacemaker": 0.0},
    )
    return root / "tiny-test"


def _demo_model_built() -> bool:
    """True when the echosearch-demo bundle is built (then the UI tests use it: labels mean something)."""
    from echosearch.models.registry import get_entry

    try:
        return (get_entry("echosearch-demo").bundle_dir / "manifest.json").is_file()
    except Exception:  # no registry entry: fall back to the tiny bundle
        return False


@pytest.fixture(scope="session")
def ui_archive(tmp_path_factory, tiny_task_bundle) -> dict:
    """A tiny synthetic archive indexed with the CLI (for the UI tests): its data dir, archive and model.

    3 patients, short clips and 8 frames per clip keep it to seconds of synthesis and indexing. The
    model is the demo model when built, else the tiny task bundle (random weights, real zero-shot tasks).
    """
    from echosearch.synth import synthesize_archive

    root = tmp_path_factory.mktemp("ui-archive")
    archive, data = root / "archive", root / "data"
    summary = synthesize_archive(
        archive, patients=3, seed=1, studies=(1, 2), clips_per_study=(2, 2), frames=(16, 20)
    )
    model = "echosearch-demo" if _demo_model_built() else str(tiny_task_bundle)
    done = run_cli(
        "index", str(archive), "--data", str(data), "--model", model,
        "--reports", str(summary.reports), "--workers", "0", "--frames", "uniform:8",
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"indexing the UI test archive failed: {done.stderr.strip()[-500:]}")
    return {"data": data, "archive": archive, "model": model, "summary": summary}
