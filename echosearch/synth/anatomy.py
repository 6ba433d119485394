"""Who the synthetic patients are: a persistent anatomy per patient and findings per study.

Anatomy (orientation, heart size and shape, tissue texture seed) is drawn once per patient and reused
for every study, so the same patient looks alike across years and same-patient matching is learnable.
Findings (EF, chamber sizes, devices, effusion) evolve from study to study the way they do in real
follow-up: devices, once implanted, stay; EF drifts; an effusion can come and go.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

SEVERITIES = ("NORMAL", "MILD", "MODERATE", "SEVERE")


@dataclass(frozen=True)
class Anatomy:
    """Per-patient geometry; everything the renderer needs that must not change between studies."""

    rotation_deg: float  # whole-heart tilt in the image plane
    scale: float  # overall heart size
    shift_x: float  # lateral offset of the heart in pixels
    shift_y: float  # depth offset of the heart in pixels
    lv_sphericity: float  # short/long axis ratio of the LV (a shape fingerprint)
    rv_shape: float  # RV width factor
    atria_shape: float  # atrial width/height factor
    wall_brightness: float  # myocardial echogenicity (patient habitus)
    tissue_gain: float  # overall gain of the patient's images
    texture_seed: int  # seed of the patient's static tissue texture (speckle pattern)


@dataclass(frozen=True)
class Findings:
    """Ground truth of one study; every field is drawn into the pixels and, but for ``lv_thrombus``,
    written in the report."""

    ef: int  # ejection fraction in percent (LV area change over the cycle)
    lv_size: int  # 0 normal, 1 mild, 2 moderate, 3 severe dilation
    rv_size: int
    la_size: int
    ra_size: int
    pacer: bool  # pacemaker/ICD lead through RA into RV
    mitraclip: bool  # bright clip on the mitral leaflets
    tavr: bool  # transcatheter aortic valve (bright ring at the aortic valve)
    effusion: int  # pericardial effusion 0 none, 1 small, 2 moderate, 3 large
    heart_rate: int  # beats per minute
    # LV apical mural thrombus: drawn, never written in a report, so that no demo model learns its
    # name and a few-shot probe has a finding to be measured on (see ``draw_thrombus``)
    lv_thrombus: bool = False

    @property
    def lv_function(self) -> int:
        """LV systolic function grade from EF (0 normal >= 55, 1 mild, 2 moderate, 3 severe < 30)."""
        if self.ef >= 55:
            return 0
        if self.ef >= 45:
            return 1
        if self.ef >= 30:
            return 2
        return 3


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """A random but plausible heart for one patient."""
    return Anatomy(
        rotation_deg=float(rng.uniform(-12, 12)),
        scale=float(rng.uniform(0.88, 1.06)),
        shift_x=float(rng.uniform(-14, 14)),
        shift_y=float(rng.uniform(-8, 8)),
        lv_sphericity=float(rng.uniform(0.85, 1.15)),
        rv_shape=float(rng.uniform(0.85, 1.15)),
        atria_shape=float(rng.uniform(0.88, 1.12)),
        wall_brightness=float(rng.uniform(0.42, 0.62)),
        tissue_gain=float(rng.uniform(0.85, 1.1)),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _grade(rng: np.random.Generator, p: tuple[float, float, float, float]) -> int:
    return int(rng.choice(4, p=p))


def draw_baseline(rng: np.random.Generator) -> Findings:
    """Findings of a patient's first study, with prevalences high enough to train and evaluate on."""
    low_ef = rng.random() < 0.4
    ef = int(rng.integers(15, 45)) if low_ef else int(rng.integers(50, 71))
    lv = _grade(rng, (0.0, 0.35, 0.4, 0.25)) if ef < 40 else _grade(rng, (0.7, 0.2, 0.1, 0.0))
    return Findings(
        ef=ef,
        lv_size=lv,
        rv_size=_grade(rng, (0.6, 0.2, 0.12, 0.08)),
        la_size=_grade(rng, (0.5, 0.25, 0.15, 0.1)),
        ra_size=_grade(rng, (0.6, 0.2, 0.12, 0.08)),
        pacer=bool(rng.random() < 0.25),
        mitraclip=bool(rng.random() < 0.18),
        tavr=bool(rng.random() < 0.18),
        effusion=_grade(rng, (0.75, 0.1, 0.1, 0.05)),
        heart_rate=int(rng.integers(55, 105)),
    )


def _drift(rng: np.random.Generator, grade: int) -> int:
    return int(np.clip(grade + rng.choice([-1, 0, 0, 0, 1]), 0, 3))


def follow_up(prev: Findings, rng: np.random.Generator) -> Findings:
    """The next study of the same patient: devices persist, the rest drifts."""
    ef = int(np.clip(prev.ef + rng.normal(0, 7), 12, 72))
    lv = _drift(rng, prev.lv_size)
    if ef < 40:
        lv = max(lv, 1)
    elif ef >= 55:
        lv = min(lv, 1)
    effusion = prev.effusion if rng.random() < 0.6 else _grade(rng, (0.7, 0.12, 0.12, 0.06))
    return replace(
        prev,
        ef=ef,
        lv_size=lv,
        rv_size=_drift(rng, prev.rv_size),
        la_size=_drift(rng, prev.la_size),
        ra_size=_drift(rng, prev.ra_size),
        pacer=prev.pacer or bool(rng.random() < 0.15),
        mitraclip=prev.mitraclip or bool(rng.random() < 0.1),
        tavr=prev.tavr or bool(rng.random() < 0.1),
        effusion=effusion,
        heart_rate=int(np.clip(prev.heart_rate + rng.normal(0, 8), 50, 115)),
    )


def draw_thrombus(prev: Findings | None, rng: np.random.Generator) -> bool:
    """Whether the study shows an LV apical thrombus: in 15% of first studies, independent of every
    other finding (so a probe cannot find it through EF); half resolve by the next study, 8% appear.

    Drawn from its own random stream (the caller's), so the other findings and pixels of an archive
    are the same with or without it."""
    if prev is None:
        return bool(rng.random() < 0.15)
    return bool(rng.random() < (0.5 if prev.lv_thrombus else 0.08))
