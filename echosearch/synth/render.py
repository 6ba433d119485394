"""Render synthetic echo clips: a fan-shaped sector with speckle, chambers that beat, and findings.

Everything is drawn in "heart coordinates" (origin at the crux of the heart, x lateral, y towards the
transducer negative) so a patient's anatomy (tilt, size, offset) is one transform computed once per
clip. Chambers are axis-aligned or tilted ellipses evaluated on the sector's pixels only; a frame is a
few dozen vectorised numpy operations, no per-pixel Python. Findings are drawn so that they are
visible to a model: EF is the LV area change over the cycle, dilation scales chambers, devices are
bright echoes with acoustic shadows, an effusion is a dark rim inside a bright pericardium, an LV
thrombus a mass at the apex (the one finding no report names).

Each view has its own draw function (:data:`DRAW`) and pose (:mod:`echosearch.synth.views`, which also
says what each view shows, hence which findings it draws). A5C and SC4C reuse the 4-chamber heart: the
A5C adds the aortic root between the atria, the SC4C turns it so the RV lies under the liver and the
apex points right. A4C and PLAX are drawn exactly as before the other views existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from echosearch.synth.anatomy import Anatomy, Findings
from echosearch.synth.views import ALL_VIEWS, VIEW_SPECS

HEIGHT, WIDTH = 300, 400
APEX_X, APEX_Y = 200.0, 20.0  # transducer position (sector apex)
SECTOR_RADIUS = 255.0
SECTOR_HALF_ANGLE = np.deg2rad(38.0)
DEPTH_CM = 16.0
CM_PER_PIXEL = DEPTH_CM / SECTOR_RADIUS
ECG_TOP, ECG_BOTTOM = 279, 299
VIEWS = ALL_VIEWS  # what render_sector draws (echosearch.synth.views says what each shows)

# echogenicity levels (before speckle and compression)
TISSUE, BLOOD, PERICARDIUM, VALVE, DEVICE, EFFUSION = 0.13, 0.008, 1.0, 0.95, 1.8, 0.005


@dataclass(frozen=True)
class Geometry:
    """Pixel grids that depend only on the frame size (computed once per process)."""

    sector: np.ndarray  # bool [H, W]
    rows: np.ndarray  # int index of sector pixels
    cols: np.ndarray
    radius: np.ndarray  # float32 depth of each sector pixel (px from apex)
    theta: np.ndarray  # float32 beam angle of each sector pixel (rad)


def _geometry() -> Geometry:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    dx, dy = xx - APEX_X, yy - APEX_Y
    r = np.hypot(dx, dy)
    th = np.arctan2(dx, dy)
    sector = (r < SECTOR_RADIUS) & (np.abs(th) < SECTOR_HALF_ANGLE) & (dy > 0)
    rows, cols = np.nonzero(sector)
    return Geometry(sector, rows, cols, r[sector], th[sector])


GEOM = _geometry()


def sector_bounds() -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel bounding box of the sector, for SequenceOfUltrasoundRegions."""
    return int(GEOM.cols.min()), int(GEOM.rows.min()), int(GEOM.cols.max()), int(GEOM.rows.max())


def contraction(phase: np.ndarray) -> np.ndarray:
    """Ventricular contraction 0 (end-diastole) .. 1 (end-systole) over one beat starting at the R wave."""
    p = np.array([0, 0.08, 0.28, 0.36, 0.48, 0.6, 0.8, 0.9, 1.0])
    c = np.array([0, 0.25, 0.95, 1.0, 0.5, 0.2, 0.12, 0.0, 0.0])
    return np.interp(phase % 1.0, p, c)


def mitral_opening(phase: np.ndarray) -> np.ndarray:
    """Atrioventricular valve opening: E wave after systole, diastasis, A wave, closed in systole."""
    p = np.array([0, 0.38, 0.44, 0.52, 0.66, 0.78, 0.86, 0.95, 1.0])
    o = np.array([0, 0, 0.5, 1.0, 0.45, 0.4, 0.9, 0.1, 0])
    return np.interp(phase % 1.0, p, o)


def aortic_opening(phase: np.ndarray) -> np.ndarray:
    p = np.array([0, 0.06, 0.1, 0.3, 0.36, 1.0])
    o = np.array([0, 0, 1.0, 0.9, 0, 0])
    return np.interp(phase % 1.0, p, o)


class _Canvas:
    """Echogenicity of the sector pixels of one frame, painted in order like layers."""

    def __init__(self, x: np.ndarray, y: np.ndarray, base: np.ndarray):
        self.x, self.y, self.e = x, y, base.copy()

    def ellipse(self, cx: float, cy: float, a: float, b: float, tilt: float = 0.0) -> np.ndarray:
        """Squared normalised radius of each pixel for an ellipse tilted by ``tilt`` radians."""
        dx, dy = self.x - cx, self.y - cy
        if tilt:
            c, s = float(np.cos(tilt)), float(np.sin(tilt))
            dx, dy = c * dx + s * dy, -s * dx + c * dy
        return (dx / a) ** 2 + (dy / b) ** 2

    def segment(self, p0: tuple[float, float], p1: tuple[float, float], width: float) -> np.ndarray:
        """Pixels within ``width`` of the segment p0-p1."""
        (x0, y0), (x1, y1) = p0, p1
        vx, vy = x1 - x0, y1 - y0
        x0, y0, vx, vy = float(x0), float(y0), float(vx), float(vy)
        t = np.clip(((self.x - x0) * vx + (self.y - y0) * vy) / max(vx * vx + vy * vy, 1e-6), 0, 1)
        return (self.x - x0 - t * vx) ** 2 + (self.y - y0 - t * vy) ** 2 < width * width

    def paint(self, mask: np.ndarray, value: float | np.ndarray) -> None:
        self.e = np.where(mask, value, self.e)


