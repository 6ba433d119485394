"""Small file helpers: replace a file atomically, and hash a file's bytes.

An atomic write goes to a temp file in the target's own folder (same file system, so the rename is
atomic), is fsynced, then renamed over the target with ``os.replace``: a reader, or the next run
after a crash, sees the old file or the new one, never half of one. A failed write leaves no temp
file behind.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The mode of a file only its owner may read (the data dir's key, site config, uploads).
PRIVATE = 0o600


@contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int = 0o666, fsync: bool = True) -> Iterator[Path]:
    """A temp path beside ``path`` for a writer that wants a file name (``torch.save``, FAISS, PIL).

    When the block ends without error the temp file is fsynced (unless ``fsync=False``, for files
    that are cheap to make again) and renamed over ``path``; on error it is removed. The temp file
    is created with ``mode`` less the umask, as ``open()`` would create ``path`` (pass
    :data:`PRIVATE` for 0600 from the first byte on).
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, *, mode: int = 0o666, fsync: bool = True
) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, mode=mode, fsync=fsync) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(
    path: str | os.PathLike, text: str, *, mode: int = 0o666, fsync: bool = True, encoding: str = "utf-8"
) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode, fsync=fsync)


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes as 64 hex characters, read in chunks (a large clip never sits whole in
    memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
