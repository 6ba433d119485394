"""What a clinician reads: the report's EF, whole words, findings with probabilities, exports
without paths or MRNs (the UI's text helpers, no browser)."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest

from echosearch.labels.naming import readable, readable_items
from echosearch.labels.tasks import Task
from echosearch.reports import report_ef
from echosearch.search.hits import REPORT_EXCERPT_CHARS, excerpt
from echosearch.ui import clinical, export


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("THE LEFT VENTRICULAR EJECTION FRACTION IS 61%.", (61.0, 61.0)),
        ("LVEF 50-55 %.", (50.0, 55.0)),
        ("Visually estimated ejection fraction of 35 to 40%.", (35.0, 40.0)),
        ("EF: ~52.5%", (52.5, 52.5)),
        ("HEART FAILURE WITH REDUCED EJECTION FRACTION. RATE 90 BPM.", None),
        ("", None),
        (None, None),
    ],
)
def test_report_ef(text, expected):
    assert report_ef(text) == expected


def test_an_excerpt_ends_at_a_word_not_in_one():
    text = "LEFT VENTRICULAR SYSTOLIC FUNCTION IS NORMAL. " * 10
    cut = excerpt(text)
    assert len(cut) <= REPORT_EXCERPT_CHARS and cut.endswith("…")
    assert text.startswith(cut[:-1]) and text[len(cut) - 1] == " "  # the next character is a space
    assert excerpt("SHORT REPORT.") == "SHORT REPORT."


TASKS = [
    Task("pacemaker", "binary", display_name="Pacemaker"),
    Task("pericardial_effusion", "binary", display_name="Pericardial effusion"),
    Task("ejection_fraction", "regression", unit="%", display_name="EF"),
    Task("lv_size", "categorical", display_name="LV size"),
    Task("tavr", "binary", display_name="TAVR"),
]
LABELS = {
    "pacemaker": 0.3,
    "pacemaker.positive": 1.0,
    "pacemaker.probability": 0.97,
    "pericardial_effusion": -0.2,
    "pericardial_effusion.positive": 0.0,
    "pericardial_effusion.probability": 0.04,
    "ejection_fraction": 48.2,
    "lv_size": "moderate",
    "tavr": 0.11,
}


def test_readable_items_keep_the_phrases_and_their_parts():
    items = readable_items(LABELS, TASKS, {"ejection_fraction": 7.0})
    assert [str(i) for i in items] == readable(LABELS, TASKS, {"ejection_fraction": 7.0})
    pacer, effusion, ef, size, tavr = items
    assert (pacer.phrase, pacer.value_text, pacer.present, pacer.probability) == (
        "Pacemaker: yes, 0.97",
        "yes, 0.97",
        True,
        0.97,
    )
    assert effusion.present is False and ef.estimate == 48.2 and ef.value_text.startswith("≈ 48%")
    assert size.value_text == "moderate" and not tavr.calibrated


def test_a_card_names_the_report_ef_and_the_estimate_and_only_present_findings():
    items = readable_items(LABELS, TASKS, {"ejection_fraction": 7.0})
    hit = SimpleNamespace(view=None, study_date="2020-01-02", video_id=5, manufacturer="ACME", score=0.912)
    text = clinical.card_markdown(hit, items, "NORMAL SIZE. LV EJECTION FRACTION IS 55%.")
    lines = text.split("  \n")
    assert lines[0] == "**2020-01-02** · view not recorded"
    assert lines[1] == "EF: report 55% · model estimate ≈ 48% (±7)"
    assert lines[2] == "Pacemaker: yes (probability 0.97) · LV size: moderate"
    assert lines[3] == "clip 5 · ACME · similarity 0.91"
    shown, everything = clinical.findings(items)
    assert (
        "Pericardial effusion: no (probability 0.04)" in everything
        and "TAVR: score 0.11 (not calibrated)" in everything
    )
    assert not any("_" in t or "None" in t for t in [text, *everything])
    hit.view = "A4C"
    assert clinical.card_markdown(hit, [], None).startswith("**A4C** · 2020-01-02  \nno labels")


def test_a_finding_the_clips_view_does_not_image_is_said_so_not_guessed():
    unseen = {"pacemaker", "ejection_fraction", "lv_size"}  # e.g. a view that cuts neither RV nor LV
    items = readable_items(LABELS, TASKS, {"ejection_fraction": 7.0}, unseen=unseen)
    by_task = {i.task: i for i in items}
    assert by_task["pacemaker"].phrase == "Pacemaker: not seen in this view"
    assert by_task["pacemaker"].present is None and by_task["pacemaker"].probability is None
    assert not by_task["ejection_fraction"].assessable and by_task["ejection_fraction"].estimate is None
    assert by_task["pericardial_effusion"].assessable  # an effusion shows in every view
    hit = SimpleNamespace(view="PSAX-AV", study_date="2020-01-02", video_id=5, manufacturer=None, score=None)
    lines = clinical.card_markdown(hit, items, None).split("  \n")
    assert not any("Pacemaker" in line or "EF" in line or "LV size" in line for line in lines)
    shown, everything = clinical.findings(items)
    assert "Pacemaker: not seen in this view" in everything and "EF: not seen in this view" in everything
    assert not any("not seen" in t for t in shown)
    assert readable_items({}, TASKS, unseen=unseen) == []  # no value, nothing to say


def test_run_counts_read_as_words():
    counts = {"found": 53, "new": 50, "unchanged": 3, "failed": 0, "frames": 848, "seconds": 47.7,
              "reports": {"rows": 18}, "model": "demo", "failed_by_reason": {}}  # fmt: skip
    assert clinical.run_summary(counts) == (
        "53 clips found: 50 new, 3 unchanged · 848 frames embedded in 47.7 s · 18 reports · model demo"
    )
    assert clinical.run_summary(None) == "no counts recorded"


class _Eng:
    def reports(self, uids):
        return {"1.2.3": "THE LEFT VENTRICULAR EJECTION FRACTION IS 61%."}

    def readable_label_items(self, labels):
        return readable_items(labels, TASKS, {"ejection_fraction": 7.0})


def test_export_rows_are_words_without_paths():
    hits = [
        SimpleNamespace(video_id=3, score=0.9, path="/archive/MRN123456/a.dcm", study_uid="1.2.3",
                        study_date="2020-01-02", view="A4C", manufacturer="ACME", labels=LABELS),
        SimpleNamespace(video_id=4, score=None, path="/archive/MRN123456/b.dcm", study_uid=None,
                        study_date=None, view=None, manufacturer=None, labels={}),
    ]  # fmt: skip
    text = export.to_csv(export.clip_rows(_Eng(), hits))
    rows = list(csv.DictReader(text.splitlines()))
    assert (
        rows[0]["Study UID"] == "1.2.3"
        and rows[0]["Report EF"] == "61%"
        and rows[0]["Pacemaker"] == "yes, 0.97"
    )
    assert rows[0]["EF"].startswith("≈ 48%") and rows[1]["Similarity"] == "" and rows[1]["View"] == ""
    assert "MRN123456" not in text and ".dcm" not in text and "None" not in text
    assert export.study_uids(hits) == ["1.2.3"]
    assert export.file_name("study-1.2/3").startswith("echosearch-study-1.2-3-")