@dataclass
class _Shadows:
    points: list[tuple[float, float]]


def _to_pixels(anat: Anatomy, view: str) -> tuple[np.ndarray, np.ndarray]:
    """Heart coordinates of every sector pixel for this patient and view."""
    depth, tilt, size = VIEW_SPECS[view].pose
    crux = (APEX_X + anat.shift_x, depth + anat.shift_y)
    rot = np.deg2rad(anat.rotation_deg + tilt)
    scale = anat.scale * size
    dx = GEOM.cols.astype(np.float32) - crux[0]
    dy = GEOM.rows.astype(np.float32) - crux[1]
    c, s = float(np.cos(rot)), float(np.sin(rot))
    hx, hy = (c * dx + s * dy) / scale, (-s * dx + c * dy) / scale
    return hx.astype(np.float32), hy.astype(np.float32)


def _heart_to_pixel(anat: Anatomy, view: str, x: float, y: float) -> tuple[float, float]:
    depth, tilt, size = VIEW_SPECS[view].pose
    crux = (APEX_X + anat.shift_x, depth + anat.shift_y)
    rot = np.deg2rad(anat.rotation_deg + tilt)
    c, s = np.cos(rot), np.sin(rot)
    x, y = x * anat.scale * size, y * anat.scale * size
    return crux[0] + c * x - s * y, crux[1] + s * x + c * y


def _grow(k: int, per_grade: float) -> float:
    return 1.0 + per_grade * k


def _leaflet(cv: _Canvas, hinge, closed_tip, open_dir, length, opening) -> None:
    ox, oy = hinge[0] + open_dir[0] * length, hinge[1] + open_dir[1] * length
    tip = (closed_tip[0] + (ox - closed_tip[0]) * opening, closed_tip[1] + (oy - closed_tip[1]) * opening)
    cv.paint(cv.segment(hinge, tip, 1.7), VALVE)


def _lv_axes(f: Findings, anat: Anatomy, c: float) -> tuple[float, float, float]:
    """LV short and long semi-axes and wall thickness at contraction ``c`` (area falls by EF*c)."""
    area = 1.0 - f.ef / 100.0 * c
    short = 26.0 * _grow(f.lv_size, 0.17) * anat.lv_sphericity * area**0.6
    long = 50.0 * _grow(f.lv_size, 0.09) * area**0.4
    wall0 = 11.0 if f.ef >= 40 else 7.0
    wall0 = wall0 - 0.9 * f.lv_size
    return short, long, wall0 * (1 + 0.6 * (f.ef / 60.0) * c)


#: Semi-axes of an LV thrombus in px, across and along the LV: ~2.3 x 1.8 cm, a large one (with a 1.4 x
#: 1.1 cm mass the demo model's clip vectors barely moved: probe AUC 0.66 on paired clips, vs 0.87 at 2.5 x 2 cm)
THROMBUS_AXES = (18.0, 14.0)


def _apical_thrombus(cv: _Canvas, lv: tuple, anat: Anatomy) -> None:
    """An LV apical mural thrombus: a rounded mass a little brighter than the myocardium,
    attached to the apex inside the cavity (``lv`` is the cavity ellipse; the mass moves with it)."""
    cx, cy, _, b, tilt = lv
    depth = b - 0.7 * THROMBUS_AXES[1]  # the mass's centre, on the long axis just inside the apex
    mx, my = cx + np.sin(tilt) * depth, cy - np.cos(tilt) * depth
    inside = cv.ellipse(*lv) < 1
    cv.paint((cv.ellipse(mx, my, *THROMBUS_AXES, tilt) < 1) & inside, 1.25 * anat.wall_brightness)


