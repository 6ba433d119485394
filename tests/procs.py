"""Processes seen through /proc, for the tests that kill a run and check nothing outlives it."""

from __future__ import annotations

import time
from pathlib import Path


def _stats() -> dict[int, list[str]]:
    """``{pid: the fields of /proc/PID/stat after the command name}`` of every process."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            out[int(stat.parent.name)] = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
    return out


def children(pid: int) -> list[int]:
    """Live (not zombie) direct children of ``pid``."""
    return [p for p, fields in _stats().items() if int(fields[1]) == pid and fields[0] != "Z"]


def descendants(root: int) -> set[int]:
    """Live processes anywhere under ``root``."""
    parents = {p: int(fields[1]) for p, fields in _stats().items() if fields[0] != "Z"}
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wait_gone(pids: set[int], seconds: float) -> set[int]:
    """Wait up to ``seconds`` for ``pids`` to end; those still alive."""
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {p for p in pids if alive(p)}


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def indexed_so_far(db_path) -> int:  # noqa: ANN001
    """Clips a running indexer has committed to its SQLite database (0 before it exists)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM videos WHERE status = 'indexed'").fetchone()[0]
    except sqlite3.Error:
        return 0


def kill_9_once_committed(cmd: list[str], db_path, at_least: int, seconds: float, what: str) -> str:  # noqa: ANN001
    """Start ``cmd`` in its own session, kill -9 it and all it started once ``at_least`` clips are
    committed (or it ended by itself); its stderr."""
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + seconds
    try:
        while indexed_so_far(db_path) < at_least and proc.poll() is None:
            assert time.monotonic() < deadline, f"{what} made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and what it started, no clean-up
        _, err = proc.communicate()
    return err
