"""echosearch.index: VectorIndex (exact/IVF/IVF-SQ8/IVF-PQ/HNSW, filters, remove/replace, save/load),
FrameStore, spaces."""

from __future__ import annotations

import numpy as np
import pytest

from echosearch.errors import UsageError
from echosearch.index import FrameStore, IndexConfig, Space, SpaceInfo, VectorIndex, list_spaces
from echosearch.index.spaces import report_space_name

D = 512


def clustered(n: int, d: int = D, n_clusters: int = 300, spread: float = 2.0, seed: int = 0) -> np.ndarray:
    """Unit cluster centres plus isotropic noise of norm ~``spread`` (embeddings cluster by view/patient)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n_clusters, d)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    lab = rng.integers(0, n_clusters, n)
    return c[lab] + (spread / np.sqrt(d)) * rng.standard_normal((n, d)).astype(np.float32)


def brute_force(base_ids, base, queries, k, subset=None):
    """Reference top-k by cosine with numpy (independent of FAISS)."""
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    ids = np.asarray(base_ids)
    if subset is not None:
        keep = np.isin(ids, subset)
        b, ids = b[keep], ids[keep]
    s = q @ b.T
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return ids[order], np.take_along_axis(s, order, 1)


def recall(hits, ref_ids, k=10):
    return float(np.mean([len(set(h.ids[:k]) & set(r[:k])) / k for h, r in zip(hits, ref_ids, strict=True)]))


# ---------------------------------------------------------------- small indexes, every kind

KINDS = {
    "flat": IndexConfig(),
    "ivf": IndexConfig(flat_max=100, exact_subset_max=50),
    "hnsw": IndexConfig(flat_max=100, ann="hnsw", exact_subset_max=50),
    "ivf-sq8": IndexConfig(flat_max=100, ann="ivf-sq8", exact_subset_max=50),
    "ivf-pq": IndexConfig(flat_max=100, ann="ivf-pq", exact_subset_max=50, pq_m=16),
}


def tol(idx) -> float:
    """Score tolerance: compressed kinds re-rank with float16 copies of the vectors."""
    return 2e-3 if idx.compressed else 1e-5


@pytest.fixture(params=list(KINDS))
def small(request):
    allx = clustered(3050, d=64, n_clusters=30, spread=1.0, seed=1)
    x, q = allx[:3000], allx[3000:]  # queries: held-out points of the same archive
    ids = np.arange(3000, dtype=np.int64) * 7 + 5  # ids are sparse, like real video ids
    idx = VectorIndex.build(ids, x, config=IndexConfig.from_dict(KINDS[request.param].to_dict()))
    assert idx.kind == request.param
    return idx, ids, x, q


def test_search_finds_itself_and_k_beyond_ntotal(small):
    idx, ids, x, q = small
    hits = idx.search(x[:20], 5)
    assert [h.ids[0] for h in hits] == list(ids[:20])
    assert np.allclose([h.scores[0] for h in hits], 1.0, atol=tol(idx))
    everything = idx.search(x[0], 10_000)[0]
    assert len(everything) == 3000 and set(everything.ids) == set(ids)
    assert np.all(np.diff(everything.scores) <= 1e-6)
    few = idx.search(x[0], 50, ids=ids[:3])[0]
    assert sorted(few.ids) == sorted(ids[:3])
    assert len(idx.search(x[0], 5, ids=[1, 2])[0]) == 0  # ids not in the index


@pytest.mark.parametrize("n_subset", [3, 40, 600, 2500])
def test_filtered_equals_exact_over_subset(small, n_subset):
    idx, ids, x, q = small
    rng = np.random.default_rng(n_subset)
    subset = rng.choice(ids, n_subset, replace=False)
    ref_ids, ref_scores = brute_force(ids, x, q, 10, subset)
    hits = idx.search(q, 10, ids=subset)
    for h in hits:
        assert np.isin(h.ids, subset).all() and len(h) == min(10, n_subset)
    exact_max = idx.config.exact_subset_max * (8 if idx.compressed else 1)
    if idx.kind == "flat" or n_subset <= exact_max:
        for h, r, rs in zip(hits, ref_ids, ref_scores, strict=True):
            assert np.allclose(h.scores, rs, atol=tol(idx))
            if idx.compressed:  # float16 vectors may swap near-ties at the edge of the top k
                assert len(set(h.ids) & set(r)) >= 0.9 * len(r)
            else:
                assert list(h.ids) == list(r)
    else:
        assert recall(hits, ref_ids) >= 0.95


def test_exclude_and_unknown_ids_in_filter(small):
    idx, ids, x, q = small
    own = [h.ids[:3] for h in idx.search(q[:5], 3)]
    for qq, ex in zip(q[:5], own, strict=True):
        ref_ids, _ = brute_force(ids, x, qq[None], 10, np.setdiff1d(ids, ex))
        got = idx.search(qq, 10, exclude=ex)[0]
        assert not np.isin(got.ids, ex).any() and len(got) == 10
        assert recall([got], ref_ids) >= 0.9
    # a broad filter mixed with ids the index does not hold (e.g. videos that failed to embed)
    allowed = np.concatenate([ids[::2], np.arange(1, 5000, 7) * 7 + 6])
    for h in idx.search(q, 10, ids=allowed):
        assert np.isin(h.ids, ids[::2]).all() and len(h) == 10
    both = idx.search(q[0], 5, ids=ids[:100], exclude=ids[:98])[0]
    assert sorted(both.ids) == sorted(ids[98:100])


def test_remove_and_replace(small):
    idx, ids, x, q = small
    assert idx.remove(ids[:10]) == 10
    assert idx.remove(ids[:10]) == 0
    assert idx.ntotal == 2990 and ids[0] not in idx
    for h in idx.search(x[:10], 20):
        assert not np.isin(h.ids, ids[:10]).any()
    # Replace: ids[20] now carries x[0]'s vector; re-adding removed ids works too.
    idx.replace([ids[20], ids[0]], x[[0, 1]])
    assert idx.ntotal == 2991
    assert idx.search(x[0], 1)[0].ids[0] == ids[20]
    assert idx.search(x[1], 2)[0].ids.tolist().count(ids[0]) == 1
    np.testing.assert_allclose(idx.reconstruct([ids[20]])[0], x[0] / np.linalg.norm(x[0]), atol=tol(idx))
    with pytest.raises(UsageError):
        idx.add([ids[30]], x[:1])  # already present: must use replace
    with pytest.raises(UsageError):
        idx.reconstruct([ids[5]])


def test_save_load_equality(small, tmp_path):
    idx, ids, x, q = small
    idx.remove(ids[::5])
    p = tmp_path / "index.faiss"
    idx.save(p)
    assert not list(tmp_path.glob("*.tmp"))
    for loaded in (VectorIndex.load(p, idx.config), VectorIndex.load(p, idx.config, mmap=True)):
        assert loaded.kind == idx.kind and loaded.ntotal == idx.ntotal
        assert np.array_equal(loaded.ids(), idx.ids())
        np.testing.assert_array_equal(loaded.reconstruct(ids[1:50:5]), idx.reconstruct(ids[1:50:5]))
        for a, b in zip(loaded.search(q, 10), idx.search(q, 10), strict=True):
            assert list(a.ids) == list(b.ids)
    ro = VectorIndex.load(p, idx.config, mmap=True)
    with pytest.raises(UsageError):
        ro.add([1], x[:1])


def test_flat_grows_into_ann_and_keeps_everything():
    cfg = IndexConfig(flat_max=500)
    x = clustered(1200, d=32, n_clusters=10, seed=4)
    idx = VectorIndex(32, cfg)
    idx.add(np.arange(400), x[:400])
    assert idx.kind == "flat"
    idx.add(np.arange(400, 1200), x[400:])
    assert idx.kind == "ivf" and idx.ntotal == 1200
    assert [h.ids[0] for h in idx.search(x[::100], 1)] == list(range(0, 1200, 100))


def test_bad_input():
    idx = VectorIndex(8)
    with pytest.raises(UsageError):
        idx.add([1, 2], np.ones((2, 9), np.float32))
    with pytest.raises(UsageError):
        idx.add([1, 1], np.ones((2, 8), np.float32))
    with pytest.raises(UsageError):
        idx.search(np.ones(8, np.float32), 0)
    assert len(idx.search(np.ones(8, np.float32), 5)[0]) == 0
    with pytest.raises(UsageError):
        VectorIndex.build([1], np.ones((1, 8)), config=IndexConfig(flat_max=0, ann="annoy"))


# ---------------------------------------------------------------- 100k clustered vectors


@pytest.fixture(scope="module")
def big():
    n, nq = 100_000, 200
    x = clustered(n + nq, spread=2.4, seed=7)
    base, q = x[:n], x[n:]
    ids = np.arange(n, dtype=np.int64) + 1
    idx = VectorIndex.build(ids, base)
    return idx, ids, base, q


@pytest.mark.slow
def test_100k_ann_recall_filters_remove_save(big, tmp_path):
    idx, ids, base, q = big
    assert idx.kind == "ivf"
    ref_ids, _ = brute_force(ids, base, q, 10)
    assert recall(idx.search(q, 10), ref_ids) >= 0.95
    # exact reference through the index agrees with numpy
    assert recall(idx.search_exact(q[:20], 10), ref_ids[:20]) == 1.0

    rng = np.random.default_rng(0)
    # A very selective filter (0.5%) is answered exactly: equal to exact search over the subset.
    subset = np.sort(rng.choice(ids, 500, replace=False))
    sub_ids, sub_scores = brute_force(ids, base, q[:50], 10, subset)
    for h, r, rs in zip(idx.search(q[:50], 10, ids=subset), sub_ids, sub_scores, strict=True):
        assert list(h.ids) == list(r) and np.allclose(h.scores, rs, atol=1e-5)
    # A broad filter (30%) goes through the IDSelector inside the ANN search.
    subset = np.sort(rng.choice(ids, 30_000, replace=False))
    sub_ids, _ = brute_force(ids, base, q[:50], 10, subset)
    hits = idx.search(q[:50], 10, ids=subset)
    assert all(np.isin(h.ids, subset).all() and len(h) == 10 for h in hits)
    assert recall(hits, sub_ids) >= 0.95

    # remove / replace at scale
    top = np.array([h.ids[0] for h in idx.search(q[:20], 1)])
    idx.remove(top)
    assert not any(np.isin(h.ids, top).any() for h in idx.search(q[:20], 10))
    idx.replace(top[:5], q[:5])
    assert [h.ids[0] for h in idx.search(q[:5], 1)] == list(top[:5])

    p = tmp_path / "index.faiss"
    idx.save(p)
    loaded = VectorIndex.load(p, mmap=True)
    assert loaded.ntotal == idx.ntotal and np.array_equal(loaded.ids(), idx.ids())
    for a, b in zip(loaded.search(q[:30], 10), idx.search(q[:30], 10), strict=True):
        assert list(a.ids) == list(b.ids)


# ---------------------------------------------------------------- frame store


def test_frame_store_roundtrip_remove_compact(tmp_path):
    rng = np.random.default_rng(0)
    fs = FrameStore(tmp_path / "frames", dim=16, shard_rows=50)
    vids = {
        i: rng.standard_normal((int(rng.integers(1, 20)), 16)).astype(np.float32) for i in range(100, 130)
    }
    fs.add_many(list(vids)[:10], [vids[i] for i in list(vids)[:10]])
    for i in list(vids)[10:]:
        fs.add(i, vids[i])
    assert len(list((tmp_path / "frames").glob("shard-*.f16"))) > 1  # rolled over
    reader = FrameStore(tmp_path / "frames")  # another handle sees the same data
    assert len(reader) == 30
    for i, v in vids.items():
        got = reader.get(i)
        assert got.dtype == np.float16 and got.shape == v.shape
        np.testing.assert_array_equal(got, v.astype(np.float16))

    assert fs.remove([100, 101, 999]) == 2
    fs.add(102, vids[100])  # replace
    vids[102] = vids[100]
    del vids[100], vids[101]
    assert 100 not in fs and fs.garbage_fraction() > 0
    reader.reload()
    assert 101 not in reader and np.array_equal(reader.get(102), vids[102].astype(np.float16))

    def check(store):
        m = store.matrix()
        assert sorted(m.ids.tolist()) == sorted(vids)
        assert m.frames.shape == (sum(len(v) for v in vids.values()), 16)
        for n, i in enumerate(m.ids):
            np.testing.assert_array_equal(
                m.frames[m.offsets[n] : m.offsets[n + 1]], vids[int(i)].astype(np.float16)
            )
        # scoring a prompt over the archive: mean over frames per video
        prompt = rng.standard_normal(16).astype(np.float32)
        scores = m.per_video(m.frames.astype(np.float32) @ prompt)
        want = [vids[int(i)].astype(np.float16).astype(np.float32).mean(0) @ prompt for i in m.ids]
        np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)

    check(fs)
    fs.compact()
    assert fs.garbage_fraction() == 0
    check(fs)
    check(FrameStore(tmp_path / "frames"))


def test_frame_store_ignores_torn_record_and_bad_shapes(tmp_path):
    fs = FrameStore(tmp_path / "f", dim=4)
    fs.add(1, np.ones((3, 4)))
    with open(tmp_path / "f" / "map.log", "ab") as f:
        f.write(np.array([2, 0], dtype=np.int64).tobytes())  # half a record, as after a crash
    again = FrameStore(tmp_path / "f")
    assert again.ids().tolist() == [1]
    with pytest.raises(UsageError):
        fs.add(2, np.ones((3, 5)))
    with pytest.raises(UsageError):
        FrameStore(tmp_path / "f", dim=8)
    with pytest.raises(UsageError):
        FrameStore(tmp_path / "missing")


# ---------------------------------------------------------------- spaces


def test_spaces_layout(tmp_path):
    sp = Space.create(tmp_path, SpaceInfo(name="echoclip", model_name="echoclip", model_version="1", dim=8))
    assert sp.root == tmp_path / "spaces" / "echoclip" and sp.info_path.is_file()
    idx = sp.load_index()
    assert idx.ntotal == 0 and idx.dim == 8
    idx.add([3, 4], np.eye(8, dtype=np.float32)[:2])
    sp.save_index(idx)
    sp.frames().add(3, np.ones((2, 8)))
    rep = Space.create(tmp_path, SpaceInfo(name=report_space_name("echoclip"), model_name="echoclip",
                                           model_version="1", dim=8, kind="report"))  # fmt: skip
    assert [s.name for s in list_spaces(tmp_path)] == ["echoclip", "echoclip-reports"]
    again = Space.open(tmp_path, "echoclip")
    assert again.load_index().ids().tolist() == [3, 4] and 3 in again.frames()
    assert (again.frames_dir / "map.log").is_file() and again.index_path.name == "index.faiss"
    with pytest.raises(UsageError):
        rep.frames()
    with pytest.raises(UsageError):
        Space.create(tmp_path, SpaceInfo(name="echoclip", model_name="other", dim=8))
    with pytest.raises(UsageError):
        Space.open(tmp_path, "nope")
    with pytest.raises(UsageError):
        Space.create(tmp_path, SpaceInfo(name="../evil", model_name="m", dim=8))


def test_a_search_of_one_query_runs_on_one_thread_and_leaves_the_thread_count_as_it_was(monkeypatch):
    import faiss

    from echosearch.index import faiss_index

    index = VectorIndex(8)
    rng = np.random.default_rng(0)
    index.add(np.arange(50), rng.standard_normal((50, 8)).astype(np.float32))
    seen = []
    real = index._index.search

    def watching(*args, **kwargs):
        seen.append(faiss.omp_get_max_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(index._index, "search", watching)
    before = faiss.omp_get_max_threads()
    single = index.search(rng.standard_normal(8).astype(np.float32), 5)[0]
    index.search(rng.standard_normal((faiss_index.FEW_QUERIES + 1, 8)).astype(np.float32), 5)
    assert seen == [1, before] and faiss.omp_get_max_threads() == before
    assert len(single.ids) == 5
