"""Exact clip vectors on disk, beside a compressed index, for re-ranking and rebuilding.

An IVF index with SQ8 or PQ codes keeps 1-16x less than the float32 vectors, so a 10M-clip archive
fits a memory budget; its approximate scores are then corrected by re-ranking the best candidates
with the exact vectors, and it is rebuilt (retrained, recompressed) from them. Those vectors live in
two files next to ``index.faiss``, memory-mapped, so only the rows a query touches are read:

* ``index.vectors.f16`` — raw float16 rows [N, D] (half the size of float32; cosine scores of unit
  vectors change by ~1e-3, far below the gaps that re-ranking has to decide);
* ``index.vectors.ids`` — raw int64 [N], the id of each row.

Both are append-only: a replaced vector gets a new row and the last row of an id is the live one,
so saving after a batch of 64 clips appends 64 rows instead of rewriting gigabytes. Rows of removed
ids stay as garbage until :meth:`VectorFile.write` compacts (``echosearch reindex``). The vectors are
appended *before* the index file is replaced, so an index on disk never names an id without a row; a
crash mid-append leaves a torn tail that opening ignores (rows = the shorter of the two files).
"""

from __future__ import annotations

import mmap
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from echosearch.errors import EchosearchError

VEC_SUFFIX = ".vectors.f16"
#: Rows gathered from the file between two releases of its pages (peak: ~64 KiB mapped per row).
GATHER_ROWS = 2048
IDS_SUFFIX = ".vectors.ids"


class VectorFileError(EchosearchError):
    """The exact-vector files of a compressed index are missing, torn or lack an id."""


def vector_paths(index_path: str | os.PathLike) -> tuple[Path, Path]:
    """The two sidecar files of ``index_path`` (``index.faiss`` → ``index.vectors.f16`` / ``.ids``)."""
    p = Path(index_path)
    stem = p.with_suffix("")
    return stem.with_name(stem.name + VEC_SUFFIX), stem.with_name(stem.name + IDS_SUFFIX)


def _map_random(path: Path, dtype, shape: tuple[int, ...]) -> tuple[np.ndarray, mmap.mmap | None]:
    """A read-only memory map of ``path`` as an array (and the map), advised for random access:
    re-ranking gathers scattered rows of 1 KiB, which the default read-ahead would pad with the
    rows around them (seen: the whole 2 GiB file of a 2M-clip index resident after 230 queries)."""
    count = int(np.prod(shape))
    if not count:
        return np.empty(shape, dtype), None
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), count * np.dtype(dtype).itemsize, access=mmap.ACCESS_READ)
    if hasattr(mmap, "MADV_RANDOM"):
        mm.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mm, dtype=dtype, count=count).reshape(shape), mm


def _append(path: Path, data: np.ndarray) -> None:
    with open(path, "ab") as f:
        f.write(np.ascontiguousarray(data).tobytes())
        f.flush()
        os.fsync(f.fileno())


