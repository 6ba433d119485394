"""The synthetic archive: deterministic, valid files, findings visible in pixels, reports from the vocabulary."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from echosearch.paths import package_data
from echosearch.synth import Findings, read_manifest, synthesize_archive
from echosearch.synth.anatomy import Anatomy
from echosearch.synth.archive import make_patient
from echosearch.synth.render import APEX_Y, CM_PER_PIXEL, GEOM, HEIGHT, WIDTH, render_sector
from echosearch.synth.reports import load_vocabulary, match_phrase, sentences, vocab_path
from echosearch.synth.writers import FORMATS
from echosearch.tokenizers import TemplateTokenizer

SEED = 11
TRANSFER = {"dicom-explicit": ExplicitVRLittleEndian, "dicom-rle": RLELossless, "dicom-j2k": JPEG2000Lossless}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "archive"
    # the legacy draw (A4C + PLAX, template reports), asked for explicitly; the default draw (all
    # views, varied reports) is tests/test_synth_views.py's
    synthesize_archive(out, patients=3, seed=SEED, clips_per_study=(3, 3), frames=(30, 31),
                       views="A4C,PLAX", report_style="template")  # fmt: skip
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_and_patients_do_not_depend_on_archive_size(archive, tmp_path):
    again = tmp_path / "again"
    synthesize_archive(again, patients=1, seed=SEED, clips_per_study=(3, 3), frames=(30, 31),
                       views="A4C,PLAX", report_style="template")  # fmt: skip
    first = [
        r
        for r in read_manifest(archive)
        if r["patient_id"] in {r2["patient_id"] for r2 in read_manifest(again)}
    ]
    assert first == read_manifest(again)
    for row in read_manifest(again):
        assert _sha(again / row["path"]) == _sha(archive / row["path"]), row["path"]


def test_another_seed_gives_another_archive(archive, tmp_path):
    other = tmp_path / "other"
    synthesize_archive(
        other, patients=1, seed=SEED + 1, studies=(1, 1), clips_per_study=(2, 2), frames=(30, 30)
    )
    rows = read_manifest(other)
    assert {r["study_uid"] for r in rows}.isdisjoint({r["study_uid"] for r in read_manifest(archive)})


def test_counts_views_and_formats(archive):
    rows = read_manifest(archive)
    assert {r["format"] for r in rows} == set(FORMATS)
    studies: dict[str, list[dict]] = {}
    for r in rows:
        studies.setdefault(r["study_uid"], []).append(r)
        assert (archive / r["path"]).is_file()
        assert 30 <= int(r["frames"]) <= 31 and float(r["fps"]) == 30.0
    assert all({"A4C", "PLAX"} <= {r["view"] for r in clips} for clips in studies.values())
    per_patient = {}
    for uid, clips in studies.items():
        per_patient.setdefault(clips[0]["patient_id"], set()).add(uid)
        assert len({c["accession"] for c in clips}) == 1
    assert len(per_patient) == 3 and all(1 <= len(s) <= 3 for s in per_patient.values())
    with (archive / "reports.csv").open(newline="") as fh:
        reports = list(csv.DictReader(fh))
    assert {r["study_uid"] for r in reports} == set(studies)


def test_dicom_files_are_valid_us_multiframe(archive):
    for row in read_manifest(archive):
        path = archive / row["path"]
        if row["format"] in TRANSFER:
            ds = pydicom.dcmread(path)
            assert ds.file_meta.TransferSyntaxUID == TRANSFER[row["format"]]
            assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1"
            assert ds.pixel_array.shape == (int(row["frames"]), HEIGHT, WIDTH)
            assert ds.StudyInstanceUID == row["study_uid"] and ds.AccessionNumber == row["accession"]
            assert ds.PatientID == row["patient_id"] and ds.SOPInstanceUID == row["sop_uid"]
            assert float(ds.FrameTime) == pytest.approx(1000 / 30, abs=0.01) and ds.CineRate == 30
            assert int(ds.HeartRate) == int(row["heart_rate"])
            region = ds.SequenceOfUltrasoundRegions[0]
            assert region.RegionLocationMaxY1 < HEIGHT and region.PhysicalDeltaX > 0
        else:
            with av.open(str(path)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            assert len(frames) == int(row["frames"]) and frames[0].shape == (HEIGHT, WIDTH, 3)


def test_explicit_dicom_pixels_match_a_fresh_render_of_the_sector(archive):
    """Lossless formats keep the rendered pixels; the sector region holds the image."""
    row = next(r for r in read_manifest(archive) if r["format"] == "dicom-rle")
    frames = pydicom.dcmread(archive / row["path"]).pixel_array
    inside = frames[:, GEOM.sector].mean()
    assert inside > 20  # an image, not black
    assert frames[:, 30:270, :40].max() < 255  # left margin holds only text, not the sector


def test_patient_name_only_in_patient_name(archive):
    rows = read_manifest(archive)
    names = {make_patient(SEED, i).name for i in range(3)}
    text = (archive / "manifest.csv").read_text() + (archive / "reports.csv").read_text()
    for name in names:
        for part in name.split("^"):
            assert part not in text
            assert all(part not in r["path"] for r in rows)
    for row in rows:
        if row["format"] in TRANSFER:
            ds = pydicom.dcmread(archive / row["path"], stop_before_pixels=True)
            assert str(ds.PatientName) in names
            others = [e for e in ds.iterall() if e.keyword != "PatientName" and isinstance(e.value, str)]
            assert not any(part in e.value for e in others for n in names for part in n.split("^"))


def test_banner_and_ecg_lie_outside_the_sector(archive):
    row = next(r for r in read_manifest(archive) if r["format"] == "dicom-explicit")
    frames = pydicom.dcmread(archive / row["path"]).pixel_array
    outside = frames[:, ~GEOM.sector]
    assert outside.max() > 150  # text and ECG burned in
    assert frames[:, : int(APEX_Y) - 2].max() > 150  # banner row above the sector apex
    ecg = frames[:, 279:, :]
    assert (ecg[-1] > 150).sum() > (ecg[0] > 150).sum()  # the trace sweeps across the clip


# ---- findings in the pixels ------------------------------------------------------------------------

ANATOMY = Anatomy(0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.75, 1.0, 7)
BASE = Findings(
    ef=60, lv_size=0, rv_size=0, la_size=0, ra_size=0, pacer=False, mitraclip=False, tavr=False, effusion=0,
    heart_rate=60,
)  # fmt: skip


def _render(view: str = "A4C", frames: int = 30, **changes) -> np.ndarray:
    return render_sector(
        view, ANATOMY, replace(BASE, **changes), frames, 30.0, 0.0, np.random.default_rng(3)
    ).astype(float)


@pytest.mark.parametrize("view", ["A4C", "PLAX"])
def test_pacer_lead_is_a_bright_line(view):
    with_lead, without = _render(view, 4, pacer=True), _render(view, 4)
    line = (with_lead[0] - without[0]) > 60
    rows, cols = np.nonzero(line)
    assert line.sum() > 60
    assert max(np.ptp(rows), np.ptp(cols)) > 50  # long, not a blob
    assert with_lead[0][line].mean() > without[0][line].mean() + 80


@pytest.mark.parametrize("finding", ["mitraclip", "tavr"])
@pytest.mark.parametrize("view", ["A4C", "PLAX"])
def test_valve_devices_add_very_bright_echoes(finding, view):
    bright = lambda f: (f[0] >= 235).sum()  # noqa: E731
    assert bright(_render(view, 2, **{finding: True})) > bright(_render(view, 2)) + 40


@pytest.mark.parametrize("view", ["A4C", "PLAX"])
def test_mitraclip_is_a_body_along_the_leaflets_not_a_thicker_tip(view):
    """~0.45 x 1.3 cm like a real clip: a blob the size of a leaflet tip vanishes at the model's 112 px."""
    with_clip, without = _render(view, 2, mitraclip=True), _render(view, 2)
    body = (with_clip[0] - without[0]) > 60
    rows, cols = np.nonzero(body)
    length_cm = max(np.ptp(rows), np.ptp(cols)) * CM_PER_PIXEL
    assert body.sum() > 120
    assert length_cm > 1.0


