"""Encoder throughput of the EchoCLIP architecture (ConvNeXt-Base, 224 px, random weights).

Prints frames/s for fp32 and bf16 at several batch sizes, text queries/s, and the bf16/fp32 ratio,
on CPU and (when present) CUDA. Random weights cost the same as the real ones, so this needs no
download. On a shared machine the numbers are noisy: run it when the CPUs are quiet.

    .venv/bin/python benchmarks/encode.py [--batches 1 8 32] [--min-seconds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from echosearch.models import load_model
from echosearch.models.precision import cpu_has_fast_bf16

QUERIES = [
    "SEVERE DILATED LEFT VENTRICLE.",
    "ECHO DENSITY IN RIGHT VENTRICLE SUGGESTIVE OF CATHETER, PACER LEAD, OR ICD LEAD.",
    "A BIOPROSTHETIC STENT-VALVE IS PRESENT IN THE AORTIC POSITION.",
    "THE LEFT VENTRICULAR EJECTION FRACTION IS ESTIMATED TO BE 35%.",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(fn, items: int, device: torch.device, min_seconds: float) -> float:
    """Items per second: one warm-up call, then repeat until ``min_seconds`` have passed."""
    fn()
    _sync(device)
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n * items / elapsed


def bench_device(device: str, batches: list[int], min_seconds: float, threads: int | None) -> list[tuple]:
    rows = []
    encoders = {
        p: load_model("arch:echoclip", device=device, precision=p, threads=threads) for p in ("fp32", "bf16")
    }
    dev = encoders["fp32"].device
    for b in batches:
        x = torch.randn(b, 3, 224, 224)
        fps = {}
        for p, enc in encoders.items():
            enc.batch_size = b
            fps[p] = rate(lambda enc=enc, x=x: enc.encode_frames(x), b, dev, min_seconds)
        rows.append((device, f"frames, batch {b}", fps["fp32"], fps["bf16"]))
    texts = QUERIES * 8
    qps = {
        p: rate(lambda enc=enc: enc.encode_text(texts), len(texts), dev, min_seconds)
        for p, enc in encoders.items()
    }
    rows.append((device, f"text queries, batch {len(texts)}", qps["fp32"], qps["bf16"]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-cpu", action="store_true", help="Only the CUDA section.")
    args = ap.parse_args()

    rows = []
    if not args.no_cpu:
        rows += bench_device("cpu", args.batches, args.min_seconds, args.threads)
    if torch.cuda.is_available():
        rows += bench_device("cuda", sorted(set(args.batches) | {128}), args.min_seconds, None)

    print(
        f"EchoCLIP arch (ConvNeXt-Base + CLIP text, 224 px), torch {torch.__version__}, "
        f"CPU threads {torch.get_num_threads()}, CPU bf16 units: {cpu_has_fast_bf16()}"
        + (f", GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )
    print("| device | workload | fp32 /s | bf16 /s | bf16/fp32 |\n|---|---|---:|---:|---:|")
    for device, what, fp32, bf16 in rows:
        print(f"| {device} | {what} | {fp32:.1f} | {bf16:.1f} | {bf16 / fp32:.2f}x |")


if __name__ == "__main__":
    main()
