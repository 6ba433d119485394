"""A contact sheet of synthetic clips: one row per finding, one column per view (end-diastole; the EF
row shows end-systole, where a low EF shows as a still-large LV).

Used to eyeball realism (docs/synth_contact_sheet.png) and by anyone who wants to see what the demo
model is trained on. ``python -m echosearch.synth.contact_sheet OUT.png``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from echosearch.synth.anatomy import Findings, draw_anatomy
from echosearch.synth.render import compose, contraction, render_sector
from echosearch.synth.views import ALL_VIEWS

NORMAL = Findings(62, 0, 0, 0, 0, False, False, False, 0, 70)
ROWS = (
    ("normal, EF 62%", NORMAL),
    ("EF 22%, severe dilated thin LV", replace(NORMAL, ef=22, lv_size=3, la_size=2)),
    ("pacemaker lead RA->RV", replace(NORMAL, pacer=True, ra_size=1)),
    ("MitraClip", replace(NORMAL, mitraclip=True, la_size=2, ef=48)),
    ("TAVR", replace(NORMAL, tavr=True)),
    ("moderate pericardial effusion", replace(NORMAL, effusion=2)),
)


def contact_sheet(
    path: str | Path, seed: int = 0, scale: float = 0.5, views: tuple[str, ...] = ALL_VIEWS
) -> Path:
    from PIL import Image, ImageDraw

    tiles = []
    for i, (label, findings) in enumerate(ROWS):
        rng = np.random.default_rng([seed, i])
        anatomy = draw_anatomy(rng)
        row = []
        for view in views:
            n = 30
            sector = render_sector(view, anatomy, findings, n, 30.0, 0.0, rng)
            phase = np.arange(n) / 30.0 * findings.heart_rate / 60.0
            rgb = compose(sector, "DOE^JANE", "2020-01-01 09:00", view, findings.heart_rate, phase)
            c = contraction(phase)
            row.append(rgb[int(np.argmax(c))] if findings.ef < 40 else rgb[int(np.argmin(c))])
        img = Image.fromarray(np.concatenate(row, axis=1))
        ImageDraw.Draw(img).text((6, 110), label, fill=(255, 120, 120))
        tiles.append(np.asarray(img))
    sheet = Image.fromarray(np.concatenate(tiles, axis=0))
    sheet = sheet.resize((int(sheet.width * scale), int(sheet.height * scale)), Image.Resampling.LANCZOS)
    sheet.save(path, optimize=True)
    return Path(path)


if __name__ == "__main__":
    contact_sheet(sys.argv[1] if len(sys.argv) > 1 else "synth_contact_sheet.png")
