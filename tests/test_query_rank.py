"""How stored labels rank clips for a query: evidence within a view, pooled over the study, graded ranges."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from echosearch.errors import ConfigError
from echosearch.query import load_lexicon
from echosearch.query.interpret import Condition
from echosearch.query.rank import LabelSource, signal, study_pooled, view_percentile
from echosearch.store import queries as q
from echosearch.store.db import open_db
from echosearch.store.schema import STATUS_FAILED, STATUS_INDEXED


def _by_view(**views: list[float]) -> dict:
    out = {v: np.sort(np.asarray(s, np.float32)) for v, s in views.items()}
    out["*"] = np.sort(np.concatenate(list(out.values())))
    return out


def test_a_score_is_ranked_among_clips_of_its_own_view():
    # every A3C clip scores high (the view looks like the sentence), A4C only where the lead is
    by_view = _by_view(A3C=[0.70 + i / 100 for i in range(25)], A4C=[0.1 + i / 100 for i in range(25)])
    assert view_percentile(0.35, "A4C", by_view) == pytest.approx(1.0)  # the best A4C
    assert view_percentile(0.70, "A3C", by_view) == pytest.approx(1 / 25)  # the worst A3C
    # a view with too few clips of its own is ranked among all views
    by_view["SC4C"] = np.array([0.9], np.float32)
    assert view_percentile(0.9, "SC4C", by_view) == pytest.approx(view_percentile(0.9, "none", by_view))


def test_a_binary_preference_reads_the_view_percentile_then_the_probability_then_the_decision():
    present = Condition("label", "pacemaker", "pacemaker", 1.0, grades=["present"])
    absent = Condition("label", "pacemaker", "pacemaker", 1.0, grades=["normal"])
    by_view = _by_view(A4C=[i / 40 for i in range(40)])
    with_views = LabelSource("binary", "pacemaker.positive", "pacemaker.probability", by_view=by_view)
    labels = {"pacemaker": 0.5, "pacemaker.probability": 0.9, "pacemaker.positive": 1.0, "view": "A4C"}
    assert signal(present, with_views, labels) == pytest.approx(0.525)
    assert signal(absent, with_views, labels) == pytest.approx(0.475)
    calibrated = LabelSource("binary", "pacemaker.positive", "pacemaker.probability")
    assert signal(present, calibrated, labels) == pytest.approx(0.9)
    assert signal(absent, calibrated, labels) == pytest.approx(0.1)
    decided = LabelSource("binary", "pacemaker.positive")
    assert signal(present, decided, labels) == 1.0 and signal(absent, decided, labels) == 0.0


def test_an_ef_range_is_graded_by_how_likely_the_estimate_lies_in_it():
    above_60 = Condition("range", "ejection_fraction", "ejection_fraction", 1.0, low=60.0)
    source = LabelSource("regression")
    scores = [signal(above_60, source, {"ejection_fraction": ef}) for ef in (40, 55, 60, 62, 75)]
    assert scores == sorted(scores) and len(set(scores)) == 5
    assert scores[2] == pytest.approx(0.5) and scores[-1] > 0.95 and scores[0] < 0.01
    band = Condition("range", "ejection_fraction", "ejection_fraction", 1.0, low=30.0, high=40.0)
    assert signal(band, source, {"ejection_fraction": 35}) > signal(band, source, {"ejection_fraction": 45})
    assert signal(band, source, {"ejection_fraction": "n/a"}) == 0.0


def test_a_graded_finding_ranks_clips_by_their_expected_grade_else_their_class():
    from echosearch.labels.scoring import expected_grade

    grades = expected_grade(np.array([[0.0, 0.0, 0.3, 0.0], [0.1, 0.1, 0.1, 0.1], [0.3, 0.0, 0.0, 0.0]]))
    assert grades[0] == pytest.approx(2.0, abs=1e-3) and grades[1] == pytest.approx(1.5)
    assert grades[2] == pytest.approx(0.0, abs=1e-3)
    classes = ["normal", "mild", "moderate", "severe"]
    source = LabelSource(
        "categorical", class_grades={c: c for c in classes}, grade="lv_size.grade", classes=classes
    )
    severe = Condition("label", "lv_size", "lv_size", 1.0, grades=["severe"])
    dilated = Condition("label", "lv_size", "lv_size", 1.0, grades=["mild", "moderate", "severe"])
    scores = [
        signal(severe, source, {"lv_size": "moderate", "lv_size.grade": g}) for g in (1.0, 2.2, 2.7, 3.0)
    ]
    assert scores == sorted(scores) and scores[0] == 0.0 and scores[-1] == 1.0
    assert signal(dilated, source, {"lv_size": "normal", "lv_size.grade": 0.4}) == pytest.approx(0.4)
    assert signal(dilated, source, {"lv_size": "mild", "lv_size.grade": 1.6}) == 1.0
    # an index relabelled before grades were stored: the class decides
    assert (
        signal(severe, source, {"lv_size": "severe"}) == 1.0
        and signal(severe, source, {"lv_size": "mild"}) == 0.0
    )


def test_a_grade_read_from_phrase_vectors_is_each_clips_expected_grade():
    from echosearch.query.rank import text_grade_source, text_grades

    grades = ["normal", "mild", "moderate", "severe"]
    cond = Condition(
        "text_grade", None, "rv_size", 2.0, grades=["severe"], grade_phrases={g: [g] for g in grades}
    )
    axes = np.eye(4, 8, dtype=np.float32)  # one direction per grade; two phrases for "severe"
    phrase_vectors = [axes[[0]], axes[[1]], axes[[2]], np.stack([axes[3], axes[3]])]
    source = text_grade_source(cond, phrase_vectors)
    assert source.classes == grades and source.grade == "rv_size.text_grade"
    np.testing.assert_allclose(np.linalg.norm(source.class_vectors, axis=1), 1.0, rtol=1e-6)
    clips = np.stack([axes[0], axes[3], (axes[2] + axes[3]) / np.sqrt(2)])
    expected = text_grades(clips, source)
    assert expected[0] == pytest.approx(0.0, abs=1e-3) and expected[1] == pytest.approx(3.0, abs=1e-3)
    assert expected[2] == pytest.approx(2.5, abs=1e-3)  # halfway between moderate and severe
    # ranked like a stored grade
    ranked = [signal(cond, source, {source.grade: float(g)}) for g in expected]
    assert ranked[1] == 1.0 and ranked[0] == 0.0 and ranked[2] == pytest.approx(0.5, abs=1e-3)


def test_study_pooling_mixes_each_clip_with_its_studys_mean():
    signals = np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 1.0]], np.float32)  # rows: three clips
    # candidates: clip 0 (study of clips 0 and 1) and clip 2 (alone in its study)
    pooled = study_pooled(signals, [0, 2], [[0, 1], [2]], share=0.5)
    assert pooled.tolist() == [[0.75, 0.0], [0.5, 1.0]]
    assert study_pooled(signals, [0, 2], [[0, 1], [2]], share=0.0).tolist() == [[1.0, 0.0], [0.5, 1.0]]
    assert study_pooled(np.zeros((2, 0), np.float32), [0, 1], [[0, 1], [0, 1]], 0.5).shape == (2, 0)


def test_only_clips_whose_view_shows_a_finding_are_its_evidence():
    # one study of three clips: a PLAX and an A5C see the valve, a PSAX-PM does not; two signals
    signals = np.array([[0.8, 0.2], [0.6, 0.4], [1.0, 0.9]], np.float32)
    seen = np.array([[True, True], [True, True], [False, True]])  # signal 0 (TAVR) not in clip 2
    members = [[0, 1, 2]] * 3
    pooled = study_pooled(signals, [0, 1, 2], members, share=0.5, seen=seen)
    # TAVR: the study mean of the clips that show it (0.7); the PSAX-PM clip takes that mean
    np.testing.assert_allclose(pooled[:, 0], [0.75, 0.65, 0.7], rtol=1e-6)
    np.testing.assert_allclose(pooled[:, 1], study_pooled(signals, [0, 1, 2], members, 0.5)[:, 1], rtol=1e-6)
    # a study none of whose clips shows the finding: all of them count, as without views
    blind = np.zeros_like(seen)
    np.testing.assert_allclose(
        study_pooled(signals, [0, 2], [[0, 1, 2]] * 2, 0.5, blind),
        study_pooled(signals, [0, 2], [[0, 1, 2]] * 2, 0.5),
    )


def test_the_views_that_show_a_finding_are_clinical_data():
    lex = load_lexicon("demo")
    assert {"PLAX", "PSAX-AV", "A5C"} <= lex.rules["tavr"].seen_in and "PSAX-PM" not in lex.rules[
        "tavr"
    ].seen_in
    assert "A2C" not in lex.rules["pacemaker"].seen_in and "PSAX-AV" not in lex.rules["lv_function"].seen_in
    assert not lex.rules["pericardial_effusion"].seen_in  # every view shows an effusion


def test_study_clips_names_the_indexed_clips_of_each_clips_study(tmp_path):
    db = open_db(tmp_path)
    with db.session() as s:
        patient = q.get_or_create_patient(s, "p1")
        one = q.upsert_study(s, "1.2.3", patient_key=patient.key)
        two = q.upsert_study(s, "1.2.4", patient_key=patient.key)
        a, b, c = (q.upsert_video(s, f"/a/{n}.dcm", study_id=one.id, status=STATUS_INDEXED) for n in "abc")
        c.status = STATUS_FAILED  # a clip that is not in the index is no evidence
        d = q.upsert_video(s, "/a/d.dcm", study_id=two.id, status=STATUS_INDEXED)
        s.flush()
        mates = q.study_clips(s, [a.id, d.id])
    assert mates == {a.id: [a.id, b.id], d.id: [d.id]}


def test_scores_per_view_are_read_sorted_and_sampled_in_a_large_archive(tmp_path, monkeypatch):
    db = open_db(tmp_path)
    with db.session() as s:
        study = q.upsert_study(s, "1.2.3", patient_key=q.get_or_create_patient(s, "p1").key)
        space = q.upsert_space(s, "demo", model_name="demo", dim=4)
        for n in range(40):
            view = "A4C" if n % 2 else None
            v = q.upsert_video(s, f"/a/{n}.dcm", study_id=study.id, status=STATUS_INDEXED, view=view)
            q.upsert_labels(s, space.id, [(v.id, "pacemaker", float(40 - n), None)])
        by_view = q.label_values_by_view(s, "pacemaker", space.id)
        assert sorted(by_view, key=str) == ["A4C", None]
        assert by_view["A4C"].tolist() == sorted(float(40 - n) for n in range(1, 40, 2))
        monkeypatch.setattr(q, "VIEW_SAMPLE", 10)
        sampled = q.label_values_by_view(s, "pacemaker", space.id)
    assert 8 <= sum(a.size for a in sampled.values()) <= 14


def test_the_study_share_is_read_and_checked_from_the_lexicon(tmp_path):
    folder = Path(load_lexicon("demo").source).parent
    (tmp_path / "clinical.yaml").write_text((folder / "clinical.yaml").read_text())
    model = (folder / "demo.yaml").read_text()
    assert 0 <= load_lexicon("demo").study_share <= 1
    (tmp_path / "bad.yaml").write_text(re.sub(r"(?m)^study_share: .*$", "study_share: 1.5", model))
    with pytest.raises(ConfigError, match="study_share"):
        load_lexicon(tmp_path / "bad.yaml")
