"""Each page's main flow, run headless with Streamlit's AppTest against a tiny indexed archive."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

from echosearch.search import Engine
from echosearch.store.schema import AuditLog

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest

APP = str(Path(__file__).resolve().parent.parent / "ui" / "app.py")
QUERY = "SEVERE DILATED LEFT VENTRICLE."


@pytest.fixture
def app(ui_archive, monkeypatch):
    monkeypatch.setenv("ECHOSEARCH_HOME", str(ui_archive["data"]))
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def manifest(ui_archive) -> list[dict[str, str]]:
    with open(ui_archive["archive"] / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _buttons(at, suffix: str) -> list:
    return [b for b in at.button if b.key and b.key.endswith(suffix)]


def _search(at, text: str = QUERY):
    at.text_input(key="q").input(text).run()
    _ok(at)
    return at


def _audit_rows(data: Path) -> list[AuditLog]:
    with Engine.open(data) as engine, engine.db.session() as s:
        return list(s.scalars(select(AuditLog).order_by(AuditLog.id)))


def test_search_shows_cards_latency_and_is_audited(app, ui_archive):
    before = len(_audit_rows(ui_archive["data"]))
    _search(app)
    captions = [c.value for c in app.caption]
    assert any("results in" in c and " ms" in c for c in captions), captions
    n_cards = len(_buttons(app, "-sim"))
    assert n_cards == min(12, 8)  # default k=12; the archive has 8 clips
    previews = [m.value for m in app.markdown if "data:image/webp;base64," in m.value]
    assert len(previews) == n_cards
    rows = _audit_rows(ui_archive["data"])
    assert len(rows) == before + 1
    assert rows[-1].action == "search_text" and rows[-1].who.startswith("ui:session-")
    # a rerun (e.g. a click elsewhere) does not search again
    app.sidebar.slider(key="f_k").set_value(3).run()
    _ok(app)
    assert len(_buttons(app, "-sim")) == 3
    assert len(_audit_rows(ui_archive["data"])) == before + 2


def test_filters_restrict_results(app, manifest):
    import datetime as dt

    _search(app)
    dates = sorted({dt.datetime.strptime(r["study_date"], "%Y%m%d").date() for r in manifest})
    app.sidebar.date_input(key="f_dates").set_value((dates[0], dates[0])).run()
    _ok(app)
    expected = sum(1 for r in manifest if r["study_date"] == dates[0].strftime("%Y%m%d"))
    assert 0 < expected < len(manifest)
    assert len(_buttons(app, "-sim")) == expected


def test_example_query_button_fills_the_box(app):
    app.button(key="ex-0").click().run()
    _ok(app)
    assert app.text_input(key="q").value == "severe LV dysfunction"
    assert _buttons(app, "-sim")


def test_a_clinicians_words_find_clips_and_the_reading_is_shown(app):
    _search(app, "pacmaker, no effusion")
    infos = [i.value for i in app.info]
    assert any(i.startswith("**Searched as:**") and "PACEMAKER" in i for i in infos), infos
    assert any("'pacmaker' as 'pacemaker'" in w.value for w in app.warning)
    assert _buttons(app, "-sim")


def test_the_reading_can_be_edited_and_searched_again(app, ui_archive):
    _search(app, "dilated LV")
    area = app.text_area[0]
    assert "DILATED LEFT VENTRICLE." in area.value
    area.input("A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE.")
    for box in app.checkbox:
        if box.key and box.key.startswith("p-"):
            box.uncheck()
    next(b for b in app.button if b.label == "Search with these").click().run()
    _ok(app)
    infos = [i.value for i in app.info]
    assert any("PACEMAKER LEAD" in i and "prefer" not in i for i in infos), infos
    assert _buttons(app, "-sim")


def test_a_query_with_nothing_understood_says_why_and_suggests(app):
    _search(app, "xyzzy plugh")
    warnings = [w.value for w in app.warning]
    assert any("xyzzy" in w for w in warnings), warnings
    assert not _buttons(app, "-sim")


def test_similar_clips_opens_query_by_clip(app):
    _search(app)
    first = _buttons(app, "-sim")[0]
    first.click().run()
    _ok(app)
    assert app.session_state.page == "Query by clip"
    heads = [h.value for h in app.subheader]
    assert any(h.startswith("Clip ") for h in heads)
    assert {"Nearest clips", "Nearest studies", "Nearest reports"} <= set(heads)
    # the query clip's own study is left out of its nearest clips
    assert _buttons(app, "-sim"), "no nearest clips"


def test_this_study_and_same_patient(app):
    _search(app)
    _buttons(app, "-study")[0].click().run()
    _ok(app)
    assert app.session_state.page == "Study lookup"
    heads = [h.value for h in app.subheader]
    assert any(h.startswith("Study 2.25.") for h in heads), heads
    assert "Nearest studies" in heads and "This patient's studies" in heads
    app.button(key="show-patient").click().run()
    _ok(app)
    assert "Same patient?" in [h.value for h in app.subheader]


def test_study_lookup_by_accession_and_mrn(app, manifest):
    app.sidebar.radio(key="page").set_value("Study lookup").run()
    row = manifest[0]
    app.text_input(key="study_q").input(row["accession"]).run()
    _ok(app)
    assert f"Study {row['study_uid']}" in [h.value for h in app.subheader]
    patient_studies = {r["study_uid"] for r in manifest if r["patient_id"] == row["patient_id"]}
    app.text_input(key="study_q").input(row["patient_id"]).run()
    _ok(app)
    heads = [h.value for h in app.subheader]
    assert any(h.removeprefix("Study ") in patient_studies for h in heads), heads
    app.text_input(key="study_q").input("no-such-thing").run()
    _ok(app)
    assert any("no study with that" in e.value for e in app.error)


def test_gradcam_for_a_result(app):
    _search(app)
    _buttons(app, "-cam")[0].click().run()
    _ok(app)
    assert any(h.value.startswith("Where the model looks") for h in app.subheader)
    assert len(app.image) == 2


def test_labels_page_custom_prompt(app):
    app.sidebar.radio(key="page").set_value("Labels").run()
    _ok(app)
    app.text_input(key="prompt").input(
        "A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE."
    ).run()
    _ok(app)
    assert any(c.value.startswith("Scored the archive in") for c in app.caption)
    assert len(_buttons(app, "-sim")) == 8  # default top 8; the archive has 8 clips


def test_labels_page_shows_classes_by_name_and_decisions_as_a_share(app, ui_archive):
    app.sidebar.radio(key="page").set_value("Labels").run()
    _ok(app)
    headers = [m.value for m in app.markdown if m.value.startswith("**")]
    assert headers and not any(".positive" in h for h in headers)  # decisions are not tasks of their own
    with Engine.open(ui_archive["data"]) as engine:
        categorical = [t for t in engine.label_tasks() if engine.label_categories(t)]
        decided = [t for t in engine.label_tasks() if engine.positive_share(t)]
        assert categorical and decided
        classes = engine.label_categories(categorical[0])
    captions = [c.value for c in app.caption]
    first, count = next(iter(classes.items()))
    assert any(c.startswith(f"{first} {count} (") for c in captions)  # class names, not indices
    assert sum(c.startswith("positive at its threshold:") for c in captions) == len(decided)


def test_index_status_counts_and_demo_warning(app, ui_archive):
    app.sidebar.radio(key="page").set_value("Index status").run()
    _ok(app)
    metrics = {m.label: m.value for m in app.metric}
    with Engine.open(ui_archive["data"]) as engine:
        counts = engine.stats()["counts"]
        clinical = engine.clinical
    assert metrics["videos"] == str(counts["videos"]) == "8"
    assert metrics["studies"] == str(counts["studies"])
    if clinical is False:
        assert any("not for clinical use" in e.value for e in app.error)


def test_password_gate(ui_archive, monkeypatch):
    from echosearch.ui.auth import clear_password, set_password

    monkeypatch.setenv("ECHOSEARCH_HOME", str(ui_archive["data"]))
    set_password(ui_archive["data"], "correct horse battery")
    try:
        at = AppTest.from_file(APP, default_timeout=90).run()
        _ok(at)
        assert not at.sidebar.radio, "pages are visible before login"
        at.text_input(key="login_password").input("wrong password")
        at.button[0].click().run()
        assert any("Wrong password" in e.value for e in at.error)
        at.text_input(key="login_name").input("dr-test")
        at.text_input(key="login_password").input("correct horse battery")
        at.button[0].click().run()
        _ok(at)
        assert at.sidebar.radio(key="page").value == "Search"
        assert at.session_state.who == "ui:dr-test"
    finally:
        clear_password(ui_archive["data"])