class VectorFile:
    """Exact vectors by id: the memory-mapped sidecar files plus rows not yet saved (in memory)."""

    def __init__(self, dim: int, index_path: str | os.PathLike | None = None) -> None:
        self.dim = int(dim)
        self.path: Path | None = Path(index_path) if index_path is not None else None
        self._vecs = np.empty((0, self.dim), np.float16)
        self._mm: mmap.mmap | None = None
        self._row_ids = np.empty(0, np.int64)
        self._sorted_ids = np.empty(0, np.int64)  # unique ids with a row on disk, sorted
        self._sorted_rows = np.empty(0, np.int64)  # the live (last) row of each
        self._pending_ids: list[np.ndarray] = []
        self._pending_vecs: list[np.ndarray] = []
        self._pending_index: tuple[np.ndarray, np.ndarray] | None = None
        if self.path is not None:
            self._map()

    # ------------------------------------------------------------ opening

    def _map(self) -> None:
        vec_path, ids_path = vector_paths(self.path)
        if not (vec_path.is_file() and ids_path.is_file()):
            raise VectorFileError(
                f"the exact vectors of {self.path} are missing ({vec_path.name}, {ids_path.name}): "
                "run `echosearch verify --repair` (it rebuilds them from the frame store)"
            )
        rows = min(vec_path.stat().st_size // (2 * self.dim), ids_path.stat().st_size // 8)
        self._vecs, self._mm = _map_random(vec_path, np.float16, (rows, self.dim))
        ids, ids_mm = _map_random(ids_path, np.int64, (rows,))
        self._row_ids = np.array(ids)  # 8 bytes a clip, read once (the id -> row table is built from it)
        del ids
        if ids_mm is not None:
            ids_mm.close()
        self._index_rows()

    def _index_rows(self) -> None:
        """Sorted unique ids and the last row of each (a replaced id's newest vector wins)."""
        ids = np.asarray(self._row_ids)
        order = np.argsort(ids, kind="stable")
        s = ids[order]
        last = np.ones(s.size, bool)
        last[:-1] = s[1:] != s[:-1]
        self._sorted_ids, self._sorted_rows = s[last], order[last]

    @property
    def rows(self) -> int:
        """Rows on disk, garbage included (compare with the live count to decide on compaction)."""
        return int(self._row_ids.size)

    # ------------------------------------------------------------ reading and writing

    def put(self, ids: np.ndarray, x: np.ndarray) -> None:
        """Remember new or replaced vectors (unit rows); they reach disk at :meth:`flush`."""
        self._pending_ids.append(np.asarray(ids, np.int64).copy())
        self._pending_vecs.append(np.asarray(x, np.float32).astype(np.float16))
        self._pending_index = None

    def _pending(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted pending ids and their (last) position in the concatenated pending rows."""
        if self._pending_index is None:
            ids = np.concatenate(self._pending_ids) if self._pending_ids else np.empty(0, np.int64)
            order = np.argsort(ids, kind="stable")
            s = ids[order]
            last = np.ones(s.size, bool)
            last[:-1] = s[1:] != s[:-1]
            self._pending_index = (s[last], order[last])
            if len(self._pending_vecs) > 1:  # keep one array so positions index it directly
                self._pending_vecs = [np.concatenate(self._pending_vecs)]
                self._pending_ids = [ids]
        return self._pending_index

    def get(self, ids: np.ndarray) -> np.ndarray:
        """float32 vectors [len(ids), D] of ``ids`` (pending rows first, then disk)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        out = np.empty((ids.size, self.dim), np.float32)
        todo = np.ones(ids.size, bool)
        p_ids, p_pos = self._pending()
        if p_ids.size:
            at = np.minimum(np.searchsorted(p_ids, ids), p_ids.size - 1)
            hit = p_ids[at] == ids
            out[hit] = self._pending_vecs[0][p_pos[at[hit]]]
            todo &= ~hit
        if todo.any():
            want = ids[todo]
            at = np.minimum(np.searchsorted(self._sorted_ids, want), max(self._sorted_ids.size - 1, 0))
            ok = self._sorted_ids[at] == want if self._sorted_ids.size else np.zeros(want.size, bool)
            if not ok.all():
                raise VectorFileError(
                    f"{int((~ok).sum())} ids have no exact vector (e.g. {int(want[~ok][0])}): "
                    "run `echosearch verify --repair`"
                )
            rows = self._sorted_rows[at]
            order = np.argsort(rows)  # read the file in row order: sequential pages where possible
            gathered = np.empty((rows.size, self.dim), np.float32)
            for part in range(0, rows.size, GATHER_ROWS):
                sel = order[part : part + GATHER_ROWS]
                gathered[sel] = self._vecs[rows[sel]]
                self._release()
            out[todo] = gathered
        return out

    def _release(self) -> None:
        """Unmap the pages a gather touched (the page cache keeps them: the next read of a hot vector
        costs no disk access). Why: each scattered 1 KiB row maps its cached neighbours too (the
        kernel's fault-around, 64 KiB), so a query server kept gigabytes of this file resident."""
        if self._mm is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._mm.madvise(mmap.MADV_DONTNEED)

    def flush(self, index_path: str | os.PathLike) -> None:
        """Append the pending rows to the files of ``index_path`` (copying the old files first
        when the index is saved somewhere new), then map them again."""
        target = Path(index_path)
        vec_path, ids_path = vector_paths(target)
        if self.path is not None and target.resolve() != self.path.resolve():
            for src, dst in zip(vector_paths(self.path), (vec_path, ids_path), strict=True):
                shutil.copyfile(src, dst)
        elif self.path is None:
            for p in (vec_path, ids_path):
                p.unlink(missing_ok=True)
                p.touch()
        if self._pending_ids:
            ids = np.concatenate(self._pending_ids)
            vecs = np.concatenate(self._pending_vecs)
            # A torn tail from a crash would misalign the two files: cut both to the common length.
            self._truncate_to_rows(vec_path, ids_path)
            _append(vec_path, vecs)
            _append(ids_path, ids)
        self._pending_ids, self._pending_vecs, self._pending_index = [], [], None
        self.path = target
        self._map()

    def _truncate_to_rows(self, vec_path: Path, ids_path: Path) -> None:
        rows = min(vec_path.stat().st_size // (2 * self.dim), ids_path.stat().st_size // 8)
        for p, size in ((vec_path, rows * 2 * self.dim), (ids_path, rows * 8)):
            if p.stat().st_size != size:
                os.truncate(p, size)

    @classmethod
    def write(
        cls, index_path: str | os.PathLike, dim: int, chunks: Iterable[tuple[np.ndarray, np.ndarray]]
    ) -> VectorFile:
        """Write fresh, compact files for ``index_path`` from ``(ids, vectors)`` chunks (temp files,
        then renamed: a crash leaves the old files whole)."""
        vec_path, ids_path = vector_paths(index_path)
        tmp_vec, tmp_ids = (
            vec_path.with_name(vec_path.name + ".tmp"),
            ids_path.with_name(ids_path.name + ".tmp"),
        )
        with open(tmp_vec, "wb") as fv, open(tmp_ids, "wb") as fi:
            for ids, x in chunks:
                fv.write(np.ascontiguousarray(np.asarray(x, np.float32).astype(np.float16)).tobytes())
                fi.write(np.ascontiguousarray(np.asarray(ids, np.int64)).tobytes())
            for f in (fv, fi):
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp_vec, vec_path)
        os.replace(tmp_ids, ids_path)
        return cls(dim, index_path)
