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
