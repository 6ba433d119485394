"""The synthetic archive's standard views (each its own anatomy, findings only where visible) and its
varied report language (equivalent wordings, same facts, every sentence a demo-vocabulary phrase)."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pydicom
import pytest

from echosearch.reports import clean_report, extract_variables
from echosearch.synth import Findings, read_manifest, synthesize_archive
from echosearch.synth.anatomy import SEVERITIES, Anatomy, draw_baseline, follow_up
from echosearch.synth.archive import study_views
from echosearch.synth.render import GEOM, render_sector
from echosearch.synth.reports import WORDINGS, load_vocabulary, match_phrase, sentences, study_report
from echosearch.synth.views import (
    ALL_VIEWS,
    APEX,
    AV,
    DEFAULT_VIEWS,
    LEGACY_VIEWS,
    MV,
    VIEW_SPECS,
    parse_views,
    shows_finding,
)
from echosearch.tokenizers import TemplateTokenizer

SEED = 23
ANATOMY = Anatomy(0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.75, 1.0, 7)
BASE = Findings(
    ef=60, lv_size=0, rv_size=0, la_size=0, ra_size=0, pacer=False, mitraclip=False, tavr=False, effusion=0,
    heart_rate=60,
)  # fmt: skip
ARGS = dict(patients=3, seed=SEED, clips_per_study=(4, 4), frames=(4, 5), views="all", report_style="varied")


def _render(view: str, frames: int = 2, **changes) -> np.ndarray:
    return render_sector(
        view, ANATOMY, replace(BASE, **changes), frames, 30.0, 0.0, np.random.default_rng(3)
    ).astype(float)


def _blood(view: str) -> np.ndarray:
    return (_render(view)[0] < 35) & GEOM.sector


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("views") / "archive"
    synthesize_archive(out, **ARGS)
    return out


def _reports(archive: Path) -> dict[str, str]:
    with (archive / "reports.csv").open(newline="") as fh:
        return {r["study_uid"]: r["report"] for r in csv.DictReader(fh)}


# ---- views in the pixels ---------------------------------------------------------------------------


def test_the_table_has_the_standard_views_and_draws_all_of_them_by_default():
    assert set(ALL_VIEWS) >= {"A4C", "A2C", "A3C", "A5C", "PLAX", "PSAX-PM", "PSAX-AV", "SC4C"}
    assert (
        DEFAULT_VIEWS == ALL_VIEWS and parse_views(None) == DEFAULT_VIEWS and LEGACY_VIEWS == ("A4C", "PLAX")
    )
    assert parse_views("all") == ALL_VIEWS and parse_views("plax, a2c") == ("PLAX", "A2C")
    assert all(VIEW_SPECS[v].phrase in load_vocabulary() for v in ALL_VIEWS)


def test_each_view_is_drawn_with_its_own_anatomy():
    """The blood pools (where the chambers and vessels are) differ between any two views; most overlap
    little (A4C/A5C and A2C/A3C are alike in real echo too, but differ by the aortic root)."""
    pools = {v: _blood(v) for v in ALL_VIEWS}
    for a, b in combinations(ALL_VIEWS, 2):
        iou = (pools[a] & pools[b]).sum() / (pools[a] | pools[b]).sum()
        assert (pools[a] ^ pools[b]).sum() > 1500, (a, b)
        assert iou < (0.85 if {a, b} in ({"A4C", "A5C"}, {"A2C", "A3C"}) else 0.5), (
            a,
            b,
            round(float(iou), 2),
        )


def test_short_axis_lv_is_round_and_apical_two_chamber_has_no_right_heart():
    pm = _blood("PSAX-PM")
    cy, cx = 165, 200  # the LV centre of this anatomy (no tilt, no offset)
    radii = [
        int(np.argmin(line)) for line in (pm[cy, cx:], pm[cy, cx::-1], pm[cy:, cx], pm[cy::-1, cx])
    ]  # blood from the centre out to the wall: right, left, down, up
    assert min(radii) > 20 and max(radii) < 1.3 * min(radii), radii
    a4c, a2c = _blood("A4C"), _blood("A2C")
    right_heart = np.s_[60:250, 60:190]  # image left of the crux: RV and RA in the A4C
    assert a2c[right_heart].sum() < 0.5 * a4c[right_heart].sum()


@pytest.mark.parametrize("view", ALL_VIEWS)
@pytest.mark.parametrize(
    "finding, shown",
    [
        ("pacer", lambda s: s.right_heart),
        ("mitraclip", lambda s: MV in s.shows),
        ("tavr", lambda s: AV in s.shows),
    ],
)
def test_devices_are_drawn_only_in_views_that_show_their_structure(view, finding, shown):
    bright = ((_render(view, 2, **{finding: True})[0] - _render(view, 2)[0]) > 60).sum()
    if shown(VIEW_SPECS[view]):
        assert bright > 40
    else:
        assert bright == 0


@pytest.mark.parametrize("view", ALL_VIEWS)
def test_lv_thrombus_is_a_mass_filling_the_apex_of_the_apical_views_only(view):
    blood_lost = (_blood(view) & ~((_render(view, 2, lv_thrombus=True)[0] < 35) & GEOM.sector)).sum()
    if APEX in VIEW_SPECS[view].shows:
        assert blood_lost > 100  # ~1.5 x 1.2 cm of cavity turned to tissue
        assert shows_finding(view, "lv_thrombus")
    else:
        assert blood_lost == 0
        assert not shows_finding(view, "lv_thrombus")


def test_lv_thrombus_is_in_the_manifest_never_in_a_report_and_changes_no_other_draw(archive, tmp_path):
    assert {r["lv_thrombus"] for r in read_manifest(archive)} <= {"0", "1"}
    # an archive where every study has one and the same archive where none has: the thrombus has its
    # own random stream, so every other column, every report and every clip that cannot show it agree
    made = {}
    for present in (False, True):
        made[present] = out = tmp_path / str(present)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("echosearch.synth.archive.draw_thrombus", lambda prev, rng, v=present: v)
            synthesize_archive(out, **ARGS)
    rows = {k: read_manifest(v) for k, v in made.items()}
    assert {r["lv_thrombus"] for r in rows[True]} == {"1"} and {r["lv_thrombus"] for r in rows[False]} == {
        "0"
    }
    drop = lambda r: {k: v for k, v in r.items() if k != "lv_thrombus"}  # noqa: E731
    assert [drop(r) for r in rows[True]] == [drop(r) for r in rows[False]]
    assert _reports(made[True]) == _reports(made[False])
    assert "THROMB" not in " ".join(_reports(made[True]).values()).upper()
    for r in rows[True]:
        same = (made[True] / r["path"]).read_bytes() == (made[False] / r["path"]).read_bytes()
        assert same == (not shows_finding(r["view"], "lv_thrombus")), r["view"]


def test_lv_thrombus_prevalence_persistence_and_independence():
    from echosearch.synth.anatomy import draw_thrombus

    rng = np.random.default_rng(0)
    first = np.mean([draw_thrombus(None, rng) for _ in range(4000)])
    kept = np.mean([draw_thrombus(replace(BASE, lv_thrombus=True), rng) for _ in range(4000)])
    new = np.mean([draw_thrombus(BASE, rng) for _ in range(4000)])
    assert 0.12 < first < 0.18 and 0.45 < kept < 0.55 and 0.05 < new < 0.11


@pytest.mark.parametrize("view", ALL_VIEWS)
def test_effusion_is_a_dark_rim_that_grows_with_grade_in_every_view(view):
    dark = [((_render(view, 2, effusion=g)[0] < 35) & GEOM.sector).sum() for g in range(4)]
    assert dark[0] < dark[1] < dark[2] < dark[3]


@pytest.mark.parametrize("view", [v for v in ALL_VIEWS if VIEW_SPECS[v].lv_motion])
def test_ef_is_the_lv_area_change_in_every_lv_view(view):
    efs = [15, 30, 45, 60, 70]
    changes = []
    for ef in efs:
        area = ((_render(view, 30, ef=ef, lv_size=1) < 35) & GEOM.sector).sum(axis=(1, 2))
        changes.append((area.max() - area.min()) / area.max())
    assert np.corrcoef(efs, changes)[0, 1] > 0.9


def test_a_study_samples_distinct_views_weighted_to_the_common_ones():
    rng = np.random.default_rng(0)
    draws = [study_views(ALL_VIEWS, 4, rng) for _ in range(400)]
    assert all(len(set(d)) == 4 for d in draws)
    assert len(set(study_views(ALL_VIEWS, 10, rng)[:8])) == 8
    counts = Counter(v for d in draws for v in d)
    assert counts["A4C"] > counts["SC4C"] and set(counts) == set(ALL_VIEWS)


# ---- the archive -----------------------------------------------------------------------------------


def test_manifest_and_dicom_carry_each_clips_view(archive):
    rows = read_manifest(archive)
    by_study: dict[str, list[str]] = {}
    for r in rows:
        by_study.setdefault(r["study_uid"], []).append(r["view"])
        if r["format"].startswith("dicom"):
            ds = pydicom.dcmread(archive / r["path"], stop_before_pixels=True)
            assert ds.SeriesDescription == r["view"]
    assert all(len(set(v)) == len(v) == 4 for v in by_study.values())
    assert len({r["view"] for r in rows}) >= 5 and {r["view"] for r in rows} <= set(ALL_VIEWS)


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_all_views_varied_reports_same_seed_same_bytes(archive, tmp_path):
    synthesize_archive(tmp_path / "again", **ARGS)
    assert _digest(tmp_path / "again") == _digest(archive)


def test_ground_truth_and_clips_do_not_depend_on_the_report_style(archive, tmp_path):
    plain = tmp_path / "plain"
    synthesize_archive(plain, **{**ARGS, "report_style": "template"})
    assert read_manifest(plain) == read_manifest(archive)
    same = {k: v for k, v in _digest(plain).items() if k != "reports.csv"}
    assert same == {k: v for k, v in _digest(archive).items() if k != "reports.csv"}
    assert _reports(plain) != _reports(archive)


def _key_of(phrase: str) -> set[str]:
    return {k for k, options in WORDINGS.items() if phrase in options}


def _says(report: str, key: str) -> list[str]:
    """The values of the report's sentences that say ``key`` (any wording)."""
    out = []
    for s in sentences(report):
        if key in _key_of(match_phrase(s) or ""):
            out.append(" ".join(extract_variables(clean_report(s))[0]))
    return out


