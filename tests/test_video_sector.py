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


def _ecg_green(rgb: np.ndarray) -> int:
    rgb = rgb.astype(int)
    return int(((rgb[..., 1] > 150) & (rgb[..., 0] < 110) & (rgb[..., 2] < 120)).sum())


def _label_yellow(rgb: np.ndarray) -> int:
    rgb = rgb.astype(int)
    return int(((rgb[..., 0] > 170) & (rgb[..., 1] > 150) & (rgb[..., 2] < 130)).sum())


def test_no_ecg_or_text_pixel_survives_in_model_input_or_previews(tmp_path):
    """The synthetic archive burns a name/date banner, yellow labels and a sweeping green ECG strip
    beside the fan, in every format; DICOM regions are rectangles whose corners hold the labels."""
    import torch
    from PIL import Image, ImageSequence

    from echosearch.synth import synthesize_archive
    from echosearch.synth.render import ECG_BOTTOM, ECG_TOP, GEOM
    from echosearch.thumbnails import write_thumbnails
    from echosearch.video import crop_and_scale

    for name, formats in (("d", ("dicom-explicit", "dicom-rle")), ("v", ("avi", "mp4"))):
        synthesize_archive(
            tmp_path / "a" / name, patients=1, seed=4, studies=(1, 1), clips_per_study=(2, 2),
            frames=(20, 24), formats=formats,
        )  # fmt: skip
    fan = torch.from_numpy(GEOM.sector).float()[None, None]
    near_fan = torch.nn.functional.max_pool2d(fan, 7, stride=1, padding=3)[0, 0].numpy() > 0  # codec bleed
    text_or_ecg = np.zeros_like(GEOM.sector)
    text_or_ecg[ECG_TOP : ECG_BOTTOM + 1] = True  # the strip
    text_or_ecg[:16] = True  # name and date banner
    text_or_ecg[36:100, :80] = True  # view, heart rate, depth, probe labels
    clips = sorted(p for p in (tmp_path / "a").rglob("*") if p.suffix in {".dcm", ".avi", ".mp4"})
    assert {p.suffix for p in clips} == {".dcm", ".avi", ".mp4"}
    for path in clips:
        clip = read_clip(path, sampling="uniform:8")
        lit = clip.frames.max(axis=-1) > 40
        beside = lit & text_or_ecg[None] & ~near_fan[None]
        assert not beside.any(), f"{path.name}: {int(beside.sum())} text or ECG pixels beside the sector"
        assert _ecg_green(clip.frames) == 0 and _label_yellow(clip.frames) == 0, path.name
        model_input = crop_and_scale(clip.frames, size=224).numpy().transpose(0, 2, 3, 1)
        assert _ecg_green(model_input) == 0 and _label_yellow(model_input) == 0, path.name
        thumbs = write_thumbnails(tmp_path / "t", clip.meta.sha256, clip.frames, 30.0)
        for name in (thumbs.still, thumbs.preview):
            for frame in ImageSequence.Iterator(Image.open(tmp_path / "t" / name)):
                rgb = np.asarray(frame.convert("RGB"))
                assert _ecg_green(rgb) == 0 and _label_yellow(rgb) == 0, f"{path.name} {name}"