def _draw_a4c(
    cv: _Canvas,
    f: Findings,
    anat: Anatomy,
    c: float,
    o: float,
    ao: float,
    five: bool = False,
    lvot_tavr: bool = True,
) -> list:
    """Apical 4-chamber; ``five``: the A5C (aortic root between the atria, TAVR in it); the SC4C is
    this heart seen from below (its pose turns it), without the LVOT ring (``lvot_tavr``)."""
    s_lv, l_lv, w_lv = _lv_axes(f, anat, c)
    area_rv = 1.0 - 0.35 * c
    s_rv = 21.0 * _grow(f.rv_size, 0.2) * anat.rv_shape * area_rv**0.6
    l_rv = 44.0 * _grow(f.rv_size, 0.08) * area_rv**0.4
    atrial = 1.0 + 0.12 * c
    s_la, l_la = 23.0 * _grow(f.la_size, 0.16) * anat.atria_shape * atrial, 21.0 * _grow(f.la_size, 0.14)
    s_ra, l_ra = 22.0 * _grow(f.ra_size, 0.16) * anat.atria_shape * atrial, 20.0 * _grow(f.ra_size, 0.14)
    sep = w_lv
    lv = (sep / 2 + s_lv, -0.78 * l_lv, s_lv, l_lv, 0.10)
    rv = (-(sep / 2 + 4 + s_rv), -0.78 * l_rv, s_rv, l_rv, -0.16)
    la = (2 + s_la, 0.8 * l_la, s_la, l_la)
    ra = (-(2 + s_ra), 0.8 * l_ra, s_ra, l_ra)
    if five:  # tilted anteriorly: the atria are cut smaller, apart, around the aortic root
        la = (la[0] + 9.0, la[1] + 5.0, 0.85 * la[2], 0.85 * la[3])
        ra = (ra[0] - 9.0, ra[1] + 5.0, 0.85 * ra[2], 0.85 * ra[3])
    above, below = cv.y < 0, cv.y >= 0
    eff = (0.0, 5.0, 10.0, 16.0)[f.effusion]
    peri = np.zeros_like(above)
    effm = np.zeros_like(above)
    for cx, cy, a, b, t, w in (lv + (w_lv,), rv + (4.0,)):
        peri |= cv.ellipse(cx, cy, a + w + eff + 3, b + w + eff + 3, t) < 1
        effm |= cv.ellipse(cx, cy, a + w + eff, b + w + eff, t) < 1
    cv.paint(peri & (cv.y < 3), PERICARDIUM)
    cv.paint(effm & (cv.y < 3), EFFUSION if eff else TISSUE)
    wall = anat.wall_brightness
    walls = cv.ellipse(*lv[:2], lv[2] + w_lv, lv[3] + w_lv, lv[4]) < 1
    walls |= cv.ellipse(*rv[:2], rv[2] + 4, rv[3] + 4, rv[4]) < 1
    walls |= (cv.ellipse(*la[:2], la[2] + 3.5, la[3] + 3.5) < 1) | (
        cv.ellipse(*ra[:2], ra[2] + 3.5, ra[3] + 3.5) < 1
    )
    cv.paint(walls, wall)
    blood = ((cv.ellipse(*lv) < 1) | (cv.ellipse(*rv) < 1)) & above
    blood |= ((cv.ellipse(*la) < 1) | (cv.ellipse(*ra) < 1)) & below
    cv.paint(blood, BLOOD)
    if f.lv_thrombus:
        _apical_thrombus(cv, lv, anat)
    root = None
    if five:  # LVOT and aortic root, running from the LV base down between the atria
        root = (sep / 2 + 3.0, 20.0, 11.0, 26.0, 0.15)
        cv.paint(cv.ellipse(*root[:2], root[2] + 3.5, root[3] + 3.5, root[4]) < 1, wall)
        cv.paint((cv.ellipse(*root) < 1) | (cv.ellipse(sep / 2 + 3.0, -6.0, 10.0, 8.0) < 1), BLOOD)
        av = (root[0] - 1.0, 2.0)
        for side in (-1, 1):
            hinge = (av[0] + side * 10.0, av[1] - 1.0)
            closed, opened = (av[0], av[1] + 5.0), (av[0] + side * 8.5, av[1] + 12.0)
            tip = (closed[0] + (opened[0] - closed[0]) * ao, closed[1] + (opened[1] - closed[1]) * ao)
            cv.paint(cv.segment(hinge, tip, 1.5), VALVE)
    # mitral and tricuspid leaflets: hinge at the annulus, meet in systole, open towards the apex
    m_med, m_lat = (sep / 2 + 0.45 * s_lv, 0.0), (sep / 2 + 1.55 * s_lv, 0.0)
    m_tip = (sep / 2 + s_lv, -6.0)
    clip = f.mitraclip
    op = o * (0.35 if clip else 1.0)
    _leaflet(cv, m_med, m_tip, (0.15, -1.0), 0.75 * s_lv, op)
    _leaflet(cv, m_lat, m_tip, (-0.1, -1.0), 0.6 * s_lv, op)
    t_med, t_lat = (-(sep / 2 + 4 + 0.5 * s_rv), 0.0), (-(sep / 2 + 4 + 1.5 * s_rv), 0.0)
    t_tip = (-(sep / 2 + 4 + s_rv), -5.0)
    _leaflet(cv, t_med, t_tip, (-0.15, -1.0), 0.6 * s_rv, o)
    _leaflet(cv, t_lat, t_tip, (0.1, -1.0), 0.6 * s_rv, o)
    shadows = []
    if clip:  # ~0.45 x 1.3 cm, along the grasped leaflet tips, pointing into the LV
        cv.paint(cv.ellipse(m_tip[0], m_tip[1] - 7, 3.6, 10.5) < 1, DEVICE)
        shadows.append((m_tip[0], m_tip[1] - 7))
    if f.tavr and root is not None:  # the valve frame in the aortic root
        ring = cv.ellipse(root[0] - 1.0, 3.0, 12.5, 7.0, 0.15)
        cv.paint((ring < 1.0) & (ring > 0.5), DEVICE)
        shadows.append((root[0] - 1.0, 3.0))
    elif f.tavr and lvot_tavr:  # seen in the LVOT of a slightly anterior-angled apical view
        ring = cv.ellipse(sep / 2 + 7, -12.0, 9.0, 6.0, 0.5)
        cv.paint((ring < 1.0) & (ring > 0.45), DEVICE)
        shadows.append((sep / 2 + 7, -12.0))
    if f.pacer:
        p0 = (ra[0] - 0.3 * s_ra, ra[1] + 0.85 * l_ra)
        p1 = (rv[0] + 0.1 * s_rv, -3.0)
        p2 = (rv[0] + 0.35 * s_rv, rv[1] - 0.8 * l_rv)
        cv.paint(cv.segment(p0, p1, 1.6) | cv.segment(p1, p2, 1.6), DEVICE)
        shadows.append(((p1[0] + p2[0]) / 2, (p1[1] + p2[1]) / 2))
    return shadows