def test_varied_reports_are_vocabulary_phrases_read_fully_and_state_the_truth(archive):
    tokenizer = TemplateTokenizer(load_vocabulary())
    truth = {r["study_uid"]: r for r in read_manifest(archive)}
    for uid, report in _reports(archive).items():
        t = truth[uid]
        explained = tokenizer.explain(report)
        assert not explained.unmatched, explained.unmatched
        assert len(explained.phrases) == len(sentences(report))
        assert all(match_phrase(s) is not None for s in sentences(report))
        assert _says(report, "ef") == [t["ef"]]
        assert bool(_says(report, "pacer")) == (t["pacer"] == "1")
        assert bool(_says(report, "mitraclip")) == (t["mitraclip"] == "1")
        assert bool(_says(report, "tavr")) == (t["tavr"] == "1")
        assert bool(_says(report, "effusion_none")) == (t["effusion"] == "0")
        for chamber in ("lv", "rv", "la", "ra"):
            grade = int(t[f"{chamber}_size"])
            stated = _says(report, f"{chamber}_normal") if grade == 0 else _says(report, f"{chamber}_dilated")
            assert stated == ["" if grade == 0 else SEVERITIES[grade]], (chamber, report)


def _many_reports(style: str, n: int = 300) -> list[tuple[Findings, str]]:
    out = []
    for i in range(n):
        rng = np.random.default_rng([SEED, i])
        f = draw_baseline(rng)
        g = follow_up(f, rng)
        out.append((g, study_report(g, f, np.random.default_rng(i), style, np.random.default_rng([i, 1]))))
    return out


