"""The Engine on a real indexed archive (synthetic clips, the demo model when built, real SQLite + FAISS)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from echosearch.errors import UsageError
from echosearch.query.lexicon import load_lexicon
from echosearch.search import Engine, parse_where, suggest_phrases
from echosearch.search.query_vectors import split_negatives
from echosearch.store.schema import AuditLog, Study, Video
from echosearch.synth.reports import load_vocabulary

# A phrase of the demo template vocabulary (so it is a real query for the demo model) that CLIP BPE
# models read as well.
PACER = "A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE."


@pytest.fixture(scope="module")
def engine(ui_archive):
    with Engine.open(ui_archive["data"]) as eng:
        yield eng


def _videos(engine) -> list[Video]:
    with engine.db.session() as s:
        return list(s.scalars(select(Video).order_by(Video.id)))


def _dicom_video(engine) -> Video:
    return next(v for v in _videos(engine) if v.path.endswith(".dcm"))


def test_an_engine_opened_with_with_is_closed_on_leaving_even_by_an_error(ui_archive, monkeypatch):
    closed = []
    with pytest.raises(RuntimeError), Engine.open(ui_archive["data"]) as eng:
        monkeypatch.setattr(eng.db, "close", lambda: closed.append("db"))
        assert eng.stats()["counts"]["videos"] > 0
        raise RuntimeError("a failing query")
    assert closed == ["db"]


def test_open_refuses_a_dir_without_an_index(tmp_path):
    with pytest.raises(UsageError, match="no echosearch index"):
        Engine.open(tmp_path)


def test_text_search_returns_ranked_hits_with_labels(engine):
    result = engine.search_text("SEVERE DILATED LEFT VENTRICLE.", k=3)
    assert 1 <= len(result.results) <= 3
    scores = [h.score for h in result.results]
    assert scores == sorted(scores, reverse=True)
    hit = result.results[0]
    assert hit.path and hit.study_uid and "ejection_fraction" in hit.labels
    assert hit.thumbnail and hit.preview


def test_clip_by_id_finds_itself_first_when_allowed(engine):
    video = _dicom_video(engine)
    result = engine.search_clip(video.id, k=3, exclude_same_study=False, exclude_self=False)
    assert result.results[0].video_id == video.id
    assert result.results[0].score == pytest.approx(1.0, abs=1e-4)


def test_clip_search_leaves_out_itself_and_its_study(engine):
    video = _dicom_video(engine)
    result = engine.search_clip(video.id, k=50)
    study_uid = result.query["study_uid"]
    assert all(h.video_id != video.id and h.study_uid != study_uid for h in result.results)


def test_a_new_file_is_encoded_like_the_indexer_did(engine, tmp_path):
    """A re-saved copy (new SOP UID, so new bytes) is read and encoded by the Engine itself; it must
    land on the original clip: the Engine preprocesses exactly as the indexer did."""
    video = _dicom_video(engine)
    ds = pydicom.dcmread(engine.source_file(video.id))  # the stored key, through its source root
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    copy = tmp_path / "copy.dcm"
    ds.save_as(copy)
    result = engine.search_clip(str(copy), k=1, exclude_same_study=False)
    assert result.results[0].video_id == video.id
    assert result.results[0].score > 0.99


def test_label_filter_equals_filtering_the_labels(engine):
    values = {v.id: engine.video(v.id).labels.get("ejection_fraction") for v in _videos(engine)}
    cut = float(np.median([x for x in values.values() if x is not None]))
    result = engine.search_text(
        "THE LEFT VENTRICULAR EJECTION FRACTION IS 30%.",
        k=100,
        filters=parse_where([f"ejection_fraction < {cut}"]),
    )
    expected = {vid for vid, ef in values.items() if ef is not None and ef < cut}
    assert {h.video_id for h in result.results} == expected


def test_study_search_and_same_patient(engine):
    with engine.db.session() as s:
        studies = list(s.scalars(select(Study).where(Study.patient_id.is_not(None))))
        by_patient: dict[int, list[str]] = {}
        for st in studies:
            if st.videos:
                by_patient.setdefault(st.patient_id, []).append(st.study_uid)
    pair = next((uids for uids in by_patient.values() if len(uids) >= 2), None)
    if pair is None:
        pytest.skip("the test archive drew no patient with two studies")
    nearest = engine.search_study(pair[0], k=10)
    assert pair[0] not in {h.study_uid for h in nearest.results}
    same = engine.same_patient(pair[0], pair[1])
    assert same.same_patient_on_record is True and -1.0 <= same.score <= 1.0
    timeline = engine.patient_timeline(pair[0])
    assert {pair[0], pair[1]} <= {h.study_uid for h in timeline}


def test_nearest_reports_and_custom_prompt(engine):
    video = _dicom_video(engine)
    reports = engine.nearest_reports(video.id, k=2)
    assert reports.results and reports.results[0].text
    scored = engine.score_prompt(PACER, k=5)
    scores = [h.score for h in scored.results]
    assert scores == sorted(scores, reverse=True) and len(scores) == min(5, len(_videos(engine)))


def test_free_text_outside_the_template_is_read_as_template_phrases(engine):
    result = engine.search_text("dilated lv", k=5)
    assert result.results
    assert any("DILATED LEFT VENTRICLE" in p["text"] for p in result.interpretation["phrases"])


def test_queries_are_audited(engine):
    engine.who = "dr-test"
    engine.search_text("MitraClip", k=1)
    with engine.db.session() as s:
        last = s.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert last.who == "dr-test" and last.query["texts"] == ["MitraClip"]


def test_a_server_writes_audit_rows_in_the_background_in_order_at_the_time_asked(tmp_path, engine):
    from echosearch.store.schema import utcnow

    engine.audit.write_in_background()
    try:
        asked = utcnow()
        with engine.db.session() as s:
            before = s.scalars(select(AuditLog.id).order_by(AuditLog.id.desc())).first() or 0
        for i in range(30):
            engine.who = f"api:user{i % 3}"
            engine.audit.record("probe", {"n": i})
        engine.audit.flush()
        with engine.db.session() as s:
            rows = list(s.scalars(select(AuditLog).where(AuditLog.id > before).order_by(AuditLog.id)))
        assert [r.query["n"] for r in rows] == list(range(30))
        assert [r.who for r in rows] == [f"api:user{i % 3}" for i in range(30)]
        assert all(
            abs((r.at.replace(tzinfo=None) - asked.replace(tzinfo=None)).total_seconds()) < 60 for r in rows
        )
        engine.audit.record("last", {})
    finally:
        engine.audit.close()  # writes what is queued and goes back to writing as rows come
    with engine.db.session() as s:
        assert s.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first().action == "last"


def test_bad_where_is_a_usage_error():
    with pytest.raises(UsageError):
        parse_where(["bogus"])
    f = parse_where(["date >= 2020-01-02", "view = A4C|PLAX", "ef < 40"])
    assert f.date_from.isoformat() == "2020-01-02" and list(f.views) == ["A4C", "PLAX"]
    assert f.labels[0].task == "ef" and f.labels[0].op == "<"


def test_negatives_are_split_from_the_query():
    texts, negatives = split_negatives([("A4C, not pacer", 1.0)], [])
    assert texts == [("A4C", 1.0)] and negatives == ["pacer"]


def test_suggestions_for_free_text_use_the_template_phrases():
    phrases = load_vocabulary()
    suggestions = suggest_phrases("dilated lv", phrases, spelled_out=load_lexicon("demo").spelled_out)
    assert suggestions and "DILATED LEFT VENTRICLE" in suggestions[0]


def test_cli_json_contract(ui_archive, cli):
    done = cli("search", PACER, "-k", "2", "--data", str(ui_archive["data"]), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["query"]["texts"] == [PACER]
    for hit in doc["results"]:
        assert {"video_id", "score", "path", "study_uid", "study_date", "view", "labels"} <= set(hit)
    done = cli("study", "no-such-study", "--data", str(ui_archive["data"]))
    assert done.returncode == 1 and "no study" in done.stderr and "Traceback" not in done.stderr


def test_stats_counts_what_was_indexed(engine, ui_archive, tmp_path):
    info = engine.stats()
    assert info["counts"]["videos"] == ui_archive["summary"].clips
    assert any(sp["kind"] == "report" for sp in info["spaces"])
    shutil.rmtree(tmp_path)


# ---------------------------------------------------------------- query understanding on a real index


def test_a_clinicians_words_search_with_the_interpretation_in_the_result(engine):
    result = engine.search_text("pacmaker", k=5)
    assert result.results
    doc = result.to_dict()["interpretation"]
    assert doc["corrections"] == {"pacmaker": "pacemaker"}
    assert any("PACEMAKER" in p["text"] for p in doc["phrases"])
    assert any("'pacmaker' as 'pacemaker'" in n for n in result.notes)


def test_a_stated_number_filters_on_the_stored_estimate(engine):
    result = engine.search_text("EF < 45%", k=20)
    assert all(h.labels["ejection_fraction"] < 45 for h in result.results)
    doc = result.interpretation
    assert doc["filters"][0]["task"] == "ejection_fraction" and doc["filters"][0]["high"] == 45


def test_a_negated_device_is_excluded_and_does_not_wipe_the_query(engine):
    positives = engine.search_text("pacemaker", k=20).results
    if not any(h.labels.get("pacemaker.positive") == 1.0 for h in positives):
        pytest.skip("the test archive's model calls no clip paced")
    result = engine.search_text("dilated LV, no pacer", k=20)
    assert result.results
    assert all(h.labels.get("pacemaker.positive") == 0.0 for h in result.results)


def test_label_preferences_rank_matching_clips_first(engine):
    everyone = engine.search_text("pacemaker", k=1000).results
    if "pacemaker" not in everyone[0].labels:
        pytest.skip("no pacemaker scores stored")
    scores = [h.labels["pacemaker"] for h in everyone]
    first, rest = scores[: len(scores) // 3], scores[len(scores) // 3 :]
    assert np.mean(first) > np.mean(rest)  # the label's evidence, not only the text, ranks them
    weak = engine.search_text("no pacer", k=1000).results
    assert np.mean([h.labels["pacemaker"] for h in weak[: len(weak) // 3]]) < np.mean(first)


def test_a_graded_finding_without_a_stored_grade_is_graded_by_its_phrases(engine):
    from echosearch.query.rank import text_grade_source, text_grades

    result = engine.search_text("severely dilated RV", k=1000)
    (pref,) = [c for c in result.interpretation["preferences"] if c["kind"] == "text_grade"]
    assert pref["finding"] == "rv_size" and pref["grades"] == ["severe"]
    plan = engine.vectors.interpret("severely dilated RV")
    cond = next(c for c in plan.preferences if c.kind == "text_grade")
    source = text_grade_source(cond, [engine.vectors.encode_texts(p) for p in cond.grade_phrases.values()])
    ids = [h.video_id for h in result.results]
    grades = text_grades(engine.vectors.archive.index.reconstruct(np.asarray(ids, np.int64)), source)
    third = max(1, len(ids) // 3)
    assert grades[:third].mean() > grades[third:].mean()  # the more severe clips first
    # where the space stores the finding's grade (LV function), the stored one is used and shown
    shown = engine.search_text("severe LV dysfunction", k=3).interpretation["preferences"]
    if any(c.get("task") == "lv_function" for c in shown) and "lv_function.grade" in engine.label_tasks():
        assert not [c for c in shown if c["kind"] == "text_grade"]


def test_a_label_of_a_finding_the_clips_view_does_not_image_reads_not_seen(engine):
    unseen = engine.labels.unseen("PSAX-PM")  # the papillary muscle level: no aortic valve
    assert "tavr" in unseen and "pericardial_effusion" not in unseen and "pacemaker" not in unseen
    assert engine.labels.unseen("PLAX").isdisjoint({"tavr", "pacemaker", "lv_size"})
    assert engine.labels.unseen(None) == set()
    labels = {"view": "PSAX-PM", "tavr": 0.3, "tavr.positive": 1.0, "tavr.probability": 0.86}
    phrases = engine.readable_labels(labels)
    if any(p.startswith("TAVR") for p in phrases):
        assert "TAVR: not seen in this view" in phrases
    labels["view"] = "PSAX-AV"
    assert not any("not seen" in p for p in engine.readable_labels(labels))


def test_the_reading_shown_is_the_one_an_edit_starts_from(engine):
    """The UI's edit form keeps or drops conditions by their place in the shown reading and applies
    the flags to ``interpret``'s plan: both must list the same conditions in the same order."""
    for query in ("structurally normal heart", "severe LV dysfunction, dilated RV", "large effusion"):
        shown = engine.search_text(query, k=3).interpretation
        plan = engine.interpret(query)
        assert [c["text"] for c in shown["preferences"]] == [c.describe() for c in plan.preferences]
        assert [c["text"] for c in shown["filters"]] == [c.describe() for c in plan.filters]
        dropped = plan.edited(
            [p.text for p in plan.phrases], [True] * len(plan.filters), [False] * len(plan.preferences)
        )
        assert dropped.preferences == [] and dropped.phrases


