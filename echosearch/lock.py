"""One writer at a time per data dir: ``index``, ``relabel`` and ``verify --repair`` take
``<data>/writer.lock``.

Two index runs at once doubled frame shards and left clips committed in the database but missing
from FAISS: each writer keeps FAISS and the frame map in memory and saves them whole. The lock is
an ``flock`` on the file, so the kernel drops it when the holder dies (even by kill -9) and no
stale lock is ever left to clean up by hand; the file's text (pid, host, command, start time) is
only there to name the holder in the refusal. Readers (search, the UI, the API) never take it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

from echosearch.errors import EchosearchError
from echosearch.paths import make_private_dir

LOCK_FILE = "writer.lock"


class DataDirBusy(EchosearchError):
    """Another process is writing to the data dir."""


def running_command() -> str:
    """``echosearch SUBCOMMAND`` of this process, without its arguments: they name archive folders
    (often by MRN or accession) and the lock file sits in the data dir, readable while the run lasts."""
    sub = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    return f"echosearch {sub}".strip()


class WriterLock:
    """``with WriterLock(data_dir, "index"):`` hold the data dir's writer lock, or raise
    :class:`DataDirBusy` naming the holder (pid, host, command, since when) at once."""

    def __init__(self, data_dir: str | os.PathLike, command: str | None = None) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self.command = command or running_command()
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        make_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise DataDirBusy(
                f"{self.path.parent} is being written by another echosearch process ({holder}); "
                "wait for it to finish (one writer at a time: index, relabel, verify --repair)"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command[:300],
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(raw: bytes) -> str:
    try:
        info = json.loads(raw.decode("utf-8"))
        return f"pid {info['pid']} on {info['host']}, `{info['command']}`, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
