"""Seconds per training step of the demo architecture (batch 128 at 112 px, fp32 as `echosearch train` runs on CPU): prints a table.

Random images and real demo-vocabulary report tokens, so it needs no archive.
"""

from __future__ import annotations

import time

import open_clip
import torch

from echosearch.models.precision import resolve_device
from echosearch.paths import package_data
from echosearch.tokenizers import TemplateTokenizer
from echosearch.training.train import DEMO_CONTEXT, demo_model_cfg, lr_lambda, param_groups, train_step


def main(batch: int = 128, steps: int = 4) -> None:
    tok = TemplateTokenizer.from_files(
        None, package_data() / "demo_vocab" / "template_vocab.txt", context_length=DEMO_CONTEXT
    )
    model = open_clip.CLIP(**demo_model_cfg(tok.vocab_size))
    device = resolve_device("auto")
    model.to(device)
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(steps + 1, 1))
    loss_fn = open_clip.loss.ClipLoss()
    images = torch.randn(batch, 3, 112, 112)
    tokens = tok.encode_batch(
        ["NORMAL LEFT VENTRICULAR CAVITY SIZE. THE LEFT VENTRICULAR EJECTION FRACTION IS 55%."] * batch
    )
    train_step(model, loss_fn, opt, sched, images, tokens, device)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, loss_fn, opt, sched, images, tokens, device)
    per = (time.perf_counter() - t0) / steps
    print(f"{'device':<8} {'threads':>7} {'batch':>5} {'px':>4} {'s/step':>7}")
    print(f"{device.type:<8} {torch.get_num_threads():>7} {batch:>5} {112:>4} {per:>7.2f}")


if __name__ == "__main__":
    main()
