"""Each page's main flow, run headless with Streamlit's AppTest against a tiny indexed archive."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from echosearch.accounts import Accounts
from echosearch.search import Engine
from echosearch.store.db import open_db
from echosearch.store.schema import AuditLog
from echosearch.whoami import os_user

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
    # no accounts in this archive: the UI is this machine's, audited as the OS user who started it
    assert rows[-1].action == "search_text" and rows[-1].who == f"ui:{os_user()}"
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


@pytest.fixture
def with_accounts(ui_archive, tmp_path, monkeypatch) -> dict:
    """A copy of the archive with accounts (the shared fixture must stay without: the other tests
    use it with no login), served to the app."""
    data = tmp_path / "data"
    shutil.copytree(ui_archive["data"], data)
    monkeypatch.setenv("ECHOSEARCH_HOME", str(data))
    db = open_db(data)
    accounts = Accounts(db)
    accounts.add_user("alice", "viewer", "correct horse battery")
    accounts.add_user("bob", "admin", "another long password")
    yield {"data": data, "accounts": accounts}
    db.close()


def _login(at, name: str, password: str):
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()
    _ok(at)
    return at


def test_login_per_user_locks_after_repeated_failures_and_audits_every_attempt(with_accounts):
    at = AppTest.from_file(APP, default_timeout=90).run()
    _ok(at)
    assert not at.sidebar.radio, "pages are visible before login"
    assert [t.key for t in at.text_input] == ["login_name", "login_password"]
    for _ in range(4):
        _login(at, "alice", "wrong password")
        assert [e.value for e in at.error] == ["Wrong account name or password."]
    _login(at, "alice", "wrong password")  # the fifth failure in a row locks the account
    assert any("Too many failed logins for this account" in e.value for e in at.error)
    _login(at, "alice", "correct horse battery")  # locked: even the right password waits
    assert not at.sidebar.radio and any("Too many failed logins" in e.value for e in at.error)
    rows = _audit_rows(with_accounts["data"])
    failed = [r for r in rows if r.action == "login_failed"]
    assert len(failed) == 6 and {r.who for r in failed} == {"ui:alice"}
    assert [r.query["outcome"] for r in failed] == ["bad_credentials"] * 5 + ["locked"]

    _login(at, "bob", "another long password")  # another account logs in meanwhile
    assert at.sidebar.radio(key="page").value == "Search" and at.session_state.who == "ui:bob"
    _search(at)
    rows = _audit_rows(with_accounts["data"])
    assert [(r.action, r.who) for r in rows[-2:]] == [("login", "ui:bob"), ("search_text", "ui:bob")]
    assert any("Logged in as **bob** (admin)" in c.value for c in at.sidebar.caption)


def test_a_burst_of_failed_logins_from_one_session_is_throttled(with_accounts):
    at = AppTest.from_file(APP, default_timeout=90).run()
    for i in range(10):  # different names: no account lockout, only the per-client one
        _login(at, f"guess{i}", "wrong password")
    assert any("Too many failed logins from here" in e.value for e in at.error)
    _login(at, "alice", "correct horse battery")
    assert not at.sidebar.radio, "a throttled client got in"
    assert with_accounts["accounts"].active_role("alice") == "viewer"  # the account is not locked


def test_logout_and_a_disabled_account_end_the_session(with_accounts):
    at = _login(AppTest.from_file(APP, default_timeout=90).run(), "alice", "correct horse battery")
    assert at.sidebar.radio(key="page").value == "Search"
    at.sidebar.button(key="logout").click().run()
    _ok(at)
    assert not at.sidebar.radio and at.text_input(key="login_name")
    _login(at, "alice", "correct horse battery")
    assert at.sidebar.radio
    with_accounts["accounts"].set_disabled("alice")
    at.run()
    _ok(at)
    assert not at.sidebar.radio, "a disabled account's open session went on"


def test_the_index_status_page_shows_the_data_dir_to_admins_only(with_accounts):
    for name, password, shown in (
        ("alice", "correct horse battery", False),
        ("bob", "another long password", True),
    ):
        at = _login(AppTest.from_file(APP, default_timeout=90).run(), name, password)
        at.sidebar.radio(key="page").set_value("Index status").run()
        _ok(at)
        assert any(str(with_accounts["data"]) in m.value for m in at.markdown) == shown


def test_an_archive_that_had_the_shared_password_stays_closed_until_it_has_accounts(
    ui_archive, tmp_path, monkeypatch
):
    from echosearch.accounts import hash_password

    data = tmp_path / "data"
    shutil.copytree(ui_archive["data"], data)
    (data / "site.yaml").write_text(f"ui:\n  password_hash: '{hash_password('old shared password')}'\n")
    monkeypatch.setenv("ECHOSEARCH_HOME", str(data))
    at = AppTest.from_file(APP, default_timeout=90).run()
    _ok(at)
    assert not at.sidebar.radio and not at.text_input
    assert any("users add" in e.value for e in at.error)