def test_an_interpreted_querys_similarity_is_mixed_with_its_studys_mean(engine):
    from echosearch.store import queries as q

    result = engine.search_text("mitral regurgitation", k=1000)  # phrases only: no label preference
    assert result.interpretation["preferences"] == [] and len(result.results) > 1
    vec, _ = engine.vectors.plan_vector(engine.vectors.interpret("mitral regurgitation"))
    index, share = engine.vectors.archive.index, engine.vectors.lexicon.study_share
    with engine.db.session() as s:
        mates = q.study_clips(s, [h.video_id for h in result.results])
    for hit in result.results:
        own = float(index.reconstruct([hit.video_id])[0] @ vec)
        study = float((index.reconstruct(mates[hit.video_id]) @ vec).mean())
        assert hit.score == pytest.approx((1 - share) * own + share * study, abs=1e-5)
    literal = engine.search_text("MILD MITRAL VALVE REGURGITATION BY COLOR DOPPLER.", k=3, literal=True)
    first = literal.results[0]
    with engine.db.session() as s:
        assert len(q.study_clips(s, [first.video_id])[first.video_id]) >= 1
    vec_literal, _ = engine.vectors.text_vector("MILD MITRAL VALVE REGURGITATION BY COLOR DOPPLER.")
    assert first.score == pytest.approx(float(index.reconstruct([first.video_id])[0] @ vec_literal), abs=1e-4)