def _draw_plax(cv: _Canvas, f: Findings, anat: Anatomy, c: float, o: float, ao: float) -> list:
    s_lv, l_lv, w_lv = _lv_axes(f, anat, c)
    s_lv, l_lv = s_lv * 0.95, l_lv * 1.15
    area_rv = 1.0 - 0.3 * c
    s_rv = 12.0 * _grow(f.rv_size, 0.3) * anat.rv_shape * area_rv
    l_rv = 70.0
    s_ao = 11.0
    s_la = 21.0 * _grow(f.la_size, 0.16) * anat.atria_shape * (1 + 0.1 * c)
    l_la = 27.0 * _grow(f.la_size, 0.14)
    lv_cy = 0.0
    rv_cy = lv_cy - s_lv - w_lv - s_rv
    ao_cy = lv_cy - 0.75 * s_lv - 6
    la_cy = ao_cy + s_ao + 6 + s_la
    lv = (-0.7 * l_lv, lv_cy, l_lv, s_lv)
    rv = (-40.0, rv_cy, l_rv, s_rv)
    aorta = (52.0, ao_cy, 45.0, s_ao)
    la = (6 + l_la, la_cy, l_la, s_la)
    dao = (6 + l_la, la_cy + s_la + 13, 8.0, 7.0)
    eff = (0.0, 5.0, 10.0, 16.0)[f.effusion]
    post = cv.ellipse(lv[0], lv[1], lv[2] + w_lv + eff + 3, lv[3] + w_lv + eff + 3) < 1
    post |= cv.ellipse(la[0], la[1], la[2] + 6 + eff * 0.5, la[3] + 6 + eff * 0.5) < 1
    cv.paint(post & (cv.y > lv_cy), PERICARDIUM)
    effm = cv.ellipse(lv[0], lv[1], lv[2] + w_lv + eff, lv[3] + w_lv + eff) < 1
    effm |= cv.ellipse(la[0], la[1], la[2] + 3 + eff * 0.5, la[3] + 3 + eff * 0.5) < 1
    cv.paint(effm & (cv.y > lv_cy - 5), EFFUSION if eff else TISSUE)
    wall = anat.wall_brightness
    walls = cv.ellipse(lv[0], lv[1], lv[2] + w_lv, lv[3] + w_lv) < 1
    walls |= cv.ellipse(rv[0], rv[1], rv[2] + 4, rv[3] + 4) < 1
    walls |= cv.ellipse(aorta[0], aorta[1], aorta[2] + 4, aorta[3] + 4) < 1
    walls |= cv.ellipse(la[0], la[1], la[2] + 3, la[3] + 3) < 1
    walls |= cv.ellipse(*dao[:2], dao[2] + 3, dao[3] + 3) < 1
    cv.paint(walls, wall)
    blood = (cv.ellipse(*lv) < 1) & (cv.x < 2)
    blood |= cv.ellipse(*rv) < 1
    blood |= (cv.ellipse(*aorta) < 1) & (cv.x > 6)
    blood |= cv.ellipse(0.0, ao_cy + 2, 14.0, 9.0) < 1  # LVOT
    blood |= (cv.ellipse(*la) < 1) & (cv.x > 0)
    blood |= cv.ellipse(*dao) < 1
    cv.paint(blood, BLOOD)
    # aortic cusps: open (against the walls) in systole, closed (meeting mid-root) in diastole
    av_x = 10.0
    for side in (-1, 1):
        hinge = (av_x, ao_cy + side * s_ao)
        closed = (av_x + 7, ao_cy)
        opened = (av_x + 12, ao_cy + side * (s_ao - 1.5))
        tip = (closed[0] + (opened[0] - closed[0]) * ao, closed[1] + (opened[1] - closed[1]) * ao)
        cv.paint(cv.segment(hinge, tip, 1.5), VALVE)
    # mitral leaflets: anterior from the aortic root, posterior from the posterior annulus
    ant, post_h = (2.0, ao_cy + s_ao + 2), (2.0, la_cy + 0.55 * s_la)
    tip = (-8.0, (ant[1] + post_h[1]) / 2)
    op = o * (0.35 if f.mitraclip else 1.0)
    _leaflet(cv, ant, tip, (-0.9, -0.2), 0.9 * s_lv, op)
    _leaflet(cv, post_h, tip, (-0.9, 0.35), 0.55 * s_lv, op)
    shadows = []
    if f.mitraclip:
        cv.paint(cv.ellipse(tip[0] - 7, tip[1], 10.5, 3.6) < 1, DEVICE)
        shadows.append((tip[0] - 7, tip[1]))
    if f.tavr:
        ring = cv.ellipse(av_x + 6, ao_cy, 10.0, s_ao + 2.0)
        cv.paint((ring < 1.0) & (ring > 0.55), DEVICE)
        shadows.append((av_x + 6, ao_cy))
    if f.pacer:
        cv.paint(cv.segment((rv[0] + 40, rv_cy - 2), (rv[0] - 35, rv_cy + 3), 1.6), DEVICE)
        shadows.append((rv[0], rv_cy))
    return shadows


