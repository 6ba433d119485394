"""Where the model looks: Grad-CAM of a (frame, text) pair on the image tower's last ConvNeXt stage.

Why: a clinician shown a match for "pacer lead" should be able to check that the model attends to
the right heart, not to the ECG trace or the banner. Grad-CAM weights each channel of the last
convolutional stage by the mean gradient of the frame-text cosine similarity, keeps the positive
part and upsamples it to the model's input, as the EchoCLIP repository's example does.

Works with any open_clip model whose image tower is a timm ConvNeXt (``model.visual.trunk.stages``),
as built by :func:`echosearch.models.load_model`. The gradient pass runs in fp32 on a float32 copy
of the model when the encoder runs in bf16/fp16 (half-precision gradients are too coarse here).
"""

from __future__ import annotations

import copy
import logging
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from echosearch.errors import UsageError

log = logging.getLogger(__name__)

#: Float32 copies of half-precision models, one per encoder, built on first use.
_FP32_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: Colour ramp of the heat map (dark blue -> cyan -> yellow -> red), positions in [0, 1].
_RAMP_POS = np.array([0.0, 0.35, 0.65, 1.0])
_RAMP_RGB = np.array([[0, 0, 96], [0, 200, 255], [255, 230, 0], [230, 0, 0]], dtype=np.float32)


@dataclass
class GradCam:
    """A heat map over the frame the model saw (cropped and resized exactly as for indexing)."""

    image: np.ndarray  # uint8 [S,S,3]: the model's input view of the frame
    heat: np.ndarray  # float32 [S,S] in [0,1]
    overlay: np.ndarray  # uint8 [S,S,3]: heat blended over the image
    score: float  # cosine similarity of the frame and the text


def last_stage(model: torch.nn.Module) -> torch.nn.Module:
    """The last ConvNeXt stage of an open_clip timm image tower (raises UsageError otherwise)."""
    trunk = getattr(getattr(model, "visual", None), "trunk", None)
    stages = getattr(trunk, "stages", None)
    if stages is None or len(stages) == 0:
        raise UsageError("Grad-CAM needs a model whose image tower is a timm ConvNeXt")
    return stages[-1]


def _fp32_model(encoder) -> torch.nn.Module:
    if encoder.dtype == torch.float32:
        return encoder.model
    model = _FP32_MODELS.get(encoder)
    if model is None:
        model = copy.deepcopy(encoder.model).float().eval()
        _FP32_MODELS[encoder] = model
    return model


def gradcam(encoder, frame: np.ndarray, text: str) -> GradCam:
    """Grad-CAM of one uint8 RGB frame ``[H,W,3]`` against a text query, with ``encoder``'s model."""
    from echosearch.video import crop_and_scale

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise UsageError(f"Grad-CAM needs one RGB frame [H,W,3], got shape {frame.shape}")
    cfg = encoder.preprocess_cfg
    size = int(cfg["size"])
    view = crop_and_scale(frame[None], size=size)  # uint8 [1,3,S,S], the pixels the model sees
    mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1)
    x = ((view.float() / 255.0 - mean) / std).to(encoder.device)
    text_emb = encoder.encode_text([text]).to(encoder.device).float().clone()  # out of inference mode

    model = _fp32_model(encoder)
    stage = last_stage(model)
    saved: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):  # noqa: ANN001, ANN202
        output.retain_grad()
        saved["act"] = output

    handle = stage.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x.requires_grad_(True)  # the weights are frozen: the input carries the graph
            emb = F.normalize(model.encode_image(x).float(), dim=-1)
            score = (emb * text_emb).sum()
            score.backward()
    finally:
        handle.remove()
    act, grad = saved["act"].detach().float(), saved["act"].grad.float()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    cam = cam.cpu().numpy().astype(np.float32)
    top = float(cam.max())
    heat = cam / top if top > 0 else np.zeros_like(cam)
    image = view[0].permute(1, 2, 0).numpy()
    return GradCam(image=image, heat=heat, overlay=overlay(image, heat), score=float(score.item()))


def colorize(heat: np.ndarray) -> np.ndarray:
    """float [H,W] in [0,1] -> uint8 RGB [H,W,3] on a blue-to-red ramp."""
    h = np.clip(heat, 0.0, 1.0)
    rgb = np.stack([np.interp(h, _RAMP_POS, _RAMP_RGB[:, c]) for c in range(3)], axis=-1)
    return rgb.round().astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend the coloured heat over the image, more strongly where the heat is high."""
    a = (alpha * np.clip(heat, 0, 1))[..., None]
    out = (1 - a) * image.astype(np.float32) + a * colorize(heat).astype(np.float32)
    return out.round().clip(0, 255).astype(np.uint8)


def middle_frame(path: str | Path) -> np.ndarray:
    """The middle sampled frame of a clip file (uint8 RGB, sector-masked as at indexing)."""
    from echosearch.video import read_clip

    clip = read_clip(Path(path))
    return clip.frames[len(clip.frames) // 2]