def test_nothing_understood_returns_a_reason_and_filled_suggestions_not_an_empty_page(engine):
    result = engine.search_text("xyzzy plugh", k=5)
    assert result.results == []
    assert any("xyzzy" in n for n in result.notes)
    assert result.suggestions and not any("<#>" in s for s in result.suggestions)


def test_literal_search_keeps_the_old_behaviour(engine):
    exact = engine.search_text(PACER, k=3, literal=True)
    assert exact.results and exact.interpretation is None
    if getattr(engine.encoder.tokenizer, "phrases", None) is not None:
        assert engine.search_text("pacemaker", k=3, literal=True).results == []


def test_the_reading_names_labels_by_their_display_names(engine):
    tasks = {t.name: t for t in engine.zero_shot_tasks()[0]}
    if not getattr(tasks.get("pacemaker"), "display_name", ""):
        pytest.skip("the test archive's task file gives no display names")
    plan = engine.search_text("pacemaker", k=3).interpretation
    assert any(c["text"] == f"{tasks['pacemaker'].display_name}: yes" for c in plan["preferences"])


def test_without_a_named_space_the_registry_default_model_wins_over_the_newest(tmp_path):
    """The demo indexes with echosearch-demo then echosearch-demo-bpe: searches use the registry's
    default model (the better one), not whichever was indexed last; a site's own single model (not
    in the registry) is still found."""
    from echosearch.index import Space, SpaceInfo
    from echosearch.models.registry import default_model
    from echosearch.search.engine import default_space

    def space(name: str, model: str, when: str) -> Space:
        return Space.create(tmp_path, SpaceInfo(name=name, model_name=model, dim=8, created_at=when))

    chosen = space(default_model(), default_model(), "2026-01-01T00:00:00+00:00")
    newer = space("other-model", "/models/other", "2026-06-01T00:00:00+00:00")
    assert default_space([chosen, newer]) is chosen
    assert default_space([newer]) is newer
    site_a = space("site-a", "/models/a", "2026-01-01T00:00:00+00:00")
    assert default_space([site_a, newer]) is newer  # neither is the default: the latest indexed


def test_phrase_vectors_are_encoded_once_and_then_remembered(engine, monkeypatch):
    encoder = engine.vectors.archive.encoder
    real, seen = encoder.encode_text, []

    def counting(texts):
        seen.append(list(texts))
        return real(texts)

    monkeypatch.setattr(encoder, "encode_text", counting)
    engine.vectors._texts.clear()
    first = engine.search_text("severe LV dysfunction, pacemaker", k=5)
    encoded = [t for batch in seen for t in batch]
    assert encoded and len(encoded) == len(set(encoded))
    again = engine.search_text("pacemaker and severe LV dysfunction", k=5)
    assert [t for batch in seen for t in batch] == encoded  # the same phrases: no new encoding
    assert [h.video_id for h in again.results] == [h.video_id for h in first.results]
    np.testing.assert_allclose(engine.vectors.encode_texts([PACER])[0], real([PACER]).numpy()[0], atol=2e-3)
