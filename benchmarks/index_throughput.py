"""Indexing throughput on EchoCLIP's architecture (ConvNeXt-Base, random weights): frames/s of

(a) the reference loop of the EchoCLIP examples: read each DICOM, per-frame PIL preprocessing (the
    model's open_clip transform: bicubic resize, centre crop, to tensor, normalise), fp32 encode,
    one clip at a time;
(b) the model alone, at the encoder's automatic precision (bf16 where the CPU has it), on ready
    tensors: the bound any indexer can reach;
(c) echosearch's indexer end to end, from the same DICOM files on disk to stored vectors, frame
    embeddings, zero-shot labels and thumbnails (model already loaded, as in (a) and (b)).

All three embed the same clips with the same number of frames per clip (``uniform:F``). Speed does
not depend on the weights, so random weights measure the real thing. On a shared machine numbers
are noisy: the load average is printed with the table.

    .venv/bin/python benchmarks/index_throughput.py [--clips 8] [--frames 16] [--workers N] [--folder DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pydicom
import torch
from PIL import Image

from echosearch.indexer.runner import IndexOptions, Runner
from echosearch.models import load_model
from echosearch.synth import synthesize_archive
from echosearch.video.sampling import parse_sampling

TASKS = """
tasks:
  pacemaker:
    kind: binary
    prompts: ["ECHO DENSITY IN RIGHT VENTRICLE SUGGESTIVE OF PACER LEAD. "]
  ejection_fraction:
    kind: regression
    templates: ["LV EJECTION FRACTION IS <#>%. "]
    range: [10, 90]
  lv_size:
    kind: categorical
    classes:
      normal: ["NORMAL LEFT VENTRICULAR SIZE. "]
      dilated: ["SEVERE DILATED LEFT VENTRICLE. "]
"""


def make_clips(folder: Path, n: int, min_frames: int, source: Path | None = None) -> list[Path]:
    """``n`` DICOM clips copied from ``source``, or synthesised (explicit, RLE, JPEG 2000) without one."""
    archive = source or folder / "archive"
    if source is None:
        synthesize_archive(archive, patients=max(1, n // 4 + 1), seed=0, frames=(max(min_frames, 30), 48),
                           formats=("dicom-explicit", "dicom-rle", "dicom-j2k"))  # fmt: skip
    paths = sorted(archive.rglob("*.dcm"))[:n]
    if len(paths) < n:
        raise SystemExit(f"only {len(paths)} clips were made; lower --clips")
    clips = folder / "clips"
    clips.mkdir()
    for i, p in enumerate(paths):
        shutil.copy(p, clips / f"{i:04d}.dcm")
    return sorted(clips.iterdir())


def reference_loop(paths: list[Path], frames: int) -> tuple[float, int]:
    """(a): per file, per frame, fp32, one clip per forward pass."""
    import open_clip

    encoder = load_model("arch:echoclip", precision="fp32")
    cfg = encoder.preprocess_cfg
    transform = open_clip.image_transform(cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"])
    policy = parse_sampling(f"uniform:{frames}")
    start = time.perf_counter()
    n = 0
    with torch.inference_mode():
        for path in paths:
            ds = pydicom.dcmread(path)
            pixels = ds.pixel_array
            if ds.PhotometricInterpretation.startswith("YBR"):
                pixels = pydicom.pixels.convert_color_space(pixels, ds.PhotometricInterpretation, "RGB")
            idx = policy.indices(len(pixels))
            batch = torch.stack([transform(Image.fromarray(pixels[i])) for i in idx])
            emb = encoder.model.encode_image(batch)
            emb = torch.nn.functional.normalize(emb, dim=-1).mean(0)
            n += len(batch)
    return time.perf_counter() - start, n


def model_alone(n_frames: int, batch: int | None) -> tuple[float, int, str]:
    """(b): the encoder at auto precision on ready, normalised tensors."""
    encoder = load_model("arch:echoclip", batch_size=batch)
    x = torch.randn(n_frames, 3, encoder.preprocess_cfg["size"], encoder.preprocess_cfg["size"])
    encoder.encode_frames(x[: min(8, n_frames)])  # warm-up
    start = time.perf_counter()
    encoder.encode_frames(x)
    return time.perf_counter() - start, n_frames, encoder.precision


def our_indexer(
    paths: list[Path], frames: int, workers: int | None, batch: int | None, tmp: Path
) -> tuple[float, int]:
    """(c): ``echosearch index`` on the clips folder (model loaded beforehand, like (a) and (b))."""
    (tmp / "tasks.yaml").write_text(TASKS)
    encoder = load_model("arch:echoclip", batch_size=batch)
    encoder.encode_frames(torch.randn(8, 3, 224, 224))  # warm-up, as for (b)
    opts = IndexOptions(paths=[str(paths[0].parent)], data_dir=str(tmp / "data"), model="arch:echoclip",
                        workers=workers, batch_size=batch, frames=f"uniform:{frames}", progress=False,
                        tasks=str(tmp / "tasks.yaml"))  # fmt: skip
    start = time.perf_counter()
    summary = Runner(opts, encoder=encoder).run()
    seconds = time.perf_counter() - start
    assert summary.embedded == len(paths), summary.to_dict()
    return seconds, summary.frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None, help="indexer reader processes (default: auto)")
    parser.add_argument("--batch-size", type=int, default=None, help="frames per forward pass")
    parser.add_argument(
        "--folder", type=Path, default=None, help="take DICOM clips from here (default: synthesise)"
    )
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = make_clips(tmp, args.clips, args.frames, args.folder)
        ta, fa = reference_loop(paths, args.frames)
        tb, fb, precision = model_alone(args.clips * args.frames, args.batch_size)
        tc, fc = our_indexer(paths, args.frames, args.workers, args.batch_size, tmp)
    rate_a, rate_b, rate_c = fa / ta, fb / tb, fc / tc
    print(f"{args.clips} clips x {args.frames} frames, ConvNeXt-Base (arch:echoclip, random weights), "
          f"{torch.get_num_threads()} threads, load average before {load[0]:.1f} / after {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'path':<58} {'frames':>6} {'seconds':>8} {'frames/s':>9}")
    print(
        f"{'(a) reference loop: per-frame PIL, fp32, one clip at a time':<58} {fa:>6} {ta:>8.1f} {rate_a:>9.1f}"
    )
    print(f"{'(b) model alone on ready tensors, ' + precision:<58} {fb:>6} {tb:>8.1f} {rate_b:>9.1f}")
    print(
        f"{'(c) echosearch index, DICOM on disk -> vectors+labels+thumbs':<58} {fc:>6} {tc:>8.1f} {rate_c:>9.1f}"
    )
    print(f"(c)/(a) = {rate_c / rate_a:.2f}   (c)/(b) = {rate_c / rate_b:.2f}")


if __name__ == "__main__":
    main()
