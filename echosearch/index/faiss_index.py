"""One FAISS index per embedding space; FAISS ids are video ids (or report ids in a report space).

Index kinds, chosen by size (thresholds in :class:`IndexConfig`):

* ``flat`` — ``IndexIDMap2(IndexFlatIP)``: exact inner product. Used up to ``flat_max`` vectors,
  where exact search is already fast (a few ms) and needs no training.
* ``ivf`` (default ANN) — ``IndexIVFFlat`` with its own ids and a hash-table direct map. It is the
  ANN kind that supports remove/replace natively (``remove_ids``, ``reconstruct(id)``) and trains in
  about a minute at 1M vectors on 2 cores, where HNSW takes tens of minutes. ``IndexIDMap2`` is not
  put over IVF because IDMap's removal assumes the sub-index renumbers its rows, which IVF does not.
* ``ivf-sq8`` / ``ivf-pq`` — IVF with 8-bit scalar codes (4x smaller than float32) or product
  quantisation codes (``pq_m`` bytes per vector), chosen when the exact vectors would not fit the
  space's memory budget (``--index-memory``, :meth:`IndexConfig.kind_for`, after the way autofaiss
  picks an index). Above ``hnsw_quantizer_nlist`` lists (some 70M vectors) the coarse quantizer is
  an HNSW graph over the centroids, so assigning a vector does not scan every list. Their exact vectors live on disk
  beside the index (:mod:`echosearch.index.vectorfile`, memory-mapped): every query re-ranks its
  ``k * refine_factor`` best candidates with them, and ``reconstruct``/rebuilds read them, so the
  compressed codes never degrade similar-clip vectors. Opened by a query server, the codes are
  memory-mapped too, so the process holds only the pages its queries touch.
* ``hnsw`` (opt-in, ``ann="hnsw"``) — ``IndexIDMap2(IndexHNSWFlat)``. HNSW cannot remove vectors,
  so removed ids go into an in-memory tombstone set that every search excludes through an
  ``IDSelectorNot``; re-adding an id or more than ``hnsw_max_tombstones`` of dead vectors, and
  every ``save()``, rebuilds the graph from the live vectors, so the file on disk never has
  tombstones.

Vectors are L2-normalised on the way in (scores are cosine similarities). An archive too large to
hold in memory at once is built with :meth:`VectorIndex.build_streamed` (train on a sample, add in
chunks); ``echosearch reindex`` uses it to move a space to the kind that suits its size and budget.

Filtered search (``ids=`` the allowed ids, e.g. from ``echosearch.store.queries.filter_video_ids``):
the filter is applied *inside* the search through ``faiss.IDSelectorBatch`` in ``SearchParameters``,
never as a post-filter, so it cannot drop good results. Exact indexes stay exact. For ANN indexes a
subset of at most ``exact_subset_max`` ids is searched exactly by gathering its vectors (an ANN
graph or a few IVF lists may hold none of a tiny subset: HNSW with a 3-id selector returns nothing);
a larger subset is searched with ``nprobe``/``efSearch`` scaled up by 1/selectivity (IVF: at most
16x), with an exact fallback when that still returns fewer than ``k`` hits. Compressed kinds
answer 8x larger subsets exactly: gathering their exact vectors from disk is cheap.

Saving is atomic (write a temp file in the same folder, fsync, ``os.replace``): a reader that opens
the index while the indexer saves sees the old or the new file, never half of one.
``load(path, mmap=True)`` memory-maps the vectors (``IO_FLAG_MMAP_IFC``) for fast, low-memory
read-only opening (query servers); such an index refuses writes.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from echosearch.batching import batches
from echosearch.errors import EchosearchError, UsageError
from echosearch.fsutil import atomic_path
from echosearch.index.header import read_header
from echosearch.index.vectorfile import VectorFile, VectorFileError, vector_paths

log = logging.getLogger(__name__)

KINDS = ("flat", "ivf", "ivf-sq8", "ivf-pq", "hnsw")
#: Kinds whose codes are lossy: exact vectors on disk beside the index, re-ranking at query time.
COMPRESSED = ("ivf-sq8", "ivf-pq")
_COMPRESSION = {"ivf": 0, "ivf-sq8": 1, "ivf-pq": 2}
#: The share of the memory budget the index may take (the rest: ids, the process, page cache).
BUDGET_SHARE = 0.8


#: Searches of at most this many query vectors run on one OpenMP thread.
FEW_QUERIES = 4


@contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    """One OpenMP thread for a search of a few queries (this thread only; restored after).

    Why: a query server answers many requests at once, one query each; FAISS spreads a search over
    its queries, so one query gains nothing from more threads and pays their start-up and spinning,
    which on a busy 2-core machine measured 3x slower (flat, 200k vectors: 61 vs 22 ms; similar-clip
    requests 9.6 vs 4.1 ms). Batches (building, evaluating recall) keep every thread.
    """
    if n_queries > FEW_QUERIES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorIndexError(EchosearchError):
    """A vector index file is missing, corrupt, or of the wrong dimension."""


@dataclass
class IndexConfig:
    """When to switch from exact to ANN search, and the ANN parameters. Stored in space.json."""

    flat_max: int = 50_000  # exact IndexFlatIP up to this many vectors
    # ANN kind above flat_max: "ivf" (the IVF kind that fits memory_budget), "ivf-sq8", "ivf-pq", "hnsw"
    ann: str = "ivf"
    memory_budget: int | None = None  # bytes the index may take in RAM (None: exact vectors in RAM)
    nlist: int | None = None  # IVF lists; None = 2*sqrt(n) rounded, 16..65536
    nprobe: int | None = None  # IVF lists probed per query; None = auto (3% of nlist, 16..64)
    pq_m: int | None = None  # PQ bytes per vector; None = the most that fit the budget
    refine_factor: int = 8  # compressed kinds re-rank k * this many candidates with exact vectors
    # above this many IVF lists an HNSW graph assigns vectors (below, exact assignment costs little)
    hnsw_quantizer_nlist: int = 16384
    train_per_list: int = 40  # IVF training vectors per list (sampled)
    rebuild_growth: float = 4.0  # rebuild an IVF once it has grown this many times past its training size
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 96
    hnsw_max_tombstones: float = 0.1  # rebuild HNSW when this fraction of its vectors is removed
    exact_subset_max: int = 20_000  # filtered ANN search with at most this many ids is exact
    normalize: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> IndexConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})

    def kind_for(self, n: int, dim: int = 512) -> str:
        """The index kind for ``n`` vectors: exact while small, then the IVF kind whose codes fit
        ``memory_budget`` (float32 vectors, then 8-bit codes, then PQ codes), or the forced ``ann``."""
        if self.ann not in KINDS[1:]:
            raise UsageError(f"unknown ANN kind {self.ann!r} (use one of {', '.join(KINDS[1:])})")
        fits = self.memory_budget is None or n * (4 * dim + 32) <= BUDGET_SHARE * self.memory_budget
        if n <= self.flat_max and fits:
            return "flat"
        if self.ann != "ivf":
            return self.ann
        if fits:
            return "ivf"
        return "ivf-sq8" if n * (dim + 16) <= BUDGET_SHARE * self.memory_budget else "ivf-pq"

    def pq_m_for(self, n: int, dim: int) -> int:
        """PQ bytes per vector: ``pq_m``, else the largest divisor of ``dim`` among 128..8 that fits."""
        if self.pq_m:
            if dim % self.pq_m:
                raise UsageError(f"pq_m {self.pq_m} does not divide the dimension {dim}")
            return int(self.pq_m)
        options = [m for m in (128, 64, 32, 16, 8) if dim % m == 0 and m < dim] or [dim]
        budget = BUDGET_SHARE * (self.memory_budget or float("inf"))
        return next((m for m in options if n * (m + 16) <= budget), options[-1])

    def nlist_for(self, n: int) -> int:
        if self.nlist:
            return int(self.nlist)
        return int(min(65536, max(16, round(2 * math.sqrt(max(n, 1))))))

    def nprobe_for(self, nlist: int) -> int:
        """Lists probed per query: ``nprobe``, else 3% of the lists within 16..64 (past ~2,000 lists
        3% would scan more codes per query than recall needs on clustered embeddings)."""
        return int(min(nlist, self.nprobe or min(64, max(16, round(0.03 * nlist)))))


@dataclass
class Hits:
    """The results of one query: ``ids`` (int64) and ``scores`` (float32, cosine), best first."""

    ids: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def pairs(self) -> list[tuple[int, float]]:
        return [(int(i), float(s)) for i, s in zip(self.ids, self.scores, strict=True)]


def _as_matrix(x: np.ndarray, dim: int, normalize: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != dim:
        raise UsageError(f"expected vectors of dimension {dim}, got shape {tuple(x.shape)}")
    x = np.ascontiguousarray(x)
    if normalize:
        x = x.copy()
        faiss.normalize_L2(x)
    return x


def _as_ids(ids: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


class VectorIndex:
    """A FAISS index of unit vectors keyed by int64 ids (video ids). See the module doc.

    Create with ``VectorIndex(dim)`` (empty, exact) or ``VectorIndex.build(ids, vectors, dim)``,
    open with ``VectorIndex.load(path)``; mutate with ``add`` / ``remove`` / ``replace``; query with
    ``search``; persist with ``save(path)``.
    """

    def __init__(self, dim: int, config: IndexConfig | None = None) -> None:
        self.dim = int(dim)
        self.config = config or IndexConfig()
        self.read_only = False
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self._kind = "flat"
        self._ids = np.empty(0, dtype=np.int64)  # sorted live ids
        self._tombstones = np.empty(0, dtype=np.int64)  # hnsw only: sorted removed ids still in the graph
        self._trained_n = 0
        self._exact: VectorFile | None = None  # compressed kinds: the exact vectors (on disk + pending)

    # ------------------------------------------------------------ introspection

    @property
    def kind(self) -> str:
        """One of :data:`KINDS`."""
        return self._kind

    @property
    def compressed(self) -> bool:
        """Whether the index holds lossy codes (and re-ranks with exact vectors from disk)."""
        return self._kind in COMPRESSED

    @property
    def ntotal(self) -> int:
        """The number of live vectors (removed ones excluded)."""
        return int(self._ids.size)

    def __len__(self) -> int:
        return self.ntotal

    def __contains__(self, id_: int) -> bool:
        i = np.searchsorted(self._ids, id_)
        return bool(i < self._ids.size and self._ids[i] == id_)

    def _mask(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` are live: binary search in the sorted id array, O(m log n).

        (np.intersect1d / np.isin re-sort or hash all n live ids on every call: 20 ms at 30k ids.)
        """
        pos = np.searchsorted(self._ids, ids)
        pos[pos >= self._ids.size] = 0
        return (self._ids[pos] == ids) if self._ids.size else np.zeros(ids.shape, bool)

    def _live(self, ids: Any) -> np.ndarray:
        """The live ids among ``ids``, sorted and unique."""
        ids = _as_ids(ids)
        if ids.size > 1 and not np.all(ids[1:] > ids[:-1]):
            ids = np.unique(ids)
        return ids[self._mask(ids)]

    def live(self, ids: Any) -> np.ndarray:
        """A boolean mask: which of ``ids`` are in the index (binary search, see :meth:`_mask`)."""
        return self._mask(_as_ids(ids))

    def ids(self) -> np.ndarray:
        """All live ids, sorted (a copy)."""
        return self._ids.copy()

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for ``stats``: kind, ntotal, dim and the ANN parameters in use."""
        d: dict[str, Any] = {"kind": self._kind, "ntotal": self.ntotal, "dim": self.dim}
        if self._kind.startswith("ivf"):
            d.update(nlist=int(self._index.nlist), nprobe=int(self._index.nprobe))
            d.update(code_bytes=int(self._index.code_size))
        if self.compressed:
            d.update(refine_factor=int(self.config.refine_factor))
        if self.config.memory_budget:
            d.update(memory_budget=int(self.config.memory_budget))
        if self.config.kind_for(self.ntotal, self.dim) != self._kind:
            d.update(suggested_kind=self.config.kind_for(self.ntotal, self.dim))
        if self._kind == "hnsw":
            d.update(tombstones=int(self._tombstones.size))
        return d

    # ------------------------------------------------------------ building

    @classmethod
    def build(
        cls, ids: Any, vectors: np.ndarray, dim: int | None = None, config: IndexConfig | None = None
    ) -> VectorIndex:
        """A new index over ``vectors`` [N, D] with ``ids`` [N], of the kind that suits N."""
        vectors = np.asarray(vectors, dtype=np.float32)
        self = cls(dim or vectors.shape[1], config)
        ids = _as_ids(ids)
        x = _as_matrix(vectors, self.dim, self.config.normalize)
        self._check_new_ids(ids)
        self._rebuild_from(ids, x, self.config.kind_for(len(ids), self.dim))
        return self

    @classmethod
    def build_streamed(
        cls,
        chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
        n: int,
        dim: int,
        path: str | os.PathLike,
        config: IndexConfig | None = None,
        kind: str | None = None,
    ) -> VectorIndex:
        """Build and save at ``path`` an index over ``n`` vectors that need not fit in memory.

        ``chunks()`` yields ``(ids, vectors)`` and is called twice: once to draw the training sample
        (each row kept with the probability that gives about the sample size), once to add. For the
        compressed kinds the exact vectors go straight to their file on disk in the second pass, so
        the peak memory is the codes plus one chunk. ``kind``: force one (default: by size and budget).
        """
        self = cls(dim, config)
        kind = kind or self.config.kind_for(n, self.dim)
        if kind not in KINDS:
            raise UsageError(f"unknown index kind {kind!r} (use one of {', '.join(KINDS)})")
        path = Path(path)
        if kind in ("flat", "hnsw"):  # these hold every vector in memory anyway
            parts = [(_as_ids(i), _as_matrix(x, self.dim, self.config.normalize)) for i, x in chunks()]
            ids = np.concatenate([i for i, _ in parts]) if parts else np.empty(0, np.int64)
            x = np.vstack([v for _, v in parts]) if parts else np.empty((0, self.dim), np.float32)
            self._check_new_ids(ids)
            self._rebuild_from(ids, x, kind)
            self.save(path)
            return self
        want = self._train_size(kind, n)
        rng = np.random.default_rng(0)
        sample = [x[rng.random(len(x)) < want / max(n, 1)] for _, x in self._normalised(chunks())]
        log.info("training %s on %d of %d vectors", kind, sum(map(len, sample)), n)
        train = np.vstack(sample) if sample else np.empty((0, self.dim), np.float32)
        index = self._new_faiss_index(kind, train, n)
        self._index, self._kind, self._tombstones = index, kind, np.empty(0, np.int64)
        added: list[np.ndarray] = []

        def add_all() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for ids, x in self._normalised(chunks()):
                index.add_with_ids(x, ids)
                added.append(ids)
                yield ids, x

        if self.compressed:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._exact = VectorFile.write(path, self.dim, add_all())
        else:
            for _ in add_all():
                pass
        self._ids = np.sort(np.concatenate(added)) if added else np.empty(0, np.int64)
        if np.any(self._ids[1:] == self._ids[:-1]):
            raise UsageError("duplicate ids in the vectors to index")
        self._trained_n = self.ntotal
        self.save(path)
        return self

    def _normalised(
        self, chunks: Iterable[tuple[np.ndarray, np.ndarray]]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for ids, x in chunks:
            ids, x = _as_ids(ids), _as_matrix(x, self.dim, self.config.normalize)
            if len(ids) != len(x):
                raise UsageError(f"{len(ids)} ids for {len(x)} vectors")
            if len(ids):
                yield ids, x

    def _nlist(self, kind: str, n: int) -> int:
        return max(1, min(self.config.nlist_for(n), n // 39))

    def _train_size(self, kind: str, n: int) -> int:
        """Training vectors: enough per IVF list, and at least 256 per PQ centroid table."""
        want = self._nlist(kind, n) * self.config.train_per_list
        if kind == "ivf-pq":
            want = max(want, 64 * 256)
        return min(n, want)

    def _new_faiss_index(self, kind: str, train: np.ndarray, n: int | None = None) -> faiss.Index:
        """An empty, trained index of ``kind`` sized for ``n`` vectors (default: the training set's)."""
        n = len(train) if n is None else n
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if kind == "hnsw":
            h = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            h.hnsw.efConstruction = self.config.ef_construction
            h.hnsw.efSearch = self.config.ef_search
            return faiss.IndexIDMap2(h)
        nlist = min(self._nlist(kind, n), max(1, len(train) // 39))
        quantizer = "_HNSW32" if nlist > self.config.hnsw_quantizer_nlist else ""
        codes = {"ivf": "Flat", "ivf-sq8": "SQ8", "ivf-pq": f"PQ{self.config.pq_m_for(n, self.dim)}x8"}
        if kind not in codes:
            raise UsageError(f"unknown index kind {kind!r} (use one of {', '.join(KINDS)})")
        if kind == "ivf" and not quantizer:
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            spec = f"IVF{nlist}{quantizer},{codes[kind]}"
            # (not downcast_index: its proxy does not own the index, which the factory's proxy frees)
            ivf = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
            if quantizer:  # FAISS's default (16 candidates) misassigns vectors: impure lists, lost recall
                graph = faiss.downcast_index(ivf.quantizer).hnsw
                graph.efSearch, graph.efConstruction = 128, 80
        ivf.cp.niter = 10
        if kind == "ivf-pq":  # polysemous codes serve Hamming pre-filtering, which we never use
            ivf.do_polysemous_training = False
            ivf.pq.cp.niter = 15
        sample = train
        n_train = min(len(train), self._train_size(kind, n))
        if n_train < len(train):
            rng = np.random.default_rng(0)
            sample = train[np.sort(rng.choice(len(train), n_train, replace=False))]
        ivf.train(sample)
        if kind == "ivf":  # remove/reconstruct by id; compressed kinds read exact vectors from disk
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        ivf.nprobe = self.config.nprobe_for(nlist)
        return ivf

    def _rebuild_from(self, ids: np.ndarray, x: np.ndarray, kind: str) -> None:
        log.info("building %s index over %d vectors (dim %d)", kind, len(ids), self.dim)
        index = self._new_faiss_index(kind, x)
        if len(ids):
            index.add_with_ids(x, ids)
        if kind in COMPRESSED:
            if self._exact is None:
                self._exact = VectorFile(self.dim)
            self._exact.put(ids, x)
        else:
            self._exact = None
        self._index, self._kind = index, kind
        self._ids = np.sort(ids)
        self._tombstones = np.empty(0, dtype=np.int64)
        self._trained_n = len(ids)

    def iter_vectors(self, chunk: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All live ``(ids, vectors)`` in id order, ``chunk`` at a time (a source for rebuilds)."""
        for part in batches(self._ids, chunk):
            part = np.asarray(part, np.int64)
            yield part, self._vectors(part)

    def _all_live(self) -> tuple[np.ndarray, np.ndarray]:
        return self._ids.copy(), self.reconstruct(self._ids)

    def rebuild(self, kind: str | None = None) -> None:
        """Rebuild from the live vectors (as ``kind``, default: the kind that suits the size)."""
        self._check_writable()
        kind = kind or self.config.kind_for(self.ntotal, self.dim)
        if self.compressed and kind in COMPRESSED:
            self._rebuild_compressed(kind)
            return
        ids, x = self._all_live()
        self._rebuild_from(ids, x, kind)

    def _rebuild_compressed(self, kind: str) -> None:
        """Retrain and re-add from the exact vectors in chunks (never all of them in memory)."""
        log.info("rebuilding %s index over %d vectors (dim %d)", kind, self.ntotal, self.dim)
        want = self._train_size(kind, self.ntotal)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(self._ids, want, replace=False)) if want < self.ntotal else self._ids
        index = self._new_faiss_index(kind, self._vectors(sample), self.ntotal)
        for ids, x in self.iter_vectors():
            index.add_with_ids(x, ids)
        self._index, self._kind, self._trained_n = index, kind, self.ntotal

    def _maybe_grow(self) -> None:
        want = self.config.kind_for(self.ntotal, self.dim)
        if self._kind == "flat" and want != "flat":
            self.rebuild(want)
        elif _COMPRESSION.get(want, -1) > _COMPRESSION.get(self._kind, -1):
            self.rebuild(want)  # outgrew the memory budget: compress (never back: `echosearch reindex`)
        elif self._kind.startswith("ivf") and self.ntotal > self.config.rebuild_growth * max(
            self._trained_n, 1
        ):
            self.rebuild(self._kind)
        elif self._kind == "hnsw" and self._tombstones.size > self.config.hnsw_max_tombstones * max(
            self.ntotal, 1
        ):
            self.rebuild("hnsw")

    # ------------------------------------------------------------ mutation

    def _check_writable(self) -> None:
        if self.read_only:
            raise UsageError(
                "this vector index was opened memory-mapped (read-only); load it with mmap=False"
            )

    def _check_new_ids(self, ids: np.ndarray) -> None:
        if np.unique(ids).size != ids.size:
            raise UsageError("duplicate ids in one add")
        if self._mask(ids).any():
            raise UsageError("some ids are already in the index (use replace)")

    def add(self, ids: Any, vectors: np.ndarray) -> None:
        """Add vectors under new ids (ids already present raise UsageError: use ``replace``)."""
        self._check_writable()
        ids = _as_ids(ids)
        x = _as_matrix(vectors, self.dim, self.config.normalize)
        if len(ids) != len(x):
            raise UsageError(f"{len(ids)} ids for {len(x)} vectors")
        if not len(ids):
            return
        self._check_new_ids(ids)
        if self._kind == "hnsw" and np.isin(ids, self._tombstones).any():
            # The dead copy of the id is still in the graph: compact first so ids stay unique.
            self.rebuild("hnsw")
        grown = self.config.kind_for(self.ntotal + len(ids), self.dim)
        if self._kind == "flat" and grown != "flat":
            old_ids, old_x = self._all_live()
            self._rebuild_from(np.concatenate([old_ids, ids]), np.vstack([old_x, x]), grown)
            return
        self._index.add_with_ids(x, ids)
        if self._exact is not None:
            self._exact.put(ids, x)
        self._ids = np.union1d(self._ids, ids)
        self._maybe_grow()

    def remove(self, ids: Any) -> int:
        """Remove ids (absent ones are ignored); returns how many were removed."""
        self._check_writable()
        ids = self._live(ids)
        if not ids.size:
            return 0
        if self._kind == "hnsw":
            self._tombstones = np.union1d(self._tombstones, ids)
        else:
            # IVF with a hash-table direct map only accepts IDSelectorArray here.
            removed = self._index.remove_ids(faiss.IDSelectorArray(ids))
            if removed != ids.size:
                raise VectorIndexError(
                    f"FAISS removed {removed} of {ids.size} vectors: the index is inconsistent"
                )
        self._ids = np.delete(self._ids, np.searchsorted(self._ids, ids))
        self._maybe_grow()
        return int(ids.size)

    def replace(self, ids: Any, vectors: np.ndarray) -> None:
        """Set the vectors of ``ids`` (added if absent, overwritten if present)."""
        ids = _as_ids(ids)
        self.remove(ids)
        self.add(ids, vectors)

    def reconstruct(self, ids: Any) -> np.ndarray:
        """The stored (normalised) vectors of ``ids`` [N, D]; unknown ids raise UsageError."""
        ids = _as_ids(ids)
        missing = ids[~self._mask(ids)]
        if missing.size:
            raise UsageError(f"{missing.size} ids are not in the index (e.g. {int(missing[0])})")
        if not ids.size:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._vectors(ids)

    def _vectors(self, ids: np.ndarray) -> np.ndarray:
        """Exact vectors of live ids: from the index itself, or from disk for compressed kinds."""
        if self._exact is not None:
            return self._exact.get(ids)
        return self._index.reconstruct_batch(ids)

    # ------------------------------------------------------------ search

    def search(
        self, queries: np.ndarray, k: int, *, ids: Any | None = None, exclude: Any | None = None
    ) -> list[Hits]:
        """The ``k`` best ids for each query [Q, D] (or one [D] vector); one :class:`Hits` per query.

        ``ids``: only these ids may be returned (a filter; None = all), e.g. the result of
        ``store.queries.filter_video_ids``. ``exclude``: ids that must not be returned (the query
        video's own study, say): cheaper than an ``ids`` list of everything else. Fewer than ``k``
        hits come back when fewer candidates exist; never -1 padding.
        """
        q = _as_matrix(queries, self.dim, self.config.normalize)
        k = int(k)
        if k <= 0:
            raise UsageError("k must be positive")
        if exclude is not None:
            exclude = np.unique(_as_ids(exclude))
            if ids is None and exclude.size <= 1024:
                return self._search_excluding(q, k, exclude)
            ids = np.setdiff1d(self._ids if ids is None else _as_ids(ids), exclude)
        if ids is None:
            return self._search_all(q, k)
        cand = _as_ids(ids)
        if cand.size > 4 * self.config.exact_subset_max:
            # Broad filter: skip the intersection; the selector ignores unknown ids.
            if not np.all(cand[1:] > cand[:-1]):
                cand = np.unique(cand)
            return self._search_selected(q, k, cand)
        subset = self._live(cand)
        if not subset.size:
            return [Hits(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in range(len(q))]
        if subset.size == self._ids.size:
            return self._search_all(q, k)
        exact_max = self.config.exact_subset_max * (8 if self.compressed else 1)
        if self._kind != "flat" and subset.size <= exact_max:
            return self.search_exact(q, k, ids=subset)
        return self._search_selected(q, k, subset)

    def _search_excluding(self, q: np.ndarray, k: int, exclude: np.ndarray) -> list[Hits]:
        """Top k+len(exclude), then drop the excluded: the same top-k as filtering them out."""
        out = []
        for h in self._search_all(q, k + int(exclude.size)):
            keep = ~np.isin(h.ids, exclude)
            out.append(Hits(h.ids[keep][:k], h.scores[keep][:k]))
        return out

    def search_exact(self, queries: np.ndarray, k: int, *, ids: Any | None = None) -> list[Hits]:
        """Exact search by brute force over ``ids`` (all ids when None); the reference for recall."""
        q = _as_matrix(queries, self.dim, self.config.normalize)
        subset = self._ids if ids is None else self._live(ids)
        if self._kind == "flat" and ids is None:
            return self._search_all(q, k)
        out: list[Hits] = []
        kk = min(int(k), subset.size)
        if not kk:
            return [Hits(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in range(len(q))]
        # Gather in chunks so a large subset never needs its whole matrix in memory at once.
        chunk = 65536
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_i = np.empty((len(q), 0), dtype=np.int64)
        for sub in batches(subset, chunk):
            scores = q @ self._vectors(np.asarray(sub, np.int64)).T
            best_s = np.hstack([best_s, scores])
            best_i = np.hstack([best_i, np.broadcast_to(sub, scores.shape)])
            if best_s.shape[1] > kk:
                top = np.argpartition(-best_s, kk - 1, axis=1)[:, :kk]
                best_s = np.take_along_axis(best_s, top, 1)
                best_i = np.take_along_axis(best_i, top, 1)
        order = np.argsort(-best_s, axis=1, kind="stable")
        for r in range(len(q)):
            out.append(Hits(best_i[r, order[r]].copy(), best_s[r, order[r]].astype(np.float32)))
        return out

    def _params(self, selector: faiss.IDSelector | None, fraction: float) -> faiss.SearchParameters | None:
        if self._kind.startswith("ivf"):
            # Probe more lists as the filter keeps fewer ids, up to 16x (past that a scan reads most
            # of the codes; a query that still finds fewer than k is answered exactly instead).
            scaled = math.ceil(self._index.nprobe / max(fraction, 1e-9))
            nprobe = min(self._index.nlist, scaled, 16 * self._index.nprobe)
            return faiss.SearchParametersIVF(sel=selector, nprobe=int(nprobe))
        if self._kind == "hnsw":
            ef = int(min(4096, math.ceil(self.config.ef_search / max(fraction, 1e-9))))
            return faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def _run(self, q: np.ndarray, k: int, params: faiss.SearchParameters | None) -> list[Hits]:
        wanted = k * self.config.refine_factor if self.compressed else k
        k_eff = max(1, min(wanted, self.ntotal + int(self._tombstones.size)))
        with _threads_for(len(q)):
            scores, labels = self._index.search(q, k_eff, params=params)
        out = []
        for row, (s, i) in enumerate(zip(scores, labels, strict=True)):
            keep = i >= 0
            ids, sc = i[keep].astype(np.int64), s[keep].astype(np.float32)
            if self.compressed and ids.size:
                ids, sc = self._rerank(q[row], ids)
            out.append(Hits(ids[:k], sc[:k]))
        return out

    def _rerank(self, q: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The candidates of a compressed index ordered by their exact scores (vectors from disk)."""
        exact = self._vectors(cand) @ q
        order = np.argsort(-exact, kind="stable")
        return cand[order], exact[order].astype(np.float32)

    def _search_all(self, q: np.ndarray, k: int) -> list[Hits]:
        if not self.ntotal:
            return [Hits(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in range(len(q))]
        if self._kind == "hnsw" and self._tombstones.size:
            sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(self._tombstones))
            hits = self._run(q, k, self._params(sel, self.ntotal / (self.ntotal + self._tombstones.size)))
        else:
            hits = self._run(q, k, None)
        return self._fill_short(q, k, hits, None)

    def _search_selected(self, q: np.ndarray, k: int, subset: np.ndarray) -> list[Hits]:
        sel = faiss.IDSelectorBatch(subset)
        hits = self._run(q, k, self._params(sel, min(1.0, subset.size / max(self.ntotal, 1))))
        return self._fill_short(q, k, hits, subset)

    def _fill_short(self, q: np.ndarray, k: int, hits: list[Hits], subset: np.ndarray | None) -> list[Hits]:
        """ANN can return fewer than k hits (few lists probed, dead graph regions): redo those exactly."""
        if self._kind == "flat":
            return hits
        want = min(k, self.ntotal if subset is None else subset.size)
        short = [r for r, h in enumerate(hits) if len(h) < want]
        if short and subset is not None:
            subset = self._live(subset)
            want = min(k, subset.size)
            short = [r for r in short if len(hits[r]) < want]
        if short:
            for r, h in zip(short, self.search_exact(q[short], k, ids=subset), strict=True):
                hits[r] = h
        return hits

    def set_search_params(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Trade recall for speed at query time (IVF ``nprobe``, HNSW ``efSearch``)."""
        if nprobe is not None:
            self.config.nprobe = int(nprobe)
            if self._kind.startswith("ivf"):
                self._index.nprobe = min(int(nprobe), self._index.nlist)
        if ef_search is not None:
            self.config.ef_search = int(ef_search)
            if self._kind == "hnsw":
                faiss.downcast_index(self._index.index).hnsw.efSearch = int(ef_search)

    # ------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: temp file in the same folder, fsync, ``os.replace``."""
        path = Path(path)
        if self._kind == "hnsw" and self._tombstones.size:
            self.rebuild("hnsw")
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._exact is not None:  # exact vectors first: the index on disk never names a missing row
            self._exact.flush(path)
        with atomic_path(path) as tmp:
            faiss.write_index(self._index, str(tmp))
        if self._exact is None:  # a space that left a compressed kind: its vector files are stale
            for stale in vector_paths(path):
                stale.unlink(missing_ok=True)

    @classmethod
    def load(
        cls, path: str | os.PathLike, config: IndexConfig | None = None, *, mmap: bool | None = False
    ) -> VectorIndex:
        """Open a saved index. ``mmap=True``: memory-map the vectors, read-only (fast open, shared
        pages). ``mmap=None``: memory-map the compressed kinds only (read-only), read others whole."""
        path = Path(path)
        if not path.is_file():
            raise VectorIndexError(f"no vector index at {path}")
        if mmap is None:  # the header names the kind: one read of the file, not two
            try:
                mmap = read_header(path).kind in COMPRESSED
            except (OSError, ValueError):
                mmap = False  # FAISS's own reader says what is wrong below
        flags = (faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY) if mmap else 0
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            raise VectorIndexError(f"cannot read vector index {path}: {str(exc).splitlines()[0]}") from exc
        self = cls(index.d, config)
        self.read_only = mmap
        self._index = index
        ivf_kinds = {
            faiss.IndexIVFFlat: "ivf",
            faiss.IndexIVFScalarQuantizer: "ivf-sq8",
            faiss.IndexIVFPQ: "ivf-pq",
        }
        kind = next((k for t, k in ivf_kinds.items() if type(index) is t), None)
        if kind is not None:
            self._kind = kind
            ids = cls._ivf_ids(index)
            if self.config.nprobe:
                index.nprobe = min(int(self.config.nprobe), index.nlist)
            if kind in COMPRESSED:
                try:
                    self._exact = VectorFile(self.dim, path)
                except VectorFileError as exc:
                    raise VectorIndexError(str(exc)) from exc
        elif isinstance(index, faiss.IndexIDMap2):
            sub = faiss.downcast_index(index.index)
            self._kind = "hnsw" if isinstance(sub, faiss.IndexHNSW) else "flat"
            if self._kind == "hnsw":
                sub.hnsw.efSearch = self.config.ef_search
            ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        else:
            raise VectorIndexError(f"{path} holds a {type(index).__name__}, not an echosearch index")
        self._ids = np.sort(ids)
        self._trained_n = self.ntotal
        return self

    @staticmethod
    def _ivf_ids(index: faiss.IndexIVF) -> np.ndarray:
        inv = index.invlists
        parts = []
        for lst in range(index.nlist):
            n = inv.list_size(lst)
            if n:
                parts.append(faiss.rev_swig_ptr(inv.get_ids(lst), n).copy())
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)
