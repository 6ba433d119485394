"""The same synthetic archive through the local engine and the Ray engine on this machine: Ray's overhead.

Each engine indexes the archive into a fresh data dir (model loading included in both, Ray's cluster
start timed apart: a real cluster is started once, not per run). Prints one table and the overhead
ratio (Ray seconds / local seconds - 1). With ``--two-nodes`` it also indexes the archive on a
two-node Ray cluster started on this machine (a head and a worker node, each its own raylet and
object store, the CPUs split between them: ``ray.cluster_utils.Cluster``, what Ray's own multi-node
tests use) and prints where the clips were read and embedded, per node.

    .venv/bin/python benchmarks/distributed_index.py                       # 24 clips, echosearch-demo
    .venv/bin/python benchmarks/distributed_index.py --patients 8 --encoders 2 --cpus-per-encoder 2
    .venv/bin/python benchmarks/distributed_index.py --two-nodes

On a shared machine the numbers are noisy: run it when the CPUs are quiet.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.synth import synthesize_archive


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--clips-per-study", type=int, default=3)
    ap.add_argument("--frames", type=int, default=32, help="frames per synthetic clip")
    ap.add_argument("--sampling", default="uniform:16")
    ap.add_argument("--model", default="echosearch-demo")
    ap.add_argument("--workers", type=int, default=None, help="local engine readers (default: cores - 1)")
    ap.add_argument("--encoders", type=int, default=1)
    ap.add_argument("--cpus-per-encoder", type=int, default=1)
    ap.add_argument("--ray-cpus", type=int, default=os.cpu_count())
    ap.add_argument("--two-nodes", action="store_true", help="also run on a head + worker node cluster")
    args = ap.parse_args()

    import ray

    with tempfile.TemporaryDirectory(prefix="echosearch-dist-") as tmp:
        root = Path(tmp)
        synthesize_archive(
            root / "archive", patients=args.patients, seed=5, studies=(2, 2),
            clips_per_study=(args.clips_per_study, args.clips_per_study), frames=(args.frames, args.frames),
            formats=("dicom-explicit",),
        )  # fmt: skip
        base = dict(model=args.model, frames=args.sampling, progress=False)
        rows = []
        t0 = time.perf_counter()
        local = run_index(
            IndexOptions([str(root / "archive")], str(root / "local"), workers=args.workers, **base)
        )
        rows.append(("local", local.new, time.perf_counter() - t0))

        t0 = time.perf_counter()
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        start = time.perf_counter() - t0
        dist, seconds = ray_run(args, root, "ray", base)
        rows.append(("ray", dist.new, seconds))
        ray.shutdown()
        if args.two_nodes:
            two, seconds = two_node_run(args, root, base)
            rows.append(("ray x2", two.new, seconds))

    print(f"{args.patients * 2 * args.clips_per_study} clips x {args.frames} frames ({args.sampling}), "
          f"model {args.model}, {os.cpu_count()} CPUs; Ray: {args.encoders} encoder(s) x "
          f"{args.cpus_per_encoder} CPU, cluster start {start:.1f} s (not counted)")  # fmt: skip
    print(f"{'engine':<8}{'clips':>7}{'seconds':>10}{'clips/s':>10}")
    for name, clips, secs in rows:
        print(f"{name:<8}{clips:>7}{secs:>10.1f}{clips / secs:>10.2f}")
    print(f"Ray overhead: {rows[1][2] / rows[0][2] - 1:+.1%} (Ray seconds / local seconds - 1)")
    if args.two_nodes:
        print("two nodes (head + worker, CPUs split): clips per node")
        for what, per_node in two.nodes.items():
            print(f"  {what:<9}" + ", ".join(f"{node}: {n}" for node, n in sorted(per_node.items())))


def ray_run(args, root: Path, name: str, base: dict):
    """Index the archive into ``root/name`` with the Ray engine on the connected cluster; (summary, seconds)."""
    t0 = time.perf_counter()
    summary = run_index(
        IndexOptions(
            [str(root / "archive")], str(root / name), engine="ray", encoders=args.encoders,
            cpus_per_encoder=args.cpus_per_encoder, **base,
        )
    )  # fmt: skip
    return summary, time.perf_counter() - t0


def two_node_run(args, root: Path, base: dict):
    """Index the archive on a head + worker Ray cluster on this machine; (summary, seconds)."""
    import ray
    from ray.cluster_utils import Cluster

    head_cpus = max(1, args.ray_cpus // 2)
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": head_cpus, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=max(1, args.ray_cpus - head_cpus))
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        return ray_run(args, root, "ray2", base)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
