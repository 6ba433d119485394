"""Query speed and quality of the vector side at archive scale (synthetic clustered 512-d vectors).

For each size N it prints: index kind and build time, index size and process memory, p50/p95 of a
single video->video query (unfiltered, and with a selective 0.5% filter that is answered exactly),
exact brute-force latency for comparison, recall@10 of the index against exact search, and the p50/p95
of a text->video query *including* text encoding with the EchoCLIP text tower in bf16
(``load_model("arch:echoclip")``: the real architecture with random weights costs the same as the
real model). Vectors are clustered (unit centres + noise, see ``clustered``), not uniform: real
embeddings cluster by view, machine and patient, and uniform random vectors make every ANN look bad.

    .venv/bin/python benchmarks/query.py                       # 10k and 100k
    .venv/bin/python benchmarks/query.py --sizes 10000 100000 1000000
    .venv/bin/python benchmarks/query.py --no-text             # vector side only
    .venv/bin/python benchmarks/query.py --text-model PATH_OR_NAME --precision bf16

Targets at 1M (issue 5): video->video p50 <= 10 ms, text->video p50 <= 50 ms, recall@10 >= 0.95.
On a shared machine the numbers are noisy: run it when the CPUs are quiet.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from echosearch.index import IndexConfig, VectorIndex

TEXT_QUERIES = [
    "SEVERE DILATED LEFT VENTRICLE.",
    "ECHO DENSITY IN RIGHT VENTRICLE SUGGESTIVE OF CATHETER, PACER LEAD, OR ICD LEAD.",
    "A BIOPROSTHETIC STENT-VALVE IS PRESENT IN THE AORTIC POSITION.",
    "THE LEFT VENTRICULAR EJECTION FRACTION IS ESTIMATED TO BE 35%.",
    "MODERATE MITRAL REGURGITATION.",
]


def clustered(n: int, d: int, n_clusters: int, spread: float, seed: int) -> np.ndarray:
    """``n`` vectors: a random unit centre each (of ``n_clusters``) plus noise of norm ~``spread``."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n_clusters, d), dtype=np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    out = np.empty((n, d), dtype=np.float32)
    step = 100_000
    for i in range(0, n, step):
        m = min(step, n - i)
        out[i : i + m] = c[rng.integers(0, n_clusters, m)]
        out[i : i + m] += (spread / np.sqrt(d)) * rng.standard_normal((m, d), dtype=np.float32)
    return out


def exact_topk(b: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force top-k row numbers by inner product over unit rows ``b``, in chunks (the reference)."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for i in range(0, len(b), 200_000):
        s = q @ b[i : i + 200_000].T
        best_s = np.hstack([best_s, s])
        best_i = np.hstack([best_i, np.broadcast_to(np.arange(i, i + s.shape[1]), s.shape)])
        top = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, top, 1), np.take_along_axis(best_i, top, 1)
    return np.take_along_axis(best_i, np.argsort(-best_s, axis=1), 1)


def latencies(fn, items) -> np.ndarray:
    """Milliseconds per call of ``fn(item)``, after one warm-up call."""
    fn(items[0])
    out = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        out.append((time.perf_counter() - t) * 1000)
    return np.asarray(out)


