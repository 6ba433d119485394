"""Query speed, quality and memory of the vector side at archive scale (clustered 512-d vectors).

For each size N, two fresh processes (so that each one's peak RSS is its own):

1. **build** — generates N clustered vectors in chunks (never all at once), builds the index the
   way ``echosearch reindex`` does (:meth:`VectorIndex.build_streamed`: the kind chosen by size and
   ``--index-memory``, trained on a sample, filled chunk by chunk, exact vectors written to disk for
   the compressed kinds) and computes the exact top-10 of the held-out queries by streaming brute force;
2. **search** — opens the saved index as a query server does (``mmap=None``: compressed kinds
   memory-mapped) with the text tower loaded, and times single video->video queries, a selective
   filter (0.5% of the archive allowed), text->video *including* bf16 text encoding, and recall@10
   against the exact answer.

Vectors are clustered (unit centres + noise, see ``clustered_chunk``), not uniform: real embeddings
cluster by view, machine and patient, and uniform random vectors make every ANN look bad.

    .venv/bin/python benchmarks/query.py                              # 10k and 100k
    .venv/bin/python benchmarks/query.py --sizes 1000000 10000000     # the issue's sizes (~40 min)
    .venv/bin/python benchmarks/query.py --no-text --json             # one JSON list, a row per size
    .venv/bin/python benchmarks/query.py --index-memory 4GB --kind ivf-pq

Targets (issue 22, 2 cores): at 1M RSS <= 3 GiB; at 10M RSS <= 8 GiB, video->video p50 <= 20 ms,
text->video p50 <= 50 ms, recall@10 >= 0.95 against exact, build <= 1 h. The files need disk: about
1.5 KiB per vector for the compressed kinds (codes + float16 exact vectors), 2 KiB for the others.
On a shared machine the numbers are noisy: run it when the CPUs are quiet.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from echosearch.index import IndexConfig, VectorIndex
from echosearch.index.spaces import parse_memory

TEXT_QUERIES = [
    "SEVERE DILATED LEFT VENTRICLE.",
    "ECHO DENSITY IN RIGHT VENTRICLE SUGGESTIVE OF CATHETER, PACER LEAD, OR ICD LEAD.",
    "A BIOPROSTHETIC STENT-VALVE IS PRESENT IN THE AORTIC POSITION.",
    "THE LEFT VENTRICULAR EJECTION FRACTION IS ESTIMATED TO BE 35%.",
    "MODERATE MITRAL REGURGITATION.",
]
CHUNK = 100_000


def centres(d: int, n_clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n_clusters, d), dtype=np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def clustered_chunk(c: np.ndarray, m: int, spread: float, seed: tuple[int, ...]) -> np.ndarray:
    """``m`` vectors: a random centre of ``c`` each plus noise of norm ~``spread`` (reproducible by seed)."""
    rng = np.random.default_rng(seed)
    out = c[rng.integers(0, len(c), m)]
    out += (spread / np.sqrt(c.shape[1])) * rng.standard_normal((m, c.shape[1]), dtype=np.float32)
    return out


def archive_chunks(n: int, args):
    """A callable yielding ``(ids, vectors)`` of the N-vector archive in chunks, the same every call."""
    c = centres(args.dim, args.clusters, seed=n)

    def chunks():
        for i, start in enumerate(range(0, n, CHUNK)):
            m = min(CHUNK, n - start)
            yield (
                np.arange(start + 1, start + m + 1, dtype=np.int64),
                clustered_chunk(c, m, args.spread, (n, i)),
            )

    return chunks


def exact_topk(chunks, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force top-k ids by cosine, streaming the archive (the reference for recall)."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for ids, x in chunks():
        s = q @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T
        best_s, best_i = np.hstack([best_s, s]), np.hstack([best_i, np.broadcast_to(ids, s.shape)])
        top = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, top, 1), np.take_along_axis(best_i, top, 1)
    return np.take_along_axis(best_i, np.argsort(-best_s, axis=1), 1)


def rss_gib() -> float:
    """Peak resident memory of this process so far (GiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_parts_gib() -> dict[str, float]:
    """Resident memory now, split: anonymous (heap: model, ids, buffers) and file-backed (the pages
    of memory-mapped index files that queries touched, which the kernel may drop under pressure)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 2**20
    return {"rss_anon_gib": fields.get("RssAnon", 0.0), "rss_file_gib": fields.get("RssFile", 0.0)}


def latencies(fn, items) -> np.ndarray:
    """Milliseconds per call of ``fn(item)``, after one warm-up call."""
    fn(items[0])
    out = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        out.append((time.perf_counter() - t) * 1000)
    return np.asarray(out)


def config(args) -> IndexConfig:
    return IndexConfig(memory_budget=parse_memory(args.index_memory), nprobe=args.nprobe)


# ------------------------------------------------------------------ the two phases


def build_phase(n: int, args, folder: str, out: mp.Queue) -> None:
    if args.threads:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    chunks = archive_chunks(n, args)
    t0 = time.perf_counter()
    idx = VectorIndex.build_streamed(
        chunks,
        n,
        args.dim,
        Path(folder) / "index.faiss",
        config(args),
        None if args.kind == "auto" else args.kind,
    )
    build_s = time.perf_counter() - t0
    queries = clustered_chunk(centres(args.dim, args.clusters, seed=n), args.queries, args.spread, (n, 2**31))
    np.save(Path(folder) / "queries.npy", queries)
    np.save(Path(folder) / "truth.npy", exact_topk(chunks, queries, args.k))
    files = sum(p.stat().st_size for p in Path(folder).glob("index.*"))
    out.put({"build_s": build_s, "build_rss_gib": rss_gib(), "disk_gib": files / 2**30, **idx.describe()})


def search_phase(n: int, args, folder: str, out: mp.Queue) -> None:
    if args.threads:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    encode_text = load_text_encoder(args.text_model, args.precision, args.dim) if not args.no_text else None
    model_rss = rss_gib()
    t0 = time.perf_counter()
    idx = VectorIndex.load(Path(folder) / "index.faiss", config(args), mmap=None)  # as the Engine opens it
    load_s = time.perf_counter() - t0
    queries, truth = np.load(Path(folder) / "queries.npy"), np.load(Path(folder) / "truth.npy")
    hits = idx.search(queries, args.k)
    rec = float(np.mean([len(set(h.ids) & set(t)) / args.k for h, t in zip(hits, truth, strict=True)]))
    v2v = latencies(lambda q: idx.search(q, args.k), list(queries))
    rng = np.random.default_rng(1)
    subset = np.sort(rng.choice(np.arange(1, n + 1), max(1, n // 200), replace=False))
    v2v_f = latencies(lambda q: idx.search(q, args.k, ids=subset), list(queries[:30]))
    row = {
        "load_s": load_s,
        "rss_gib": rss_gib(),
        "model_rss_gib": model_rss,
        **rss_parts_gib(),
        "v2v_p50_ms": float(np.percentile(v2v, 50)),
        "v2v_p95_ms": float(np.percentile(v2v, 95)),
        "v2v_filtered_p50_ms": float(np.percentile(v2v_f, 50)),
        "recall_at_10": rec,
    }
    if encode_text is not None:
        texts = [TEXT_QUERIES[i % len(TEXT_QUERIES)] for i in range(args.text_queries)]
        t2v = latencies(lambda t: idx.search(encode_text([t]), args.k), texts)
        row.update(t2v_p50_ms=float(np.percentile(t2v, 50)), t2v_p95_ms=float(np.percentile(t2v, 95)))
    out.put(row)


def load_text_encoder(name: str, precision: str, dim: int):
    """``encode(list[str]) -> np.ndarray [M, D]`` with the model's text tower in bf16 (the real
    EchoCLIP architecture with random weights, ``arch:echoclip``, costs the same as the real model)."""
    import torch

    from echosearch.models import load_model

    enc = load_model(name, device="cpu", precision=precision)
    if enc.dim != dim:
        raise SystemExit(f"text model dim {enc.dim} != --dim {dim}")

    def encode(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return enc.encode_text(texts).float().cpu().numpy()

    return encode


def in_child(target, *args) -> dict:
    """Run one phase in a fresh (spawned) process; its result row."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, out))
    p.start()
    p.join()
    if p.exitcode != 0:
        raise SystemExit(f"{target.__name__} failed (exit {p.exitcode})")
    return out.get()


