"""Per-frame embeddings of every video, as float16 shards on disk, memory-mapped for reading.

Zero-shot regression (EF) and scoring a *new* prompt over the whole archive need every frame's
embedding, not only the video vector in FAISS. Layout of ``frames/``:

* ``meta.json`` — ``{"dim": D, "shard_rows": R}``
* ``shard-00000.f16``, ... — raw float16 rows of D values, appended; a video's frames never span
  two shards; a shard is closed once it reaches R rows.
* ``map.log`` — an append-only log of int64 records ``(id, shard, offset, count)``; the last record
  of an id wins and ``count == -1`` marks a removal. Appending a record is cheap at any archive size
  (no rewrite of a big map per batch), and a torn last record after a crash is ignored.

* ``map.sums`` — the same records with a fifth field, the CRC-32 of the rows as written: what
  ``echosearch verify`` checks each shard against (a truncated, overwritten or NaN-filled shard is
  found), and a second copy of the map, from which a lost or damaged ``map.log`` is rebuilt
  (:meth:`FrameStore.rebuild_map`) instead of every clip being taken for gone.

Writes go data first (fsync), then the checksum records, then the map records, so a reader never
maps an id to rows that are not on disk yet. Removed and replaced rows stay as garbage until
``compact()``.
A single writer (the indexer) and any number of readers (``reload()`` picks up new records).
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echosearch.errors import UsageError
from echosearch.fsutil import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

REC = 4  # int64 fields per map record
SUM_REC = 5  # int64 fields per checksum record: the map record + CRC-32 of the rows
DEFAULT_SHARD_ROWS = 1 << 20  # 1M frames = 1 GiB per shard at 512-d float16


@dataclass
class FrameBatch:
    """Frames of several videos: ``frames[offsets[i]:offsets[i+1]]`` belong to ``ids[i]``."""

    ids: np.ndarray  # int64 [N]
    offsets: np.ndarray  # int64 [N+1]
    frames: np.ndarray  # float16 [offsets[-1], D] (a memory map where possible)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def per_video(self, frame_values: np.ndarray, reduce: str = "mean") -> np.ndarray:
        """Reduce a per-frame array [F_total, ...] to per-video [N, ...] ("mean" or "max")."""
        if reduce == "mean":
            sums = np.add.reduceat(frame_values, self.offsets[:-1], axis=0)
            return sums / self.counts.reshape(-1, *([1] * (frame_values.ndim - 1)))
        if reduce == "max":
            return np.maximum.reduceat(frame_values, self.offsets[:-1], axis=0)
        raise UsageError(f"unknown reduction {reduce!r}")


class FrameStore:
    """Append-only float16 frame-embedding shards with an id -> (shard, offset, count) map."""

    def __init__(self, root: str | os.PathLike, dim: int | None = None, shard_rows: int = DEFAULT_SHARD_ROWS):
        """Open the store at ``root`` (created when ``dim`` is given and it does not exist)."""
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if dim is not None and dim != meta["dim"]:
                raise UsageError(f"frame store {self.root} holds dim {meta['dim']}, not {dim}")
            self.dim, self.shard_rows = int(meta["dim"]), int(meta["shard_rows"])
        elif dim is None:
            raise UsageError(f"no frame store at {self.root}")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            self.dim, self.shard_rows = int(dim), int(shard_rows)
            meta = {"dim": self.dim, "shard_rows": self.shard_rows}
            atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True))
        self._maps: dict[int, np.memmap] = {}
        self.reload()

    # ------------------------------------------------------------ map

    @property
    def _log_path(self) -> Path:
        return self.root / "map.log"

    def _shard_path(self, shard: int) -> Path:
        return self.root / f"shard-{shard:05d}.f16"

    def reload(self) -> None:
        """Re-read the map (a reader calls this to see what the writer appended since)."""
        raw = (
            np.fromfile(self._log_path, dtype=np.int64) if self._log_path.exists() else np.empty(0, np.int64)
        )
        recs = raw[: raw.size // REC * REC].reshape(-1, REC)
        # Last record per id wins: unique over the reversed log gives each id's last position.
        ids_rev = recs[::-1, 0]
        _, first_rev = np.unique(ids_rev, return_index=True)
        last = recs[::-1][first_rev]
        live = last[last[:, 3] >= 0]
        # Order by (shard, offset): iteration reads the shards sequentially.
        order = np.lexsort((live[:, 2], live[:, 1]))
        self._table = live[order]
        self._pos = {int(i): n for n, i in enumerate(self._table[:, 0])}
        self._n_records = len(recs)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, id_: int) -> bool:
        return int(id_) in self._pos

    def ids(self) -> np.ndarray:
        """Ids with frames, in storage order."""
        return self._table[:, 0].copy()

    def location(self, id_: int) -> tuple[int, int, int]:
        """``(shard, offset, count)`` of a video's frames; KeyError when absent."""
        row = self._table[self._pos[int(id_)]]
        return int(row[1]), int(row[2]), int(row[3])

    @property
    def n_frames(self) -> int:
        return int(self._table[:, 3].sum()) if len(self._table) else 0

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.iterdir() if p.is_file())

    # ------------------------------------------------------------ writing

    def _shard_rows_on_disk(self, shard: int) -> int:
        p = self._shard_path(shard)
        return p.stat().st_size // (2 * self.dim) if p.exists() else 0

    @property
    def _sums_path(self) -> Path:
        return self.root / "map.sums"

    def _append_records(self, recs: np.ndarray, crcs: Sequence[int] | None = None) -> None:
        crcs = [-1] * len(recs) if crcs is None else list(crcs)
        sums = np.concatenate([np.asarray(recs, np.int64), np.asarray(crcs, np.int64)[:, None]], axis=1)
        with open(self._sums_path, "ab") as f:
            f.write(np.ascontiguousarray(sums, dtype=np.int64).tobytes())
            f.flush()
            os.fsync(f.fileno())
        with open(self._log_path, "ab") as f:
            f.write(np.ascontiguousarray(recs, dtype=np.int64).tobytes())
            f.flush()
            os.fsync(f.fileno())
        self.reload()

    def add_many(self, ids: Sequence[int], frames: Sequence[np.ndarray]) -> None:
        """Store each video's frames [F_i, D] (any float dtype; stored float16). An existing id is replaced."""
        if len(ids) != len(frames):
            raise UsageError(f"{len(ids)} ids for {len(frames)} frame arrays")
        if len(set(int(i) for i in ids)) != len(ids):
            raise UsageError("duplicate ids in one add")
        shard = max((int(p.stem.split("-")[1]) for p in self.root.glob("shard-*.f16")), default=0)
        rows = self._shard_rows_on_disk(shard)
        recs, crcs = [], []
        pending: list[np.ndarray] = []

        def flush() -> None:
            if pending:
                with open(self._shard_path(shard), "ab") as f:
                    for a in pending:
                        f.write(a.tobytes())
                    f.flush()
                    os.fsync(f.fileno())
                pending.clear()

        for id_, fr in zip(ids, frames, strict=True):
            a = np.ascontiguousarray(np.asarray(fr, dtype=np.float16))
            if a.ndim != 2 or a.shape[1] != self.dim or a.shape[0] == 0:
                raise UsageError(f"frames of video {id_} have shape {a.shape}, expected [F>0, {self.dim}]")
            if rows and rows + len(a) > self.shard_rows:
                flush()
                shard, rows = shard + 1, 0
            recs.append((int(id_), shard, rows, len(a)))
            crcs.append(zlib.crc32(a.tobytes()))
            pending.append(a)
            rows += len(a)
        flush()
        if recs:
            self._append_records(np.asarray(recs, dtype=np.int64), crcs)

    def add(self, id_: int, frames: np.ndarray) -> None:
        self.add_many([id_], [frames])

    def remove(self, ids: Sequence[int]) -> int:
        """Forget these ids' frames (space is reclaimed by ``compact()``); returns how many were present."""
        present = [int(i) for i in ids if int(i) in self._pos]
        if present:
            self._append_records(np.asarray([(i, -1, -1, -1) for i in present], dtype=np.int64))
        return len(present)

    # ------------------------------------------------------------ integrity

    def checksums(self) -> dict[tuple[int, int, int, int], int]:
        """CRC-32 of each record's rows as written, by ``(id, shard, offset, count)`` (none for a
        store written before checksums were kept)."""
        if not self._sums_path.exists():
            return {}
        raw = np.fromfile(self._sums_path, dtype=np.int64)
        recs = raw[: raw.size // SUM_REC * SUM_REC].reshape(-1, SUM_REC)
        return {tuple(int(v) for v in r[:4]): int(r[4]) for r in recs if r[3] >= 0 and r[4] >= 0}

    def damaged(self) -> dict[int, str]:
        """Ids whose frames are not intact, with why: the shard is gone or shorter than the map says,
        the rows differ from their checksum, or they hold NaN/inf."""
        sums = self.checksums()
        out: dict[int, str] = {}
        for id_, shard, off, n in self._table.tolist():
            if not self._shard_path(shard).exists():
                out[id_] = f"shard {shard} is missing"
                continue
            if off + n > self._shard_rows_on_disk(shard):
                out[id_] = f"shard {shard} is truncated"
                continue
            rows = np.asarray(self._memmap(shard)[off : off + n])
            crc = sums.get((id_, shard, off, n))
            if crc is not None and zlib.crc32(rows.tobytes()) != crc:
                out[id_] = f"rows in shard {shard} differ from their checksum"
            elif not np.isfinite(rows).all():
                out[id_] = f"rows in shard {shard} hold NaN or infinite values"
        return out

    def rebuild_map(self) -> int:
        """Rewrite ``map.log`` from ``map.sums`` (its copy); the live ids it gives, or -1 without sums."""
        if not self._sums_path.exists():
            return -1
        raw = np.fromfile(self._sums_path, dtype=np.int64)
        recs = raw[: raw.size // SUM_REC * SUM_REC].reshape(-1, SUM_REC)[:, :REC]
        atomic_write_bytes(self._log_path, np.ascontiguousarray(recs).tobytes())
        self._maps.clear()
        self.reload()
        return len(self)

    def garbage_fraction(self) -> float:
        """Share of stored rows that no live id points to (removed or replaced frames)."""
        stored = sum(
            self._shard_rows_on_disk(int(p.stem.split("-")[1])) for p in self.root.glob("shard-*.f16")
        )
        return 1.0 - self.n_frames / stored if stored else 0.0

    def compact(self) -> None:
        """Rewrite the shards with live frames only. Run it offline (no other reader or writer):
        the shard swap is not crash-atomic, unlike add/remove."""
        tmp = self.root / "compact.tmp"
        tmp.mkdir(exist_ok=True)
        new = FrameStore(tmp, dim=self.dim, shard_rows=self.shard_rows)
        for batch in self.iter_all():
            new.add_many(
                list(batch.ids),
                [batch.frames[a:b] for a, b in zip(batch.offsets[:-1], batch.offsets[1:], strict=True)],
            )
        self._maps.clear()
        for p in self.root.glob("shard-*.f16"):
            p.unlink()
        for p in tmp.glob("shard-*.f16"):
            os.replace(p, self.root / p.name)
        for name in ("map.log", "map.sums"):
            if (tmp / name).exists():
                os.replace(tmp / name, self.root / name)
            else:
                (self.root / name).unlink(missing_ok=True)
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
        self.reload()

    # ------------------------------------------------------------ reading

    def _memmap(self, shard: int) -> np.ndarray:
        rows = self._shard_rows_on_disk(shard)
        mm = self._maps.get(shard)
        if mm is None or mm.shape[0] < rows:
            mm = np.memmap(self._shard_path(shard), dtype=np.float16, mode="r", shape=(rows, self.dim))
            self._maps[shard] = mm
        return mm

    def get(self, id_: int) -> np.ndarray:
        """One video's frames, float16 [F, D] (a read-only memory-mapped view)."""
        if int(id_) not in self._pos:
            raise UsageError(f"no frames stored for id {id_}")
        shard, off, n = self.location(id_)
        return self._memmap(shard)[off : off + n]

    def get_many(self, ids: Sequence[int]) -> list[np.ndarray]:
        return [self.get(i) for i in ids]

    def iter_all(self) -> Iterator[FrameBatch]:
        """Every live video's frames, one :class:`FrameBatch` per shard, in storage order.

        A shard without garbage is handed out as a zero-copy memory map slice; otherwise its live
        rows are gathered (one fancy-index copy).
        """
        t = self._table
        if not len(t):
            return
        bounds = np.flatnonzero(np.diff(t[:, 1])) + 1
        for part in np.split(t, bounds):
            shard = int(part[0, 1])
            mm = self._memmap(shard)
            counts = part[:, 3]
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            start, end = int(part[0, 2]), int(part[-1, 2] + part[-1, 3])
            if end - start == offsets[-1]:  # contiguous: no garbage between these rows
                frames = mm[start:end]
            else:
                rows = np.concatenate([np.arange(o, o + c) for o, c in zip(part[:, 2], counts, strict=True)])
                frames = mm[rows]
            yield FrameBatch(ids=part[:, 0].copy(), offsets=offsets, frames=frames)

    def matrix(self) -> FrameBatch:
        """All live frames as one batch (float16 [total_frames, D]); zero-copy with one clean shard."""
        batches = list(self.iter_all())
        if not batches:
            return FrameBatch(
                np.empty(0, np.int64), np.zeros(1, np.int64), np.empty((0, self.dim), np.float16)
            )
        if len(batches) == 1:
            return batches[0]
        counts = np.concatenate([b.counts for b in batches])
        return FrameBatch(
            ids=np.concatenate([b.ids for b in batches]),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            frames=np.concatenate([b.frames for b in batches]),
        )
