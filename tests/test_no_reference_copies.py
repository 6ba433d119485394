"""No file of ../shared/echoclip (the reference EchoCLIP files) is shipped in the repository."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_tracked_file_is_a_copy_of_a_reference_file(echoclip_ref):
    reference = {_sha256(p): p.name for p in echoclip_ref.iterdir() if p.is_file()}
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    copies = [f for f in tracked if f and (REPO / f).is_file() and _sha256(REPO / f) in reference]
    assert copies == [], f"copies of ../shared/echoclip files are tracked: {copies}"
