"""Read + preprocess throughput: frames/s of model input produced, per number of worker processes.

Two workloads, both sampled ``uniform:16``: pydicom's SonoSite cine (120-frame JPEG baseline, so 16
JPEG decodes per clip) read repeatedly, and a folder of clips (a synthetic archive written by
``echosearch.synth`` unless ``--folder`` names one). Each worker reads a clip, masks the sector and
runs ``preprocess_frames``, as the indexer's reader stage does. On a shared machine the numbers are
noisy: run it when the CPUs are quiet.

    .venv/bin/python benchmarks/read.py [--folder DIR] [--workers 1 2] [--repeat 8] [--sampling uniform:16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pydicom.data
import torch

from echosearch.video import ClipReadError, preprocess_frames, read_clip

CLIP_SUFFIXES = {".dcm", ".avi", ".mp4"}


def _read_and_preprocess(job: tuple[str, str]) -> int:
    path, sampling = job
    torch.set_num_threads(1)  # one core per worker: parallelism comes from the processes
    try:
        clip = read_clip(path, sampling=sampling)
    except ClipReadError:
        return 0
    return int(preprocess_frames(clip.frames).shape[0])


def _run(paths: list[str], sampling: str, workers: int) -> tuple[float, int, int]:
    jobs = [(p, sampling) for p in paths]
    start = time.perf_counter()
    if workers == 1:
        torch.set_num_threads(1)
        frames = [_read_and_preprocess(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            frames = list(pool.map(_read_and_preprocess, jobs, chunksize=1))
    return time.perf_counter() - start, sum(frames), len(jobs)


def _synthetic_folder(tmp: Path, patients: int) -> Path:
    from echosearch.synth import synthesize_archive

    out = tmp / "archive"
    synthesize_archive(out, patients=patients, seed=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="folder of clips (default: a fresh synthetic archive)")
    parser.add_argument("--patients", type=int, default=4, help="patients in the synthetic archive")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=8, help="reads of the SonoSite cine per run")
    parser.add_argument("--sampling", default="uniform:16")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or _synthetic_folder(Path(tmp), args.patients)
        clips = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in CLIP_SUFFIXES)
        sonosite = [pydicom.data.get_testdata_file("color3d_jpeg_baseline.dcm")] * args.repeat
        workloads = {"SonoSite cine (120 f, JPEG)": sonosite, f"folder ({len(clips)} clips)": clips}
        print(f"read + sector mask + preprocess to 224 px, sampling {args.sampling}, {os.cpu_count()} CPUs")
        print(
            f"{'workload':<30} {'workers':>7} {'clips':>6} {'frames':>7} {'seconds':>8} {'frames/s':>9} {'clips/s':>8}"
        )
        for name, paths in workloads.items():
            for workers in args.workers:
                seconds, frames, n = _run(paths, args.sampling, workers)
                print(
                    f"{name:<30} {workers:>7} {n:>6} {frames:>7} {seconds:>8.2f} "
                    f"{frames / seconds:>9.1f} {n / seconds:>8.2f}"
                )


if __name__ == "__main__":
    main()
