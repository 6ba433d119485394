"""Frames to model input, the EchoCLIP way, batched in torch.

The recipe (EchoCLIP's own, so embeddings match the published models): centre-crop to the output
aspect ratio, crop a further 10% off every side (a zoom that drops most of the text and rulers
around the sector), bicubic resize to ``size`` without antialiasing (as OpenCV's INTER_CUBIC does),
round to uint8 like the reference, then normalise with the model's mean/std. The whole clip goes
through one ``interpolate`` call: no per-frame PIL loop on the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# OpenAI CLIP's normalisation, which EchoCLIP keeps.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _crop_box(height: int, width: int, zoom: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the centre crop to the output aspect, then the zoom crop."""
    top, bottom, left, right = 0, height, 0, width
    aspect_in, aspect_out = width / height, 1.0  # square output
    if aspect_in > aspect_out:
        pad = int(round((width - aspect_out * height) / 2))
        left, right = pad, width - pad
    elif aspect_in < aspect_out:
        pad = int(round((height - width / aspect_out) / 2))
        top, bottom = pad, height - pad
    if zoom:
        pad_y = int((bottom - top) * zoom)
        pad_x = int((right - left) * zoom)
        top, bottom, left, right = top + pad_y, bottom - pad_y, left + pad_x, right - pad_x
    return top, bottom, left, right


def crop_and_scale(frames: np.ndarray | torch.Tensor, size: int = 224, zoom: float = 0.1) -> torch.Tensor:
    """uint8 ``[F,H,W,3]`` frames -> uint8 ``[F,3,size,size]`` (cropped, zoomed, bicubic-resized)."""
    x = torch.as_tensor(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected frames [F,H,W,3], got shape {tuple(x.shape)}")
    top, bottom, left, right = _crop_box(x.shape[1], x.shape[2], zoom)
    x = x[:, top:bottom, left:right].permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def preprocess_frames(
    frames: np.ndarray | torch.Tensor,
    size: int = 224,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    zoom: float = 0.1,
) -> torch.Tensor:
    """uint8 RGB ``[F,H,W,3]`` -> normalised float32 ``[F,3,size,size]`` model input."""
    x = crop_and_scale(frames, size=size, zoom=zoom).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)
