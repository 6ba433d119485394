"""Linear view probe: does a model's image tower separate the 8 views, whatever its view prompts say?

Fits a multinomial logistic regression (torch, full batch) on the clip embeddings (mean of the frame
embeddings, as the index stores them) of labelled training archives and prints its held-out view
accuracy: the number that decides between a trained view head and zero-shot
prompts (issue 17). Frames come from the caches `echosearch train` / `eval` leave in each archive.

    python benchmarks/view_probe.py --model demo05 --train r511 --train r521 --heldout heldout
"""

from __future__ import annotations

import argparse

import torch

from echosearch.models import load_model
from echosearch.training.data import default_cache_dir, load_archive, load_frames, normalize
from echosearch.video import CLIP_MEAN, CLIP_STD


def clip_embeddings(encoder, archive: str, frames: int) -> tuple[torch.Tensor, list[str]]:
    clips = load_archive(archive)
    size = encoder.preprocess_cfg["size"]
    cache = load_frames(clips, size, frames, default_cache_dir(archive), progress=False)
    pre = encoder.preprocess_cfg
    out = []
    for i in range(len(clips)):
        x = normalize(
            cache.frames[i, : int(cache.counts[i])], pre.get("mean", CLIP_MEAN), pre.get("std", CLIP_STD)
        )
        out.append(torch.nn.functional.normalize(encoder.encode_frames(x).mean(0), dim=-1))
    return torch.stack(out), [c.row.get("view", "") for c in clips]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", action="append", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--train-frames", type=int, default=8)
    ap.add_argument("--heldout-frames", type=int, default=16)
    args = ap.parse_args()
    enc = load_model(args.model, device="cpu", precision="fp32")
    parts = [clip_embeddings(enc, a, args.train_frames) for a in args.train]
    x = torch.cat([p[0] for p in parts])
    views = [v for p in parts for v in p[1]]
    names = sorted(set(views))
    y = torch.tensor([names.index(v) for v in views])
    hx, hviews = clip_embeddings(enc, args.heldout, args.heldout_frames)
    hy = torch.tensor([names.index(v) for v in hviews])
    head = torch.nn.Linear(x.shape[1], len(names))
    opt = torch.optim.LBFGS(head.parameters(), max_iter=500)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y) + 1e-4 * head.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = head(hx).argmax(1)
    acc = float((pred == hy).float().mean())
    per = {n: float((pred[hy == i] == i).float().mean()) for i, n in enumerate(names) if (hy == i).any()}
    print(f"{args.model}: linear view probe, held-out accuracy {acc:.3f} ({len(hy)} clips)")
    print("  " + ", ".join(f"{n} {r:.2f}" for n, r in per.items()))
    print(f"  train accuracy {float((head(x).argmax(1) == y).float().mean()):.3f} ({len(y)} clips)")


if __name__ == "__main__":
    main()
