"""Seconds per synthetic clip: rendering, and writing each format (prints a table)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from echosearch.synth.anatomy import draw_anatomy, draw_baseline
from echosearch.synth.archive import synthesize_archive
from echosearch.synth.render import compose, render_sector
from echosearch.synth.views import ALL_VIEWS
from echosearch.synth.writers import EXTENSIONS, FORMATS, DicomHeader, derived_uid, write_dicom, write_video


def main(frames: int = 45, repeats: int = 3) -> None:
    rng = np.random.default_rng(0)
    anatomy, findings = draw_anatomy(rng), draw_baseline(rng)
    rows = []
    for view in ALL_VIEWS:
        t = time.perf_counter()
        for _ in range(repeats):
            sector = render_sector(view, anatomy, findings, frames, 30.0, 0.0, rng)
        rows.append((f"render {view}", (time.perf_counter() - t) / repeats))
    phase = np.arange(frames) / 30.0
    t = time.perf_counter()
    rgb = compose(sector, "DOE^JANE", "2020-01-01 09:00", "PLAX", 60, phase)
    rows.append(("banner + ECG", time.perf_counter() - t))
    hdr = DicomHeader("P", "DOE^JANE", "19500101", "F", "A1", derived_uid(1), "20200101", "090000",
                      derived_uid(2), derived_uid(3), 1, 1, "PLAX", 60, "SYNTHECHO", "S")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            path = Path(tmp) / f"x{EXTENSIONS[fmt]}"
            t = time.perf_counter()
            write_dicom(path, rgb, 30.0, hdr, fmt) if fmt.startswith("dicom") else write_video(
                path, rgb, 30.0, fmt
            )
            rows.append((f"write {fmt}", time.perf_counter() - t))
        summary = synthesize_archive(Path(tmp) / "archive", patients=4, seed=0)
        rows.append(
            (f"whole archive, per clip ({summary.clips} clips, 30-60 frames)", summary.seconds_per_clip)
        )
        summary = synthesize_archive(
            Path(tmp) / "all", patients=4, seed=0, views="all", report_style="varied"
        )
        rows.append(
            (f"  --views all --report-style varied ({summary.clips} clips)", summary.seconds_per_clip)
        )
    print(f"{'step (' + str(frames) + ' frames)':<55} {'seconds':>8}")
    for name, secs in rows:
        print(f"{name:<55} {secs:8.3f}")


if __name__ == "__main__":
    main()