def _rims(cv: _Canvas, shapes, eff: float, keep: np.ndarray | None = None) -> None:
    """Pericardium (bright) around ``shapes`` (cx, cy, a, b, tilt), an effusion (dark) inside it."""
    inner = np.zeros(cv.x.shape, dtype=bool)
    fluid = np.zeros_like(inner)
    outer = np.zeros_like(inner)
    for cx, cy, a, b, t in shapes:
        inner |= cv.ellipse(cx, cy, a, b, t) < 1
        fluid |= cv.ellipse(cx, cy, a + eff, b + eff, t) < 1
        outer |= cv.ellipse(cx, cy, a + eff + 3, b + eff + 3, t) < 1
    keep = np.ones_like(inner) if keep is None else keep
    cv.paint(outer & ~fluid & keep, PERICARDIUM)
    if eff:
        cv.paint(fluid & ~inner & keep, EFFUSION)


def _mitral(cv: _Canvas, cx: float, half: float, s_lv: float, o: float, clip: bool) -> list:
    """Mitral leaflets hinged at the annulus (y = 0, ``cx`` +- ``half``), a MitraClip on their tips."""
    tip = (cx, -6.0)
    op = o * (0.35 if clip else 1.0)
    _leaflet(cv, (cx - half, 0.0), tip, (0.15, -1.0), 0.75 * s_lv, op)
    _leaflet(cv, (cx + half, 0.0), tip, (-0.1, -1.0), 0.6 * s_lv, op)
    if not clip:
        return []
    cv.paint(cv.ellipse(tip[0], tip[1] - 7, 3.6, 10.5) < 1, DEVICE)
    return [(tip[0], tip[1] - 7)]


def _atrium(f_size: int, anat: Anatomy, c: float, width: float, height: float) -> tuple[float, float]:
    return width * _grow(f_size, 0.16) * anat.atria_shape * (1.0 + 0.12 * c), height * _grow(f_size, 0.14)


def _draw_a2c(cv: _Canvas, f: Findings, anat: Anatomy, c: float, o: float, ao: float) -> list:
    """Apical 2-chamber: LV above LA only (no right heart), the LA appendage on the lateral side."""
    s_lv, l_lv, w_lv = _lv_axes(f, anat, c)
    s_lv *= 1.08
    s_la, l_la = _atrium(f.la_size, anat, c, 24.0, 22.0)
    lv = (0.0, -0.78 * l_lv, s_lv, l_lv, 0.04)
    la = (0.0, 0.8 * l_la, s_la, l_la, 0.0)
    laa = (0.95 * s_la, 0.15 * l_la, 8.0, 4.5, -0.6)
    eff = (0.0, 5.0, 10.0, 16.0)[f.effusion]
    _rims(cv, [(lv[0], lv[1], lv[2] + w_lv, lv[3] + w_lv, lv[4])], eff, cv.y < 3)
    walls = cv.ellipse(*lv[:2], lv[2] + w_lv, lv[3] + w_lv, lv[4]) < 1
    walls |= (cv.ellipse(*la[:2], la[2] + 3.5, la[3] + 3.5) < 1) | (cv.ellipse(*laa[:2], 11.0, 7.5, -0.6) < 1)
    cv.paint(walls, anat.wall_brightness)
    blood = (cv.ellipse(*lv) < 1) & (cv.y < 0)
    blood |= ((cv.ellipse(*la) < 1) | (cv.ellipse(*laa) < 1)) & (cv.y >= 0)
    cv.paint(blood, BLOOD)
    if f.lv_thrombus:
        _apical_thrombus(cv, lv, anat)
    return _mitral(cv, 0.0, 0.55 * s_lv, s_lv, o, f.mitraclip)


