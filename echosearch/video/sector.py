"""The ultrasound sector: where the scan is, so everything else can be blanked.

Outside the fan an ultrasound frame carries burned-in text (patient name, date, machine settings) and
the ECG strip; blanking it keeps identifiers out of model input and thumbnails and stops the model
keying on text. The sector comes from the DICOM ``SequenceOfUltrasoundRegions`` (the 2D tissue
regions the scanner itself declares) when present; otherwise it is estimated from the clip as the
pixels that change over time, cleaned up: opened (thin moving things such as the ECG trace go),
the largest connected piece kept, closed, holes filled, and replaced by its convex hull (a fan is
convex). A declared region is a rectangle around the fan, whose corners often hold text: when the
estimate lies within it, the two are intersected (:func:`combine`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SPATIAL_FORMAT_2D = 1
# Work at about this many pixels on the long side: plenty for a mask, and fast.
_GRID = 160
_MIN_FRACTION = 0.02  # an estimate smaller than this share of the frame is noise: no mask


def sector_from_regions(regions: Iterable, rows: int, columns: int) -> np.ndarray | None:
    """Union of the 2D regions of a ``SequenceOfUltrasoundRegions``, as a bool ``[rows, columns]`` mask.

    Only 2D (spatial format 1) regions count: M-mode, Doppler spectra and waveform regions (the ECG)
    are exactly what masking should remove.
    """
    mask = np.zeros((rows, columns), dtype=bool)
    for region in regions:
        try:
            if int(region.get("RegionSpatialFormat", 0) or 0) != SPATIAL_FORMAT_2D:
                continue
            x0, y0 = int(region.RegionLocationMinX0), int(region.RegionLocationMinY0)
            x1, y1 = int(region.RegionLocationMaxX1), int(region.RegionLocationMaxY1)
        except (AttributeError, TypeError, ValueError, OverflowError):
            continue
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(columns - 1, x1), min(rows - 1, y1)
        if x1 > x0 and y1 > y0:
            mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask if mask.any() else None


def _dilate(m: torch.Tensor, k: int) -> torch.Tensor:
    return F.max_pool2d(m, k, stride=1, padding=k // 2)


def _erode(m: torch.Tensor, k: int) -> torch.Tensor:
    return 1 - F.max_pool2d(1 - m, k, stride=1, padding=k // 2)


def _propagate_max(labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Spread the largest label through each 8-connected piece of ``mask`` until nothing changes."""
    while True:
        grown = F.max_pool2d(labels, 3, stride=1, padding=1) * mask
        if torch.equal(grown, labels):
            return labels
        labels = grown


def _largest_component(m: torch.Tensor) -> torch.Tensor:
    h, w = m.shape[-2:]
    ids = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, 1, h, w)
    labels = _propagate_max(ids * m, m)
    values, counts = torch.unique(labels[labels > 0], return_counts=True)
    if len(values) == 0:
        return m
    return (labels == values[counts.argmax()]).float()


def _fill_holes(m: torch.Tensor) -> torch.Tensor:
    """Background not reachable from the border is a hole: fill it."""
    background = 1 - m
    seed = torch.zeros_like(m)
    seed[..., 0, :] = seed[..., -1, :] = seed[..., :, 0] = seed[..., :, -1] = 1
    outside = _propagate_max(seed * background, background)
    return ((m > 0) | (outside == 0)).float()


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _convex_hull(m: np.ndarray) -> np.ndarray:
    """The convex hull of a mask, filled. A fan sector is convex, so the hull restores the parts
    of it (dark far field, blood pools at the edge) that barely change over the clip."""
    rows = np.flatnonzero(m.any(axis=1))
    if len(rows) == 0:
        return m
    first = np.argmax(m[rows], axis=1)
    last = m.shape[1] - 1 - np.argmax(m[rows, ::-1], axis=1)
    # corners of the pixels at each row's ends, so the hull covers whole pixels
    points = np.concatenate(
        [np.stack([rows, first], 1), np.stack([rows, last + 1], 1), np.stack([rows + 1, first], 1),
         np.stack([rows + 1, last + 1], 1)]
    ).astype(np.float64)  # fmt: skip
    points = np.unique(points, axis=0)  # sorted by row, then column (Andrew's monotone chain)
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    for p in points:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in points[::-1]:
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = np.array(lower[:-1] + upper[:-1])
    if len(hull) < 3:
        return m
    yy, xx = np.mgrid[0 : m.shape[0], 0 : m.shape[1]] + 0.5  # pixel centres
    inside = np.ones(m.shape, dtype=bool)
    for a, b in zip(hull, np.roll(hull, -1, axis=0), strict=True):
        inside &= (b[0] - a[0]) * (xx - a[1]) - (b[1] - a[1]) * (yy - a[0]) >= 0
    return inside | m


def estimate_sector(frames: np.ndarray, threshold: float = 1.5) -> np.ndarray | None:
    """Estimate the sector of uint8 ``[F,H,W,3]`` frames from where they change over time.

    Returns a bool ``[H,W]`` mask, or ``None`` when the clip has a single frame or nothing moves
    (a still image carries no evidence of where the scan is).
    """
    if frames.shape[0] < 2:
        return None
    h, w = frames.shape[1:3]
    scale = max(1, int(np.ceil(max(h, w) / _GRID)))
    grey = torch.from_numpy(np.ascontiguousarray(frames)).float().mean(dim=-1)  # [F,H,W]
    spread = grey.std(dim=0)[None, None]  # speckle decorrelates frame to frame inside the fan
    spread = F.avg_pool2d(spread, scale, ceil_mode=True)  # a smaller grid, and smoother
    changing = (spread > threshold).float()
    # open first: the sweeping ECG trace and blinking text change over time too, but are thin;
    # closed together with the fan they merge into one piece that the hull then spans (EchoPrime
    # erodes its motion mask before taking the hull for the same reason)
    m = _dilate(_erode(changing, 3), 3)
    m = _largest_component(m)  # before closing: closing would bridge the few pixels to the ECG strip
    m = _erode(_dilate(m, 5), 5)  # close small gaps (dark blood pools barely change)
    m = _fill_holes(m)
    small = _convex_hull(m[0, 0].numpy() > 0)
    if small.mean() < _MIN_FRACTION:
        log.debug("sector estimate too small (%.3f of frame); not masking", small.mean())
        return None
    full = np.repeat(np.repeat(small, scale, axis=0), scale, axis=1)[:h, :w]
    return np.ascontiguousarray(full)


def combine(region: np.ndarray | None, estimate: np.ndarray | None) -> np.ndarray | None:
    """The mask to apply: the estimated fan inside the declared region when the estimate agrees with
    the region (80% of it inside), else the region (a scanner's word beats a guess), else the estimate."""
    if region is None or estimate is None:
        return region if region is not None else estimate
    inside = region & estimate
    if inside.sum() >= 0.8 * estimate.sum():
        return inside
    return region


def apply_mask(frames: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Zero every pixel outside ``mask`` (in place on a copy); frames unchanged when mask is None."""
    if mask is None:
        return frames
    return frames * mask[None, :, :, None].astype(frames.dtype)