@pytest.mark.parametrize("view", ["A4C", "PLAX"])
def test_effusion_is_a_dark_rim_that_grows_with_grade(view):
    dark = [((_render(view, 2, effusion=g)[0] < 35) & GEOM.sector).sum() for g in range(4)]
    assert dark[0] < dark[1] < dark[2] < dark[3]


def test_dilation_grows_the_chamber():
    dark = [((_render("A4C", 2, lv_size=g)[0] < 35) & GEOM.sector).sum() for g in range(4)]
    assert dark[0] < dark[1] < dark[2] < dark[3]


def test_ef_correlates_with_lv_dark_area_change():
    efs = [15, 30, 45, 60, 70]
    changes = []
    for ef in efs:
        frames = _render("A4C", 30, ef=ef, lv_size=1)
        lv = frames[:, 60:190, 205:330]  # the LV side of the image above the crux
        area = (lv < 35).sum(axis=(1, 2))
        changes.append((area.max() - area.min()) / area.max())
    assert np.corrcoef(efs, changes)[0, 1] > 0.95
    assert changes[0] < 0.12 and changes[-1] > 0.22


# ---- reports and vocabulary ------------------------------------------------------------------------


def test_vocabulary_format():
    lines = vocab_path().read_text().splitlines()
    assert 60 <= len(lines) <= 150 and len(set(lines)) == len(lines)
    assert all(line == line.upper() and line.endswith(". ") for line in lines)
    assert sum("<#>" in line for line in lines) >= 10


