"""Grad-CAM: a heat map over the model's view of a frame, and the frame-text score it explains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echosearch.errors import UsageError
from echosearch.explain import colorize, gradcam, last_stage, overlay
from echosearch.models import load_model
from echosearch.video import preprocess_frames


@pytest.fixture(scope="module")
def encoder():
    return load_model("arch:tiny", device="cpu", precision="bf16")


def _frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[30:90, 50:110] = rng.integers(80, 255, (60, 60, 3), dtype=np.uint8)  # a bright patch
    return frame


def test_gradcam_map_and_score(encoder):
    text = "SEVERE DILATED LEFT VENTRICLE."
    cam = gradcam(encoder, _frame(), text)
    size = encoder.preprocess_cfg["size"]
    assert cam.heat.shape == (size, size) and cam.heat.dtype == np.float32
    assert cam.image.shape == cam.overlay.shape == (size, size, 3)
    assert 0.0 <= cam.heat.min() and cam.heat.max() <= 1.0
    # the score explained is the fp32 cosine of the frame and the text (the encoder runs bf16)
    cfg = encoder.preprocess_cfg
    x = preprocess_frames(_frame()[None], size=size, mean=cfg["mean"], std=cfg["std"])
    expected = float((encoder.encode_frames(x) @ encoder.encode_text([text]).T).item())
    assert cam.score == pytest.approx(expected, abs=0.02)
    # the encoder's own model is left untouched (no hooks, still bf16)
    assert next(encoder.model.parameters()).dtype == torch.bfloat16
    assert not last_stage(encoder.model)._forward_hooks


def test_last_stage_needs_a_convnext_tower():
    with pytest.raises(UsageError, match="ConvNeXt"):
        last_stage(torch.nn.Linear(2, 2))


def test_overlay_follows_the_heat():
    image = np.full((4, 4, 3), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    out = overlay(image, heat)
    assert (out[1:, 1:] == 100).all()  # no heat, no change
    assert tuple(out[0, 0]) != (100, 100, 100)
    assert tuple(colorize(np.array([[1.0]]))[0, 0]) == (230, 0, 0)