def _draw_a3c(cv: _Canvas, f: Findings, anat: Anatomy, c: float, o: float, ao: float) -> list:
    """Apical long axis: LV above, LA below on the septal side, LVOT and aortic root running down-laterally."""
    s_lv, l_lv, w_lv = _lv_axes(f, anat, c)
    s_la, l_la = _atrium(f.la_size, anat, c, 21.0, 21.0)
    lv = (0.0, -0.78 * l_lv, s_lv, l_lv, 0.06)
    la = (-0.5 * s_lv, 2.0 + 0.8 * l_la, s_la, l_la, 0.0)
    axis = (0.43, 0.9)  # direction of the aortic root, away from the LV
    av = (0.5 * s_lv + 5.0, 1.0)
    aorta = (av[0] + 24 * axis[0], av[1] + 24 * axis[1], 11.0, 30.0, -0.45)
    eff = (0.0, 5.0, 10.0, 16.0)[f.effusion]
    _rims(cv, [(lv[0], lv[1], lv[2] + w_lv, lv[3] + w_lv, lv[4])], eff, cv.y < 3)
    walls = cv.ellipse(*lv[:2], lv[2] + w_lv, lv[3] + w_lv, lv[4]) < 1
    walls |= cv.ellipse(*la[:2], la[2] + 3.5, la[3] + 3.5) < 1
    walls |= cv.ellipse(*aorta[:2], aorta[2] + 3.5, aorta[3] + 3.5, aorta[4]) < 1
    cv.paint(walls, anat.wall_brightness)
    blood = (cv.ellipse(*lv) < 1) & (cv.y < 0)
    blood |= (cv.ellipse(*la) < 1) & (cv.y >= 0)
    blood |= (cv.ellipse(*aorta) < 1) | (cv.ellipse(av[0] - 3.0, -5.0, 10.0, 7.0) < 1)  # root + LVOT
    cv.paint(blood, BLOOD)
    if f.lv_thrombus:
        _apical_thrombus(cv, lv, anat)
    across = (axis[1], -axis[0])
    for side in (-1, 1):  # aortic cusps: meet mid-root in diastole, lie against the walls in systole
        hinge = (av[0] + side * 10 * across[0], av[1] + side * 10 * across[1])
        closed = (av[0] + 4 * axis[0], av[1] + 4 * axis[1])
        opened = (hinge[0] + 10 * axis[0], hinge[1] + 10 * axis[1])
        tip = (closed[0] + (opened[0] - closed[0]) * ao, closed[1] + (opened[1] - closed[1]) * ao)
        cv.paint(cv.segment(hinge, tip, 1.5), VALVE)
    shadows = _mitral(cv, la[0], 0.5 * s_la, s_lv, o, f.mitraclip)
    if f.tavr:
        ring = cv.ellipse(av[0], av[1], 12.5, 7.0, -0.45)
        cv.paint((ring < 1.0) & (ring > 0.5), DEVICE)
        shadows.append(av)
    return shadows


def _draw_psax_pm(cv: _Canvas, f: Findings, anat: Anatomy, c: float, o: float, ao: float) -> list:
    """Short axis at the papillary muscles: a round LV with two papillary muscles, the RV crescent in front."""
    _, _, w_lv = _lv_axes(f, anat, c)
    r = 31.0 * _grow(f.lv_size, 0.17) * anat.lv_sphericity**0.5 * (1.0 - f.ef / 100.0 * c) ** 0.5
    lv = (0.0, 0.0, 1.04 * r, r, 0.0)
    g_rv = _grow(f.rv_size, 0.2) * anat.rv_shape * (1.0 - 0.3 * c) ** 0.5
    rv = (-0.25 * r - 4.0, -(0.45 * r + 8.0), (r + 20.0) * g_rv, 0.6 * r + 12.0 * g_rv, 0.45)
    eff = (0.0, 5.0, 10.0, 16.0)[f.effusion]
    _rims(cv, [(0.0, 0.0, lv[2] + w_lv, lv[3] + w_lv, 0.0), (rv[0], rv[1], rv[2] + 4, rv[3] + 4, rv[4])], eff)
    lv_wall = cv.ellipse(0.0, 0.0, lv[2] + w_lv, lv[3] + w_lv) < 1
    cv.paint((cv.ellipse(rv[0], rv[1], rv[2] + 4, rv[3] + 4, rv[4]) < 1) | lv_wall, anat.wall_brightness)
    cv.paint((cv.ellipse(*rv) < 1) & ~lv_wall, BLOOD)
    cv.paint(cv.ellipse(*lv) < 1, BLOOD)
    pap = 0.22 * r * (1.0 + 0.3 * c)
    muscles = (cv.ellipse(-0.45 * r, 0.5 * r, pap, 1.2 * pap) < 1) | (
        cv.ellipse(0.5 * r, 0.4 * r, pap, 1.2 * pap) < 1
    )
    cv.paint(muscles, anat.wall_brightness)
    if not f.pacer:
        return []
    lead = (rv[0] - 0.2 * rv[2], rv[1] + 0.1 * rv[3])  # the lead crosses the cut obliquely
    cv.paint(cv.segment((lead[0] - 6, lead[1] - 3), (lead[0] + 6, lead[1] + 3), 1.8), DEVICE)
    return [lead]


