"""An index that fits the archive: the kind chosen by size and memory budget, compressed kinds with
exact vectors on disk (re-ranking, append-only saves, compaction), the streamed build, and
`echosearch reindex` / `index --index-memory` on a real indexed archive."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from echosearch.errors import UsageError
from echosearch.index import IndexConfig, Space, VectorIndex
from echosearch.index.faiss_index import VectorIndexError
from echosearch.index.spaces import parse_memory
from echosearch.index.vectorfile import vector_paths
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.search import Engine
from echosearch.synth import synthesize_archive
from tests.test_index import brute_force, clustered, recall

GB = 1024**3


def test_kind_follows_size_and_memory_budget():
    free = IndexConfig()
    assert [free.kind_for(n) for n in (10, 50_000, 50_001, 10**8)] == ["flat", "flat", "ivf", "ivf"]
    eight = IndexConfig(memory_budget=8 * GB)
    # 512-d float32 vectors: ~2 KiB each; SQ8 codes ~0.5 KiB; PQ below that.
    assert eight.kind_for(40_000) == "flat"
    assert eight.kind_for(1_000_000) == "ivf"
    assert eight.kind_for(10_000_000) == "ivf-sq8"
    assert eight.kind_for(100_000_000) == "ivf-pq"
    assert eight.pq_m_for(100_000_000, 512) == 32  # the most bytes per vector that fit
    assert IndexConfig(memory_budget=1 * GB).kind_for(40_000) == "flat"
    assert IndexConfig(memory_budget=50 * 2**20).kind_for(40_000) == "ivf-sq8"  # flat would not fit
    assert IndexConfig(ann="hnsw", memory_budget=GB).kind_for(10**7) == "hnsw"  # forced kinds win
    with pytest.raises(UsageError):
        IndexConfig(ann="annoy").kind_for(10**6)
    with pytest.raises(UsageError):
        IndexConfig(pq_m=7).pq_m_for(10**6, 512)


def test_parse_memory():
    assert parse_memory("8GB") == 8 * GB
    assert parse_memory("8 gib") == 8 * GB
    assert parse_memory("512M") == 512 * 2**20
    assert parse_memory("1.5G") == int(1.5 * GB)
    assert parse_memory("4096") == 4096
    assert parse_memory(None) is None
    for bad in ("lots", "-1GB", "8XB", "0"):
        with pytest.raises(UsageError):
            parse_memory(bad)


@pytest.fixture(scope="module")
def archive20k():
    allx = clustered(20_100, d=64, n_clusters=60, spread=1.0, seed=3)
    ids = np.arange(20_000, dtype=np.int64) * 3 + 1
    return ids, allx[:20_000], allx[20_000:]


def _chunks(ids, x, size=3000):
    return lambda: ((ids[i : i + size], x[i : i + size]) for i in range(0, len(ids), size))


@pytest.mark.parametrize("kind", ["ivf", "ivf-sq8", "ivf-pq"])
def test_streamed_build_recall_filters_and_files(archive20k, tmp_path, kind):
    ids, x, q = archive20k
    cfg = IndexConfig(flat_max=1000, pq_m=16, nprobe=32)
    path = tmp_path / "index.faiss"
    built = VectorIndex.build_streamed(_chunks(ids, x), len(ids), 64, path, cfg, kind=kind)
    assert built.kind == kind and built.ntotal == len(ids)
    has_files = all(p.is_file() for p in vector_paths(path))
    assert has_files == (kind != "ivf")  # only compressed kinds keep exact vectors beside the index
    ref, ref_scores = brute_force(ids, x, q, 10)
    for idx in (built, VectorIndex.load(path, cfg), VectorIndex.load(path, cfg, mmap=None)):
        assert idx.kind == kind
        hits = idx.search(q, 10)
        assert recall(hits, ref) >= 0.95
        # re-ranked scores are the exact cosines (within float16), not the codes' approximations
        for h, r, rs in zip(hits, ref, ref_scores, strict=True):
            common = np.isin(h.ids, r)
            assert np.allclose(h.scores[common], rs[np.isin(r, h.ids)], atol=2e-3)
    assert VectorIndex.load(path, cfg, mmap=None).read_only == (kind != "ivf")
    subset = ids[::50]  # 400 ids: answered exactly, over the exact vectors
    sub_ref, _ = brute_force(ids, x, q[:20], 10, subset)
    for h, r in zip(built.search(q[:20], 10, ids=subset), sub_ref, strict=True):
        assert np.isin(h.ids, subset).all() and len(set(h.ids) & set(r)) >= 9


def test_compressed_index_appends_grows_and_compacts(archive20k, tmp_path):
    ids, x, q = archive20k
    # A budget that holds 8,000 float32 vectors of 64-d but not 20,000: the index compresses itself.
    cfg = IndexConfig(flat_max=1000, memory_budget=int(8000 * (4 * 64 + 32) / 0.8))
    idx = VectorIndex(64, cfg)
    idx.add(ids[:3000], x[:3000])
    assert idx.kind == "ivf"
    idx.add(ids[3000:], x[3000:])
    assert idx.kind == "ivf-sq8" and idx.ntotal == len(ids)
    path = tmp_path / "index.faiss"
    idx.save(path)
    vec_path, ids_path = vector_paths(path)
    rows = ids_path.stat().st_size // 8
    assert rows >= len(ids)

    # A replaced vector is appended (the last row wins), a removed id stays as garbage until compaction.
    loaded = VectorIndex.load(path, cfg)
    loaded.replace(ids[:5], x[100:105])
    loaded.remove(ids[5:10])
    loaded.save(path)
    assert ids_path.stat().st_size // 8 == rows + 5
    again = VectorIndex.load(path, cfg)
    assert again.ntotal == len(ids) - 5 and ids[7] not in again
    assert [h.ids[0] for h in again.search(x[100:105], 1)] in (list(ids[:5]), list(ids[100:105]))
    unit = x[100:105] / np.linalg.norm(x[100:105], axis=1, keepdims=True)
    np.testing.assert_allclose(again.reconstruct(ids[:5]), unit, atol=2e-3)

    # A crash mid-append leaves a torn tail: ignored on open, cut before the next append.
    with open(vec_path, "ab") as f:
        f.write(b"\x01\x02\x03")
    torn = VectorIndex.load(path, cfg)
    assert torn.ntotal == again.ntotal
    torn.replace(ids[20:21], x[20:21])
    torn.save(path)
    assert vec_path.stat().st_size == (ids_path.stat().st_size // 8) * 64 * 2

    # Compaction: a streamed rebuild writes only the live rows.
    VectorIndex.build_streamed(again.iter_vectors, again.ntotal, 64, path, cfg)
    assert ids_path.stat().st_size // 8 == again.ntotal

    # Lost exact vectors are an error naming the repair, never silently wrong scores.
    vec_path.unlink()
    with pytest.raises(VectorIndexError, match="verify --repair"):
        VectorIndex.load(path, cfg)


# ---------------------------------------------------------------- a real indexed archive


def _opts(archive: Path, data: Path, bundle: Path, **kw) -> IndexOptions:
    return IndexOptions(
        paths=[str(archive)], data_dir=str(data), model=str(bundle), workers=0,
        frames="uniform:4", progress=False, commit_every=4, **kw,
    )  # fmt: skip


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_task_bundle) -> dict:
    root = tmp_path_factory.mktemp("scale")
    first, second, data = root / "a", root / "b", root / "data"
    synthesize_archive(first, patients=2, seed=31, frames=(6, 8))
    synthesize_archive(second, patients=1, seed=32, frames=(6, 8))
    summary = run_index(_opts(first, data, tiny_task_bundle, index_memory=8 * GB))
    return {"data": data, "second": second, "space": summary.space, "bundle": tiny_task_bundle}


def _neighbours(data: Path, ids: list[int] | None = None) -> dict[int, list[int]]:
    """The 5 most similar clips of some clips, through the Engine (filters and all)."""
    with Engine.open(data) as engine:
        ids = ids or [int(v) for v in engine.index.ids()[:6]]
        return {v: [h.video_id for h in engine.search_clip(v, k=5).results] for v in ids}


def test_reindex_and_index_memory_on_an_archive(indexed, tmp_path, cli):
    data = tmp_path / "data"
    shutil.copytree(indexed["data"], data)
    space = Space.open(data, indexed["space"])
    assert space.index_config.memory_budget == 8 * GB  # `index --index-memory` is kept in space.json
    before = _neighbours(data)

    out = cli("reindex", "--data", str(data), "--kind", "ivf-sq8", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)["spaces"][0]
    assert result["before"]["kind"] == "flat" and result["after"]["kind"] == "ivf-sq8"
    assert all(p.is_file() for p in vector_paths(space.index_path))
    assert _neighbours(data) == before  # re-ranked with exact vectors: the same neighbours
    assert cli("verify", "--data", str(data)).returncode == 0

    # New clips go into the compressed index (appended exact vectors); verify stays clean.
    summary = run_index(_opts(indexed["second"], data, indexed["bundle"]))
    assert summary.new > 0
    with Engine.open(data) as engine:
        assert engine.index.kind == "ivf-sq8" and engine.index.read_only  # memory-mapped for readers
        grown = _neighbours(data, list(before))
    assert cli("verify", "--data", str(data)).returncode == 0

    # Lost exact vectors: verify names the damage, --repair rebuilds them from the frame store.
    for p in vector_paths(space.index_path):
        p.unlink()
    bad = cli("verify", "--data", str(data))
    assert bad.returncode != 0 and "verify --repair" in bad.stdout + bad.stderr
    assert cli("verify", "--data", str(data), "--repair").returncode == 0
    assert cli("verify", "--data", str(data)).returncode == 0

    # Back to the kind that suits the size (flat for a small archive); stale vector files go.
    out = cli("reindex", "--data", str(data))
    assert out.returncode == 0, out.stderr
    assert "-> flat" in out.stdout
    assert not any(p.exists() for p in vector_paths(space.index_path))
    assert _neighbours(data, list(before)) == grown


def test_reindex_usage_errors(indexed, tmp_path, cli):
    bad = cli("reindex", "--data", str(indexed["data"]), "--index-memory", "lots")
    assert bad.returncode == 2 and "not a memory size" in bad.stderr
    bad = cli("reindex", "--data", str(indexed["data"]), "--space", "nope")
    assert bad.returncode == 2 and "no space 'nope'" in bad.stderr
    empty = cli("reindex", "--data", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "index some clips first" in empty.stderr
