"""``synthesize_archive``: a whole synthetic echo archive with ground truth, for the demo, tests and training.

Layout: ``OUT/<PatientID>/<Accession>/<nn>.<dcm|avi|mp4>``, plus ``manifest.csv`` (one row per clip with
every ground-truth value) and ``reports.csv`` (one report per study). Every random choice comes from a
``SeedSequence`` keyed by (seed, patient, study, clip), so an archive is byte-for-byte reproducible
and a patient's clips do not change when ``patients`` grows.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from echosearch.errors import UsageError
from echosearch.synth.anatomy import (
    Anatomy,
    Findings,
    draw_anatomy,
    draw_baseline,
    draw_thrombus,
    follow_up,
)
from echosearch.synth.render import compose, render_sector
from echosearch.synth.reports import REPORT_STYLES, study_report
from echosearch.synth.views import LEGACY_VIEWS, VIEW_SPECS, parse_views
from echosearch.synth.writers import (
    EXTENSIONS,
    FORMATS,
    DicomHeader,
    derived_uid,
    write_dicom,
    write_video,
)

log = logging.getLogger(__name__)

FPS = 30.0
# format of the n-th clip of the archive: mostly DICOM (as PACS exports are), some AVI/MP4
FORMAT_CYCLE = (
    "dicom-explicit",
    "dicom-j2k",
    "dicom-explicit",
    "dicom-rle",
    "dicom-j2k",
    "dicom-explicit",
    "avi",
    "mp4",
)
MANIFEST_FIELDS = (
    "path", "format", "patient_id", "study_uid", "accession", "study_date", "study_index", "series_uid",
    "sop_uid", "view", "frames", "fps", "heart_rate", "ef", "lv_function", "lv_size", "rv_size", "la_size",
    "ra_size", "pacer", "mitraclip", "tavr", "effusion", "lv_thrombus",
)  # fmt: skip
SUMMARY_FINDINGS = ("pacer", "mitraclip", "tavr", "effusion", "lv_thrombus")  # clips counted per finding
VENDORS = (("SYNTHECHO", "Vivid S-Synth"), ("ACME ULTRASOUND", "EchoStar 9"), ("NORTHWIND MEDICAL", "NW-5C"))
_LAST = ("ALDERWICK", "BRANTLEY", "CORVANE", "DELMORE", "ESTRIDGE", "FALLOWAY", "GRISSOM", "HOLLENBY",
         "IVERSEN", "JARROWAY", "KESTLER", "LANGMOOR", "MERRIDEW", "NORTHAM", "OAKRIDGE", "PELLINGTON")  # fmt: skip
_FIRST = ("ADA", "BRUNO", "CLARA", "DMITRI", "ELENA", "FELIX", "GRETA", "HUGO", "IRIS", "JONAS", "KARIN",
          "LEON", "MAREN", "NILS", "OLGA", "PAVEL")  # fmt: skip


@dataclass
class ArchiveSummary:
    """What was written; ``to_dict`` is the ``--json`` document of ``echosearch synth``."""

    out_dir: Path
    seed: int
    patients: int
    studies: int
    clips: int
    formats: dict[str, int] = field(default_factory=dict)
    views: dict[str, int] = field(default_factory=dict)
    findings: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    manifest: Path | None = None
    reports: Path | None = None

    @property
    def seconds_per_clip(self) -> float:
        return self.seconds / max(self.clips, 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(out_dir=str(self.out_dir), manifest=str(self.manifest), reports=str(self.reports))
        d["seconds_per_clip"] = round(self.seconds_per_clip, 3)
        d["seconds"] = round(self.seconds, 2)
        return d


@dataclass(frozen=True)
class Patient:
    index: int
    patient_id: str
    name: str  # DICOM PN, only ever written to PatientName and the burned-in banner
    birth_date: str
    sex: str
    anatomy: Anatomy


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def make_patient(seed: int, index: int) -> Patient:
    rng = _rng(seed, index, 0, 0)
    name = f"{_LAST[rng.integers(len(_LAST))]}^{_FIRST[rng.integers(len(_FIRST))]}"
    birth = date(1935, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 60)))
    pid = f"SYN{seed % 1000:03d}{index:05d}"
    return Patient(index, pid, name, birth.strftime("%Y%m%d"), str(rng.choice(["F", "M"])), draw_anatomy(rng))


def synthesize_archive(
    out_dir: str | Path,
    patients: int = 10,
    seed: int = 0,
    *,
    studies: tuple[int, int] = (1, 3),
    clips_per_study: tuple[int, int] = (2, 4),
    frames: tuple[int, int] = (30, 60),
    formats: tuple[str, ...] | None = None,
    views: str | tuple[str, ...] | None = None,
    report_style: str = "varied",
    progress: bool | None = None,
) -> ArchiveSummary:
    """Write a synthetic archive of ``patients`` patients into ``out_dir`` (created; must be empty).

    ``studies``/``clips_per_study``/``frames`` are inclusive ranges; ``formats`` restricts the clip
    formats (default: the DICOM-heavy mix of :data:`FORMAT_CYCLE`). ``views`` (``"all"``, a comma
    list or a tuple of codes of :data:`~echosearch.synth.views.VIEW_SPECS`; default all eight): a
    study of N clips samples N distinct views, the common ones more often; exactly A4C and PLAX
    draws as the archives before demo 0.5.0 did (every study an A4C and a PLAX clip, extra clips
    repeat one). ``report_style`` ``"varied"`` (default: the wordings of real reports vary) or
    ``"template"`` (one fixed wording per finding): see
    :mod:`echosearch.synth.reports`; the ground truth does not depend on it. ``progress``: a
    progress bar (patients, clips written) on stderr; ``None`` shows it when stderr is a terminal.
    """
    out = Path(out_dir)
    chosen_views = parse_views(views)
    if report_style not in REPORT_STYLES:
        raise UsageError(f"unknown report style {report_style!r}; choose from {', '.join(REPORT_STYLES)}")
    if patients < 1:
        raise UsageError("--patients must be at least 1")
    for name, (lo, hi), least in (("studies", studies, 1), ("clips per study", clips_per_study, 1),
                                  ("frames", frames, 2)):  # fmt: skip
        if not least <= lo <= hi:
            raise UsageError(f"{name} must be a range MIN-MAX with {least} <= MIN <= MAX, got {lo}-{hi}")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"output folder {out} is not empty; choose a new folder")
    cycle = tuple(f for f in FORMAT_CYCLE if formats is None or f in formats) or tuple(formats or ())
    bad = [f for f in cycle if f not in FORMATS]
    if not cycle or bad:
        raise UsageError(f"unknown or empty formats {bad or formats}; choose from {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows: list[dict] = []
    report_rows: list[dict] = []
    n_studies = 0
    bar = tqdm(
        total=patients,
        desc="synthesising",
        unit="patient",
        disable=progress is False or (progress is None and not sys.stderr.isatty()),
    )
    for p in range(patients):
        patient = make_patient(seed, p)
        prng = _rng(seed, p, 0, 1)
        when = date(2014, 1, 1) + timedelta(days=int(prng.integers(0, 1500)))
        prior: Findings | None = None
        for s in range(int(prng.integers(studies[0], studies[1] + 1))):
            srng = _rng(seed, p, s + 1, 0)
            findings = draw_baseline(srng) if prior is None else follow_up(prior, srng)
            findings = replace(findings, lv_thrombus=draw_thrombus(prior, _rng(seed, p, s + 1, 0, 3)))
            study = _write_study(
                out, seed, patient, s, when, findings, prior, srng, cycle, clips_per_study, frames, rows,
                chosen_views, report_style,
            )  # fmt: skip
            report_rows.append(study)
            n_studies += 1
            prior = findings
            when += timedelta(days=int(prng.integers(90, 900)))
        bar.set_postfix(clips=len(rows), refresh=False)
        bar.update()
    bar.close()
    manifest = out / "manifest.csv"
    _write_csv(manifest, MANIFEST_FIELDS, rows)
    reports = out / "reports.csv"
    _write_csv(reports, ("study_uid", "accession", "report"), report_rows)
    summary = ArchiveSummary(
        out_dir=out,
        seed=seed,
        patients=patients,
        studies=n_studies,
        clips=len(rows),
        formats=dict(sorted(Counter(r["format"] for r in rows).items())),
        views=dict(sorted(Counter(r["view"] for r in rows).items())),
        findings={k: sum(int(r[k]) > 0 for r in rows) for k in SUMMARY_FINDINGS},
        seconds=time.perf_counter() - start,
        manifest=manifest,
        reports=reports,
    )
    log.info(
        "synthetic archive: %d clips in %.1f s (%.2f s/clip)",
        summary.clips,
        summary.seconds,
        summary.seconds_per_clip,
    )
    return summary


def study_views(views: tuple[str, ...], n_clips: int, rng: np.random.Generator) -> list[str]:
    """The views of a study's clips: distinct while there are views left, common ones more likely.

    Every view appears once before any appears twice (a study of more clips than views starts over).
    """
    out: list[str] = []
    while len(out) < n_clips:
        w = np.array([VIEW_SPECS[v].weight for v in views])
        order = rng.choice(len(views), size=len(views), replace=False, p=w / w.sum())
        out += [views[i] for i in order]
    return out[:n_clips]


def _write_study(
    out, seed, patient, s, when, findings, prior, srng, cycle, clips_range, frames_range, rows, views, style
) -> dict:
    accession = f"ACC{seed % 1000:03d}{patient.index:05d}{s:02d}"
    study_uid = derived_uid(seed, patient.index, s, "study")
    study_date = when.strftime("%Y%m%d")
    study_time = f"{int(srng.integers(7, 18)):02d}{int(srng.integers(0, 60)):02d}00"
    vendor, model = VENDORS[patient.index % len(VENDORS)]
    # wording has its own stream so that the report style changes no other draw of the archive
    report = study_report(findings, prior, srng, style, _rng(seed, patient.index, s + 1, 0, 1))
    n_clips = int(srng.integers(clips_range[0], clips_range[1] + 1))
    legacy = set(views) == set(LEGACY_VIEWS)  # the draw of the archives of the demo models up to 0.4.0
    chosen = None if legacy else study_views(views, n_clips, _rng(seed, patient.index, s + 1, 0, 2))
    folder = out / patient.patient_id / accession
    folder.mkdir(parents=True, exist_ok=True)
    for c in range(n_clips):
        crng = _rng(seed, patient.index, s + 1, c + 1)
        if chosen is None:
            view = LEGACY_VIEWS[c % 2] if c < 2 else LEGACY_VIEWS[int(crng.integers(0, 2))]
        else:
            view = chosen[c]
        fmt = cycle[(patient.index * 7 + s * 3 + c) % len(cycle)]
        n_frames = int(crng.integers(frames_range[0], frames_range[1] + 1))
        phase0 = float(crng.uniform(0, 1))
        sector = render_sector(view, patient.anatomy, findings, n_frames, FPS, phase0, crng)
        phase = phase0 + np.arange(n_frames) / FPS * findings.heart_rate / 60.0
        banner_when = f"{when.isoformat()} {study_time[:2]}:{study_time[2:4]}"
        rgb = compose(sector, patient.name, banner_when, view, findings.heart_rate, phase)
        path = folder / f"{c + 1:02d}{EXTENSIONS[fmt]}"
        series_uid = derived_uid(seed, patient.index, s, c, "series")
        sop_uid = derived_uid(seed, patient.index, s, c, "sop")
        if fmt.startswith("dicom"):
            hdr = DicomHeader(
                patient.patient_id, patient.name, patient.birth_date, patient.sex, accession, study_uid,
                study_date, study_time, series_uid, sop_uid, c + 1, 1, view, findings.heart_rate, vendor, model,
            )  # fmt: skip
            write_dicom(path, rgb, FPS, hdr, fmt)
        else:
            tags = {
                "StudyInstanceUID": study_uid,
                "SeriesInstanceUID": series_uid,
                "SOPInstanceUID": sop_uid,
                "StudyDate": study_date,
                "StudyTime": study_time,
                "PatientID": patient.patient_id,
                "AccessionNumber": accession,
                "Manufacturer": vendor,
                "ManufacturerModelName": model,
            }
            write_video(path, rgb, FPS, fmt, tags)
        rows.append(
            {
                "path": path.relative_to(out).as_posix(),
                "format": fmt,
                "patient_id": patient.patient_id,
                "study_uid": study_uid,
                "accession": accession,
                "study_date": study_date,
                "study_index": s,
                "series_uid": series_uid,
                "sop_uid": sop_uid,
                "view": view,
                "frames": n_frames,
                "fps": FPS,
                "heart_rate": findings.heart_rate,
                "ef": findings.ef,
                "lv_function": findings.lv_function,
                "lv_size": findings.lv_size,
                "rv_size": findings.rv_size,
                "la_size": findings.la_size,
                "ra_size": findings.ra_size,
                "pacer": int(findings.pacer),
                "mitraclip": int(findings.mitraclip),
                "tavr": int(findings.tavr),
                "effusion": findings.effusion,
                "lv_thrombus": int(findings.lv_thrombus),
            }
        )
    return {"study_uid": study_uid, "accession": accession, "report": report}


def _write_csv(path: Path, fields, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_manifest(archive: str | Path) -> list[dict[str, str]]:
    """The rows of an archive's manifest.csv (strings, as written)."""
    with (Path(archive) / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