def _draw_psax_av(cv: _Canvas, f: Findings, anat: Anatomy, c: float, o: float, ao: float) -> list:
    """Short axis at the aortic valve: three cusps in the middle, LA behind, RA and tricuspid valve to
    the left, the RV outflow tract arching in front to the pulmonary valve and artery on the right."""
    R = 12.5
    s_la, h_la = _atrium(f.la_size, anat, c, 22.0, 16.0)
    s_ra, h_ra = _atrium(f.ra_size, anat, c, 16.0, 15.0)
    la = (4.0, R + 6.0 + h_la, s_la, h_la, 0.0)
    ra = (-R - 8.0 - 0.7 * s_ra, R - 2.0 + 0.6 * h_ra, s_ra, h_ra, -0.3)
    g_rv = _grow(f.rv_size, 0.15) * (1.0 - 0.25 * c)
    out_rv = (-4.0, -2.0, (R + 30.0) * g_rv, (R + 26.0) * g_rv, 0.0)
    pa = (29.0, -4.0, 8.5, 20.0, -0.35)
    eff = (0.0, 5.0, 10.0, 16.0)[f.effusion]
    outline = [(*out_rv[:2], out_rv[2] + 4, out_rv[3] + 4, 0.0), (*la[:4], 0.0), (*ra[:4], -0.3), pa]
    _rims(cv, [(cx, cy, a + 3.5, b + 3.5, t) for cx, cy, a, b, t in outline], eff, cv.y > -out_rv[3] - 8)
    rvot = (
        (cv.ellipse(*out_rv) < 1)
        & (cv.ellipse(-1.0, 1.0, R + 10.0, R + 10.0) >= 1)
        & (cv.y < 4)
        & (cv.x < 24)
    )
    walls = (cv.ellipse(*la[:2], la[2] + 3.5, la[3] + 3.5) < 1) | (
        cv.ellipse(*ra[:2], ra[2] + 3.5, ra[3] + 3.5, -0.3) < 1
    )
    walls |= cv.ellipse(*pa[:2], pa[2] + 3.5, pa[3] + 3.5, pa[4]) < 1
    walls |= (cv.ellipse(out_rv[0], out_rv[1], out_rv[2] + 4, out_rv[3] + 4) < 1) & (cv.y < 8) & (cv.x < 26)
    walls |= cv.ellipse(0.0, 0.0, R + 4.0, R + 4.0) < 1
    cv.paint(walls, anat.wall_brightness)
    blood = (cv.ellipse(*la) < 1) | (cv.ellipse(*ra) < 1) | (cv.ellipse(*pa) < 1) | rvot
    blood |= cv.ellipse(0.0, 0.0, R, R) < 1
    cv.paint(blood, BLOOD)
    # three cusps: closed they meet in the centre (the "Mercedes" sign), open they leave a triangle
    angles = np.deg2rad([-90.0, 30.0, 150.0])
    for k in range(3):
        a0, a1 = angles[k], angles[(k + 1) % 3]
        mid = (a0 + a1) / 2 + (np.pi if k == 2 else 0.0)
        h0, h1 = (R * np.cos(a0), R * np.sin(a0)), (R * np.cos(a1), R * np.sin(a1))
        belly = (0.8 * R * np.cos(mid) * ao, 0.8 * R * np.sin(mid) * ao)
        cv.paint(cv.segment(h0, belly, 1.4) | cv.segment(belly, h1, 1.4), VALVE)
    tv_tip = (-R - 13.0, -4.0 - 8.0 * o)  # tricuspid leaflets between RA and RV inflow
    cv.paint(cv.segment((-R - 6.0, 2.0), tv_tip, 1.5) | cv.segment((-R - 21.0, 0.0), tv_tip, 1.5), VALVE)
    shadows = []
    if f.tavr:  # the valve frame seen end-on: a bright ring in the annulus
        ring = cv.ellipse(0.0, 0.0, R + 3.0, R + 3.0)
        cv.paint((ring < 1.0) & (ring > 0.72), DEVICE)
        shadows.append((0.0, R + 3.0))
    if f.pacer:
        p0, p1, p2 = (ra[0] - 0.2 * s_ra, ra[1] + 0.5 * h_ra), (-R - 13.0, 0.0), (-R - 24.0, -16.0)
        cv.paint(cv.segment(p0, p1, 1.6) | cv.segment(p1, p2, 1.6), DEVICE)
        shadows.append(p1)
    return shadows


DRAW = {
    "A4C": _draw_a4c,
    "PLAX": _draw_plax,
    "A2C": _draw_a2c,
    "A3C": _draw_a3c,
    "A5C": partial(_draw_a4c, five=True),
    "PSAX-PM": _draw_psax_pm,
    "PSAX-AV": _draw_psax_av,
    "SC4C": partial(_draw_a4c, lvot_tavr=False),
}