def rss_gib() -> float:
    """Peak resident memory of this process so far (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ------------------------------------------------------------------ text encoding (bf16)


def load_text_encoder(name: str, precision: str):
    """``encode(list[str]) -> np.ndarray [M, D]`` with the model's text tower, or None if unavailable.

    HOOK: the Engine's own text path (tokenizer + cleaning + encoder) can replace this function
    once it exists, so the benchmark times exactly what ``Engine.search_text`` does.
    """
    try:
        import torch

        from echosearch.models import load_model
    except ImportError as exc:  # models package not installed
        print(f"(text encoding skipped: {exc})")
        return None
    enc = load_model(name, device="cpu", precision=precision)

    def encode(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return enc.encode_text(texts).float().cpu().numpy()

    return encode, enc.dim


# ------------------------------------------------------------------ one size


def run_size(n: int, args, encode_text) -> dict:
    d, nq = args.dim, args.queries
    t0 = time.perf_counter()
    x = clustered(n + nq, d, args.clusters, args.spread, seed=n)
    base, queries = x[:n], x[n:]
    gen_s = time.perf_counter() - t0
    ids = np.arange(1, n + 1, dtype=np.int64)  # video ids start at 1

    cfg = IndexConfig(nprobe=args.nprobe) if args.nprobe else IndexConfig()
    t0 = time.perf_counter()
    idx = VectorIndex.build(ids, base, config=cfg)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "index.faiss"
        t0 = time.perf_counter()
        idx.save(p)
        save_s = time.perf_counter() - t0
        size_gib = p.stat().st_size / 2**30
        t0 = time.perf_counter()
        VectorIndex.load(p, cfg, mmap=True)
        load_s = time.perf_counter() - t0

    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    truth = ids[exact_topk(unit, queries, args.k)]
    hits = idx.search(queries, args.k)
    rec = float(np.mean([len(set(h.ids) & set(t)) / args.k for h, t in zip(hits, truth, strict=True)]))

    v2v = latencies(lambda q: idx.search(q, args.k), list(queries))
    rng = np.random.default_rng(1)
    subset = np.sort(rng.choice(ids, max(1, n // 200), replace=False))
    v2v_f = latencies(lambda q: idx.search(q, args.k, ids=subset), list(queries[:50]))
    exact = latencies(lambda q: exact_topk(unit, q[None], args.k), list(queries[:10]))  # numpy brute force

    row = {
        "n": n,
        "kind": idx.kind
        + (
            f"/nlist={idx.describe()['nlist']},nprobe={idx.describe()['nprobe']}" if idx.kind == "ivf" else ""
        ),
        "gen_s": gen_s,
        "build_s": build_s,
        "save_s": save_s,
        "mmap_load_s": load_s,
        "index_gib": size_gib,
        "peak_rss_gib": rss_gib(),
        "v2v_p50": np.percentile(v2v, 50),
        "v2v_p95": np.percentile(v2v, 95),
        "v2v_filt_p50": np.percentile(v2v_f, 50),
        "exact_p50": np.percentile(exact, 50),
        "recall10": rec,
    }
    if encode_text is not None:
        texts = [TEXT_QUERIES[i % len(TEXT_QUERIES)] for i in range(args.text_queries)]
        t2v = latencies(lambda t: idx.search(encode_text([t]), args.k), texts)
        row.update(t2v_p50=np.percentile(t2v, 50), t2v_p95=np.percentile(t2v, 95))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--queries", type=int, default=200, help="held-out query vectors per size")
    ap.add_argument("--clusters", type=int, default=300)
    ap.add_argument(
        "--spread", type=float, default=2.4, help="noise norm relative to the unit cluster centre"
    )
    ap.add_argument("--nprobe", type=int, default=None, help="IVF nprobe (default: IndexConfig's auto)")
    ap.add_argument("--threads", type=int, default=None, help="FAISS OpenMP threads")
    ap.add_argument("--no-text", action="store_true", help="skip the text->video column")
    # HOOK for the text side: any load_model() name or bundle folder; the Engine may swap in its own path.
    ap.add_argument("--text-model", default="arch:echoclip")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--text-queries", type=int, default=30)
    args = ap.parse_args()

    if args.threads:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    encode_text = None
    if not args.no_text:
        loaded = load_text_encoder(args.text_model, args.precision)
        if loaded is not None:
            encode_text, tdim = loaded
            if tdim != args.dim:
                raise SystemExit(f"text model dim {tdim} != --dim {args.dim}")

    cols = [
        ("n", "{:>9,}"), ("kind", "{:<28}"), ("build_s", "{:>8.1f}"), ("index_gib", "{:>9.2f}"),
        ("peak_rss_gib", "{:>8.2f}"), ("mmap_load_s", "{:>8.3f}"), ("v2v_p50", "{:>8.2f}"), ("v2v_p95", "{:>8.2f}"),
        ("v2v_filt_p50", "{:>8.2f}"), ("exact_p50", "{:>9.1f}"), ("recall10", "{:>8.3f}"),
    ]  # fmt: skip
    if encode_text is not None:
        cols += [("t2v_p50", "{:>8.1f}"), ("t2v_p95", "{:>8.1f}")]
    heads = {
        "n": "N", "kind": "index", "build_s": "build s", "index_gib": "size GiB", "peak_rss_gib": "RSS GiB",
        "mmap_load_s": "load s", "v2v_p50": "v2v p50", "v2v_p95": "v2v p95", "v2v_filt_p50": "filt p50",
        "exact_p50": "exact p50", "recall10": "R@10", "t2v_p50": "t2v p50", "t2v_p95": "t2v p95",
    }  # fmt: skip
    print(
        "latencies in ms per single query; filt = 0.5% of the archive allowed; t2v includes bf16 text encoding"
    )
    widths = [len(f.format(0 if c != "kind" else "")) for c, f in cols]
    print(" | ".join(heads[c].rjust(w) for (c, _), w in zip(cols, widths, strict=True)))
    for n in args.sizes:
        row = run_size(n, args, encode_text)
        gc.collect()
        print(" | ".join(f.format(row[c]) for c, f in cols), flush=True)


if __name__ == "__main__":
    main()
