"""Shared fixtures: the reference EchoCLIP folder (skips where absent) and a CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_ECHOCLIP = REPO.parent / "shared" / "echoclip"


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

    from echosearch.models import Manifest, write_bundle
    from echosearch.models.arch import echoclip_preprocess_cfg, tiny_model_cfg

    root = tmp_path_factory.mktemp("tiny-bundle")
    (root / "tasks.yaml").write_text(TINY_TASKS)
    cfg = tiny_model_cfg(image_size=32)
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
