"""What a saved FAISS index holds, read from its first bytes: no index loaded.

``echosearch stats`` used to load every space's index (all its vectors and ids) only to count them:
gigabytes at a hospital's scale. Every FAISS index file starts with the same header, whatever its
kind (``faiss/impl/index_write.cpp``: ``write_index_header``): a four-character code naming the
index class, then ``d`` (int32) and ``ntotal`` (int64), little-endian. An ``IndexIDMap2`` (our flat
and HNSW kinds) follows its own header (33 bytes with the inner-product metric) with the inner
index's code. ``ntotal`` of a saved index counts live vectors only: IVF kinds remove in place, and
HNSW tombstones are rebuilt away by ``VectorIndex.save``. A new kind in
:mod:`echosearch.index.faiss_index` needs its code in :data:`KINDS` (``tests/test_stats.py`` checks
every kind against ``VectorIndex.load``).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

#: fourcc (and the inner index's fourcc for an IndexIDMap2) -> the kind ``VectorIndex.kind`` names.
KINDS = {
    ("IxM2", "IxFI"): "flat",
    ("IxM2", "IHNf"): "hnsw",
    ("IwFl", None): "ivf",
    ("IwSq", None): "ivf-sq8",
    ("IwPQ", None): "ivf-pq",
}
_HEADER = struct.Struct("<4siq")  # fourcc, d, ntotal
_INNER_AT = 4 + 4 + 8 + 8 + 8 + 1 + 4  # IndexIDMap2: fourcc, d, ntotal, 2 dummies, is_trained, metric


@dataclass(frozen=True)
class IndexHeader:
    fourcc: str
    dim: int
    ntotal: int
    inner: str | None = None  # the wrapped index's fourcc (IndexIDMap/IndexIDMap2)

    @property
    def kind(self) -> str:
        """``flat``/``ivf``/``hnsw`` as :class:`~echosearch.index.VectorIndex` names them; else
        ``faiss:<fourcc>`` (a kind this reader does not know by name)."""
        return KINDS.get((self.fourcc, self.inner)) or f"faiss:{self.inner or self.fourcc}"

    def describe(self) -> dict:
        """The keys of ``VectorIndex.describe()`` a header can tell: kind, ntotal, dim."""
        return {"kind": self.kind, "ntotal": self.ntotal, "dim": self.dim}


def read_header(path: str | os.PathLike) -> IndexHeader:
    """The header of the FAISS index saved at ``path``; ValueError when it is not one (OSError when
    it cannot be read)."""
    with Path(path).open("rb") as f:
        head = f.read(_INNER_AT + 4)
    if len(head) < _HEADER.size:
        raise ValueError(f"{path} is too short to be a FAISS index ({len(head)} bytes)")
    code, dim, ntotal = _HEADER.unpack_from(head)
    try:
        fourcc = code.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a FAISS index (it starts with {code!r})") from None
    if not fourcc.isalnum() or dim <= 0 or ntotal < 0:
        raise ValueError(f"{path} is not a FAISS index (it starts with {code!r})")
    inner = None
    if fourcc in ("IxMp", "IxM2") and len(head) >= _INNER_AT + 4:
        inner = head[_INNER_AT : _INNER_AT + 4].decode("ascii", "replace")
    return IndexHeader(fourcc, int(dim), int(ntotal), inner)