def run_size(n: int, args) -> dict:
    folder = tempfile.mkdtemp(prefix=f"query-{n}-", dir=args.tmp)
    try:
        built = in_child(build_phase, n, args, folder)
        searched = in_child(search_phase, n, args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    index = built["kind"] + (f"/nlist={built['nlist']},nprobe={built['nprobe']}" if "nlist" in built else "")
    return {
        "n": n,
        "index": index,
        **searched,
        **{k: built[k] for k in ("build_s", "build_rss_gib", "disk_gib")},
    }


COLS = [
    ("n", "N", "{:>10,}"), ("index", "index", "{:<32}"), ("build_s", "build s", "{:>8.1f}"),
    ("build_rss_gib", "build RSS", "{:>9.2f}"), ("disk_gib", "disk GiB", "{:>8.2f}"),
    ("rss_gib", "RSS GiB", "{:>7.2f}"), ("model_rss_gib", "model", "{:>5.2f}"), ("rss_anon_gib", "anon", "{:>5.2f}"),
    ("rss_file_gib", "mapped", "{:>6.2f}"), ("load_s", "load s", "{:>6.2f}"), ("v2v_p50_ms", "v2v p50", "{:>7.2f}"),
    ("v2v_p95_ms", "v2v p95", "{:>7.2f}"), ("v2v_filtered_p50_ms", "filt p50", "{:>8.2f}"),
    ("recall_at_10", "R@10", "{:>5.3f}"), ("t2v_p50_ms", "t2v p50", "{:>7.1f}"), ("t2v_p95_ms", "t2v p95", "{:>7.1f}"),
]  # fmt: skip


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
    ap.add_argument(
        "--index-memory", default="8GB", help="the space's memory budget (as `index --index-memory`)"
    )
    ap.add_argument("--kind", default="auto", help="force an index kind (default: by size and budget)")
    ap.add_argument("--nprobe", type=int, default=None, help="IVF nprobe (default: IndexConfig's auto)")
    ap.add_argument("--threads", type=int, default=None, help="FAISS OpenMP threads")
    ap.add_argument("--no-text", action="store_true", help="skip the text->video column")
    ap.add_argument("--text-model", default="arch:echoclip")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--text-queries", type=int, default=30)
    ap.add_argument(
        "--tmp", default=None, help="where the index files are built (default: the system temp dir)"
    )
    ap.add_argument(
        "--json", action="store_true", help="print one JSON list, a row per size, instead of a table"
    )
    args = ap.parse_args()

    cols = [c for c in COLS if not (args.no_text and c[0].startswith("t2v"))]
    if not args.json:
        print(
            f"budget {args.index_memory}; latencies in ms per single query; filt = 0.5% of the archive allowed;"
        )
        print(
            "t2v includes bf16 text encoding; RSS = peak of the search process (model loaded), build RSS of the build"
        )
        print(" | ".join(h.rjust(len(f.format(0 if c != "index" else ""))) for c, h, f in cols))
    rows = []
    for n in args.sizes:
        row = run_size(n, args)
        rows.append(row)
        if not args.json:
            print(" | ".join(f.format(row[c]) for c, _, f in cols), flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
