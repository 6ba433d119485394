from __future__ import annotations

import numpy as np
import pydicom.data
import pytest
import torch

from echosearch.video import CLIP_MEAN, CLIP_STD, crop_and_scale, preprocess_frames, read_clip


def test_golden_preprocess_matches_reference(echoclip_ref):
    golden = np.load(echoclip_ref / "golden_preprocess.npz")
    x = preprocess_frames(golden["rgb_frames_uint8"])
    assert x.dtype == torch.float32 and tuple(x.shape) == (5, 3, 224, 224)
    assert np.abs(x.numpy() - golden["model_input_float32"]).mean() <= 0.01
    cropped = crop_and_scale(golden["rgb_frames_uint8"]).permute(0, 2, 3, 1).numpy()
    assert np.abs(cropped.astype(int) - golden["cropped_scaled_uint8"]).mean() < 0.5


def test_golden_frames_come_out_of_read_clip(echoclip_ref):
    """Our DICOM decoding gives the reference RGB frames (so no colour conversion twice)."""
    golden = np.load(echoclip_ref / "golden_preprocess.npz")
    path = pydicom.data.get_testdata_file("color3d_jpeg_baseline.dcm")
    clip = read_clip(path, sampling="stride:30", mask_sector=False)  # frames 0, 30, 60, 90
    assert clip.frame_indices.tolist() == golden["frame_indices"][:4].tolist()
    assert np.abs(clip.frames.astype(int) - golden["rgb_frames_uint8"][:4]).mean() < 0.5
    x = preprocess_frames(clip.frames)
    assert np.abs(x.numpy() - golden["model_input_float32"][:4]).mean() <= 0.01


@pytest.mark.parametrize(("h", "w"), [(480, 640), (640, 480), (300, 300), (101, 257)])
def test_any_aspect_gives_square_normalised_batch(h, w):
    frames = np.full((3, h, w, 3), 128, dtype=np.uint8)
    x = preprocess_frames(frames, size=112)
    assert tuple(x.shape) == (3, 3, 112, 112)
    expected = (128 / 255 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert np.allclose(x.mean(dim=(0, 2, 3)).numpy(), expected, atol=1e-4)


def test_zoom_crops_the_border():
    frames = np.zeros((1, 200, 200, 3), dtype=np.uint8)
    frames[:, :19] = 255  # a band in the outer 10%: zoomed away
    assert crop_and_scale(frames, size=64).max() == 0
    assert crop_and_scale(frames, size=64, zoom=0).max() > 0