def test_varied_style_varies_wording_severity_words_and_order():
    reports = _many_reports("varied")
    used = Counter(match_phrase(s) for _, r in reports for s in sentences(r))
    for key in ("ef", "lv_dilated", "lvf_reduced", "pacer", "mitraclip", "tavr", "effusion_none"):
        assert sum(used[p] > 0 for p in WORDINGS[key]) >= 2, key
    text = " ".join(r for _, r in reports)
    assert "MODERATELY" in text and "MODERATE " in text
    firsts = {sentences(r)[0] for _, r in reports}
    assert firsts <= {s for _, r in _many_reports("template") for s in sentences(r)[:1]}  # indication first
    orders = {
        tuple(k for s in sentences(r) for k in sorted(_key_of(match_phrase(s)))[:1]) for _, r in reports
    }
    assert len(orders) > 50


def test_template_style_always_writes_the_first_wording():
    for _, report in _many_reports("template", 100):
        for s in sentences(report):
            keys = _key_of(match_phrase(s))
            assert not keys or any(WORDINGS[k][0] == match_phrase(s) for k in keys), s


def test_varied_report_and_a_view_sentence_fit_the_demo_models_context():
    tokenizer = TemplateTokenizer(load_vocabulary())
    longest = max(VIEW_SPECS.values(), key=lambda v: len(v.phrase)).phrase
    for _, report in _many_reports("varied"):
        assert sum(1 for i in tokenizer.encode(f"{longest} {report}") if i) <= 32