def test_vocabulary_is_our_own(echoclip_ref):
    reference = {line.strip() for line in (echoclip_ref / "template_vocab.txt").read_text().splitlines()}
    shared = set(load_vocabulary()) & reference
    # only the standard severity-grading statements that the demo queries use, and the two standard
    # abbreviated EF statements every echo report writes (the varied reports' "LVEF IS 35%.")
    assert shared <= {
        f"<#> DILATED {c}." for c in ("LEFT VENTRICLE", "RIGHT VENTRICLE", "LEFT ATRIUM", "RIGHT ATRIUM")
    } | {"LVEF IS <#>%.", "LV EJECTION FRACTION IS <#>%."}


def test_vocabulary_keeps_the_shipped_bundles_phrase_ids():
    """New phrases go at the end: the shipped demo model's copy must stay a prefix of the demo vocabulary."""
    bundle = package_data() / "models" / "echosearch-demo" / "template_vocab.txt"
    shipped = bundle.read_text().splitlines()
    assert vocab_path().read_text().splitlines()[: len(shipped)] == shipped


def test_reports_use_only_vocabulary_phrases_and_state_the_truth(archive):
    with (archive / "reports.csv").open(newline="") as fh:
        reports = {r["study_uid"]: r["report"] for r in csv.DictReader(fh)}
    truth = {r["study_uid"]: r for r in read_manifest(archive)}
    tokenizer = TemplateTokenizer(load_vocabulary())
    for uid, report in reports.items():
        t = truth[uid]
        for sentence in sentences(report):
            assert match_phrase(sentence) is not None, sentence
        assert f"THE LEFT VENTRICULAR EJECTION FRACTION IS {t['ef']}%." in report
        assert ("PACEMAKER LEAD IS SEEN" in report) == (t["pacer"] == "1")
        assert ("MITRACLIP DEVICE" in report) == (t["mitraclip"] == "1")
        assert ("TRANSCATHETER AORTIC VALVE PROSTHESIS" in report) == (t["tavr"] == "1")
        lv = ("NORMAL LEFT VENTRICULAR CAVITY SIZE.", "MILD DILATED LEFT VENTRICLE.")
        lv += ("MODERATE DILATED LEFT VENTRICLE.", "SEVERE DILATED LEFT VENTRICLE.")
        assert lv[int(t["lv_size"])] in report
        assert ("NO PERICARDIAL EFFUSION IS SEEN." in report) == (t["effusion"] == "0")
        explained = tokenizer.explain(report)
        assert not explained.unmatched, explained.unmatched


def test_cli_synth_json_and_refuses_a_non_empty_folder(cli, tmp_path):
    out = tmp_path / "cli"
    done = cli("synth", str(out), "--patients", "1", "--seed", "4", "--formats", "mp4,dicom-rle", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["patients"] == 1 and summary["clips"] == len(read_manifest(out))
    assert set(summary["formats"]) <= {"mp4", "dicom-rle"}
    again = cli("synth", str(out), "--patients", "1")
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr


def test_cli_synth_sizes_studies_clips_and_frames(cli, tmp_path):
    out = tmp_path / "sized"
    done = cli("synth", str(out), "--patients", "2", "--studies", "2", "--clips-per-study", "3",
               "--frames", "4-5", "--formats", "avi", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = read_manifest(out)
    assert len(rows) == 2 * 2 * 3 and {int(r["frames"]) for r in rows} <= {4, 5}
    bad = cli("synth", str(tmp_path / "bad"), "--frames", "9-3")
    assert bad.returncode == 1 and "MIN <= MAX" in bad.stderr and "Traceback" not in bad.stderr
    typo = cli("synth", str(tmp_path / "typo"), "--clips-per-study", "two")
    assert typo.returncode == 2 and "MIN-MAX" in typo.stderr
