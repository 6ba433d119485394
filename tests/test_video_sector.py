from __future__ import annotations

import numpy as np
import pydicom
import pydicom.data

from echosearch.video import estimate_sector, read_clip, sector_from_regions

SONOSITE = pydicom.data.get_testdata_file("color3d_jpeg_baseline.dcm")


def _synthetic_fan(n=12, h=240, w=320, seed=0):
    """Speckle inside a fan (changes every frame), static text and a moving 'ECG' line outside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - 10, xx - w / 2)
    angle = np.degrees(np.arctan2(xx - w / 2, yy - 10))
    fan = (r < 200) & (np.abs(angle) < 40) & (yy > 10)
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    frames[:, 5:15, 5:60] = 255  # burned-in "name"
    for i in range(n):
        speckle = rng.integers(20, 200, (h, w)).astype(np.uint8)
        frames[i][fan] = speckle[fan][:, None]
        frames[i, 225, (i * 20) % w : (i * 20) % w + 10] = 255  # ECG trace moving along the bottom
    return frames, fan


def test_estimated_fan_covers_the_sector_and_drops_text_and_ecg():
    frames, fan = _synthetic_fan()
    mask = estimate_sector(frames)
    assert mask is not None and mask.shape == fan.shape
    iou = (mask & fan).sum() / (mask | fan).sum()
    assert iou > 0.9
    assert not mask[5:15, 5:60].any()
    assert not mask[222:230].any()


def test_single_frame_or_static_gives_no_estimate():
    frames, _ = _synthetic_fan(n=1)
    assert estimate_sector(frames) is None
    static = np.repeat(_synthetic_fan(n=1)[0], 5, axis=0)
    assert estimate_sector(static) is None


def test_regions_give_the_2d_region_only():
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("OBXXXX1A.dcm"), stop_before_pixels=True)
    mask = sector_from_regions(ds.SequenceOfUltrasoundRegions, ds.Rows, ds.Columns)
    assert mask[60:519, 120:800].all()  # region 120..800 x 60..518, clipped to the 800-wide frame
    assert mask.sum() == (518 - 60 + 1) * (800 - 120)  # and not the second (waveform) region


def test_read_clip_masks_outside_the_sector():
    masked = read_clip(SONOSITE, sampling="uniform:4")
    raw = read_clip(SONOSITE, sampling="uniform:4", mask_sector=False)
    assert masked.sector_mask is not None
    outside = ~masked.sector_mask
    assert raw.frames[:, outside].max() > 100  # there is burned-in text out there ...
    assert masked.frames[:, outside].max() == 0  # ... and it is gone
    assert np.array_equal(masked.frames[:, masked.sector_mask], raw.frames[:, masked.sector_mask])


def test_estimate_on_real_cine_is_a_fan():
    raw = read_clip(SONOSITE, sampling="uniform:16", mask_sector=False)
    mask = estimate_sector(raw.frames)
    assert 0.25 < mask.mean() < 0.5
    assert not mask[:40, :60].any()  # the text block at top left
    assert not mask[455:, :].any()  # the bottom toolbar