def _polar_noise(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Speckle: Rayleigh noise on a polar grid (coarse across beams), smoothed, mean ~1."""
    nd, na = 200, 110
    static = rng.rayleigh(1.0, size=(nd, na)).astype(np.float32)
    moving = rng.rayleigh(1.0, size=(frames, nd, na)).astype(np.float32)
    field = (0.6 * static[None] + 0.4 * moving) ** 1.6
    return field / float(field.mean())


def _tissue_texture(seed: int) -> np.ndarray:
    """Slowly varying tissue echogenicity per patient (muscle layers, fat), sampled on sector pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.55, 1.45, size=(12, 16)).astype(np.float32)
    ry = (GEOM.rows / HEIGHT * 11).astype(np.float32)
    rx = (GEOM.cols / WIDTH * 15).astype(np.float32)
    y0, x0 = np.floor(ry).astype(int), np.floor(rx).astype(int)
    fy, fx = ry - y0, rx - x0
    y1, x1 = np.minimum(y0 + 1, 11), np.minimum(x0 + 1, 15)
    top = coarse[y0, x0] * (1 - fx) + coarse[y0, x1] * fx
    bot = coarse[y1, x0] * (1 - fx) + coarse[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def render_sector(
    view: str, anat: Anatomy, f: Findings, frames: int, fps: float, phase0: float, rng: np.random.Generator
) -> np.ndarray:
    """Grey-level frames uint8 [F, H, W] with only the ultrasound sector drawn (black elsewhere)."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}")
    x, y = _to_pixels(anat, view)
    t = np.arange(frames) / fps
    phase = phase0 + t * f.heart_rate / 60.0
    cs, os_, aos = contraction(phase), mitral_opening(phase), aortic_opening(phase)
    r, th = GEOM.radius, GEOM.theta
    base = TISSUE * _tissue_texture(anat.texture_seed)
    speckle = _polar_noise(rng, frames)
    ri = np.clip((r / SECTOR_RADIUS * 199).astype(np.int32), 0, 199)
    ti = np.clip(((th + SECTOR_HALF_ANGLE) / (2 * SECTOR_HALF_ANGLE) * 109).astype(np.int32), 0, 109)
    depth = r / SECTOR_RADIUS
    tgc = (0.75 + 0.5 * depth) * np.exp(-1.1 * depth) * 1.9 * anat.tissue_gain
    haze = 0.45 * np.exp(-(((r - 4) / 22.0) ** 2))  # near-field clutter under the probe
    edge = np.clip((SECTOR_HALF_ANGLE - np.abs(th)) / 0.06, 0.35, 1.0)
    draw = DRAW[view]
    if view == "SC4C":  # the liver lies between the transducer and the heart
        liver = np.clip((100.0 - r) / 14.0, 0.0, 1.0) * np.clip((r - 10.0) / 10.0, 0.0, 1.0)
        base = base * (1.0 + 0.9 * liver)
    out = np.zeros((frames, HEIGHT, WIDTH), dtype=np.float32)
    for i in range(frames):
        cv = _Canvas(x, y, base)
        shadows = draw(cv, f, anat, float(cs[i]), float(os_[i]), float(aos[i]))
        e = cv.e
        for px, py in shadows:
            sx, sy = _heart_to_pixel(anat, view, px, py)
            r0, t0 = np.hypot(sx - APEX_X, sy - APEX_Y), np.arctan2(sx - APEX_X, sy - APEX_Y)
            e = np.where((r > r0 + 6) & (np.abs(th - t0) < 3.5 / max(r0, 1.0)), e * 0.6, e)
        img = (e * speckle[i][ri, ti] + haze) * tgc * edge
        out[i][GEOM.rows, GEOM.cols] = img
    out = _blur(out)
    out = np.clip(out, 0, 1.3) / 1.3
    return (np.sqrt(out) * 255.0 + 0.5).astype(np.uint8) * GEOM.sector[None]


def _blur(frames: np.ndarray) -> np.ndarray:
    """3x3 box blur of every frame at once (point-spread function of the beam)."""
    p = np.pad(frames, ((0, 0), (1, 1), (1, 1)), mode="edge")
    rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    return (rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]) / 9.0


def ecg_trace(phase: np.ndarray) -> np.ndarray:
    """ECG amplitude (-0.3..1) at each cardiac phase: P wave, QRS spike at phase 0, T wave."""
    p = phase % 1.0
    d = np.minimum(p, 1.0 - p)  # distance to the R wave
    qrs = np.exp(-((d / 0.012) ** 2)) - 0.25 * np.exp(-(((p - 0.035) / 0.012) ** 2))
    t_wave = 0.28 * np.exp(-(((p - 0.3) / 0.05) ** 2))
    p_wave = 0.15 * np.exp(-(((p - 0.88) / 0.03) ** 2))
    return qrs + t_wave + p_wave


def _banner(name: str, when: str, view: str, heart_rate: int) -> np.ndarray:
    """RGB overlay (0 where empty) with burned-in text: the kind of PHI real echo frames carry."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    draw.text((4, 2), name.replace("^", ", "), fill=(235, 235, 235), font=font)
    draw.text((WIDTH - 124, 2), when, fill=(235, 235, 235), font=font)
    for i, line in enumerate((view, f"HR {heart_rate} bpm", f"{DEPTH_CM:.0f} cm", "SYNTH S5-1")):
        draw.text((6, 40 + 14 * i), line, fill=(220, 200, 80), font=font)
    return np.asarray(img)


def compose(
    sector: np.ndarray, name: str, when: str, view: str, heart_rate: int, phase: np.ndarray
) -> np.ndarray:
    """Full RGB frames [F, H, W, 3]: grey sector + banner text + a sweeping green ECG strip."""
    frames = sector.shape[0]
    rgb = np.repeat(sector[..., None], 3, axis=3)
    banner = _banner(name, when, view, heart_rate)
    on = banner.any(axis=2)
    rgb[:, on] = banner[on]
    xs = np.arange(20, WIDTH - 20)
    # the strip shows the clip's whole duration; each frame reveals it up to "now"
    strip_phase = np.interp(xs, [xs[0], xs[-1]], [phase[0], phase[-1]])
    mid = (ECG_TOP + ECG_BOTTOM) / 2 + 5
    ys = np.round(mid - 12 * ecg_trace(strip_phase)).astype(int)
    cursor = np.interp(np.arange(frames), [0, max(frames - 1, 1)], [xs[0], xs[-1]])
    shown = xs[None, :] <= cursor[:, None]  # [F, n]
    for dy in (0, 1):
        f_idx, x_idx = np.nonzero(shown)
        rgb[f_idx, np.clip(ys[x_idx] + dy, ECG_TOP, ECG_BOTTOM), xs[x_idx]] = (40, 210, 60)
    return rgb