# ---- CLI -------------------------------------------------------------------------------------------


def test_cli_synth_views_and_report_style(cli, tmp_path):
    out = tmp_path / "all"
    done = cli("synth", str(out), "--patients", "1", "--studies", "1", "--clips-per-study", "3", "--frames", "2",
               "--formats", "avi", "--views", "all", "--report-style", "varied", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert sum(summary["views"].values()) == 3 and len(summary["views"]) == 3
    some = cli("synth", str(tmp_path / "some"), "--patients", "1", "--studies", "1", "--clips-per-study", "2",
               "--frames", "2", "--formats", "avi", "--views", "psax-av,SC4C", "--json")  # fmt: skip
    assert some.returncode == 0, some.stderr
    assert set(json.loads(some.stdout)["views"]) == {"PSAX-AV", "SC4C"}


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--views", "A4C,A6C", "unknown views A6C"),
        ("--views", ",", "no views given"),
        ("--report-style", "poetic", "'poetic' is not one of"),
    ],
)
def test_cli_synth_refuses_bad_views_and_report_styles(cli, tmp_path, option, value, message):
    done = cli("synth", str(tmp_path / "bad"), option, value)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "bad").exists()


def test_a_finding_is_ground_truth_only_on_clips_whose_view_can_show_it():
    from echosearch.labels.tasks import Task
    from echosearch.training.data import ArchiveClip
    from echosearch.training.evaluate import task_labels

    def clip(view: str) -> ArchiveClip:
        row = {"view": view, "pacer": "1", "mitraclip": "1", "effusion": "2", "ef": "30"}
        return ArchiveClip(Path(f"{view}.dcm"), "1.2", "P1", "", row)

    clips = [clip(v) for v in ("A4C", "A2C", "PSAX-PM", "PSAX-AV", "SC4C")]
    pacer = task_labels(Task("pacemaker", "binary"), clips)
    clip_ = task_labels(Task("mitraclip", "binary"), clips)
    effusion = task_labels(Task("pericardial_effusion", "binary"), clips)
    ef = task_labels(Task("ejection_fraction", "regression"), clips)
    # A2C cuts neither RA nor RV; PSAX cuts no mitral valve; PSAX-AV cuts no LV; effusion shows everywhere
    assert np.isnan(pacer).tolist() == [False, True, False, False, False]
    assert np.isnan(clip_).tolist() == [False, False, True, True, False]
    assert np.isnan(ef).tolist() == [False, False, False, True, False]
    assert effusion.tolist() == [1.0] * 5
