"""Discovery: turn the paths a user gives into candidate clip files.

Folders are walked recursively (following symlinks, but each real folder once, so a symlink loop
cannot trap the walk); a DICOMDIR contributes the files it references; include/exclude globs are
matched against the file name and the path. Unreadable folders, dangling links and special files
(FIFOs, sockets, devices: opening a FIFO would block forever) are reported with a reason, never fatal.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from echosearch.video import formats

log = logging.getLogger(__name__)

SKIP_NAMES = {"DICOMDIR", "manifest.csv", "reports.csv"}


@dataclass(frozen=True)
class Candidate:
    """A file that may be a clip, with the stat facts used for incremental indexing."""

    path: Path
    size: int
    mtime_ns: int


@dataclass
class Discovery:
    """What the walk found, and what it could not look into."""

    candidates: list[Candidate] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


def looks_like_clip(path: Path) -> bool:
    """By suffix (one :mod:`echosearch.video.formats` reads), or for an extension-less file (common
    in PACS exports) by its magic bytes (a DICOM preamble, a video container's header)."""
    if path.suffix:
        return path.suffix.lower() in formats.clip_suffixes()
    try:
        head = formats.read_head(path)
    except OSError:
        return False
    return formats.sniff(head) is not None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device")):
        if test(mode):
            return name
    return "special file"


def _matches(path: Path, patterns: Iterable[str]) -> bool:
    text = path.as_posix()
    return any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(text, p) for p in patterns)


def _dicomdir_files(path: Path) -> Iterator[Path]:
    """Files referenced by a DICOMDIR (pydicom's FileSet resolves the relative IDs)."""
    from pydicom import dcmread
    from pydicom.fileset import FileSet

    try:
        fileset = FileSet(dcmread(path))
    except Exception as exc:  # a broken DICOMDIR should not stop the walk of the folder around it
        log.warning("cannot read DICOMDIR %s: %s", path, exc)
        return
    for instance in fileset:
        yield Path(instance.path)


def _walk(root: Path, result: Discovery) -> Iterator[Path]:
    seen_dirs: set[tuple[int, int]] = set()

    def on_error(err: OSError) -> None:
        result.unreadable.append((Path(err.filename or root), err.strerror or str(err)))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
        try:
            st = os.stat(dirpath)
        except OSError as exc:
            on_error(exc)
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:  # symlink loop or a folder linked twice
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.upper() == "DICOMDIR":
                yield from _dicomdir_files(path)
            elif name not in SKIP_NAMES:
                yield path


def discover(
    paths: Iterable[str | os.PathLike],
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> Discovery:
    """Find clip candidates under ``paths``; each real file appears once, in a stable order."""
    include, exclude = list(include), list(exclude)
    result = Discovery()
    seen_files: set[tuple[int, int]] = set()
    for given in paths:
        root = Path(given)
        if not root.exists():
            result.unreadable.append((root, "no such file or directory"))
            continue
        if root.is_dir():
            found: Iterable[Path] = _walk(root, result)
        elif root.name.upper() == "DICOMDIR":
            found = _dicomdir_files(root)
        else:
            found = [root]
        for path in found:
            if include and not _matches(path, include):
                continue
            if exclude and _matches(path, exclude):
                continue
            try:
                st = path.stat()
            except OSError as exc:
                why = "dangling symbolic link" if path.is_symlink() else (exc.strerror or str(exc))
                result.unreadable.append((path, why))
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_files:
                continue
            if not stat.S_ISREG(st.st_mode):  # a FIFO would block a reader forever; never open it
                if not stat.S_ISDIR(st.st_mode):
                    result.unreadable.append((path, f"not a regular file ({_kind(st.st_mode)})"))
                continue
            if not looks_like_clip(path):
                continue
            seen_files.add(key)
            result.candidates.append(Candidate(path.resolve(), st.st_size, st.st_mtime_ns))
    return result
