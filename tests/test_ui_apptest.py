"""Each page's main flow, run headless with Streamlit's AppTest against a tiny indexed archive."""

from __future__ import annotations

import csv
import json
import re
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


# ---------------------------------------------------------------- issue 19: watch, compare, export, words

INTERNAL = re.compile(r"<#>|\bNone\b|\{'|\b[a-z]+_[a-z_]+\b")


def _internal_words(texts, tasks) -> list[str]:
    """What a clinician must not meet: a template slot, None, a Python dict, a snake_case task name."""
    snake = {t for t in tasks if "_" in t}
    found = []
    for text in texts:
        text = re.sub(r'<img src="data:[^"]+"', "<img>", text)  # previews are base64, not words
        found += [m for m in INTERNAL.findall(text) if "_" not in m or m in snake or m.split(".")[0] in snake]
        found += [t for t in snake if t in text]
    return found


def _page_words(at) -> list[str]:
    texts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [w.value for w in at.warning]
    texts += [i.value for i in at.info] + [e.value for e in at.error] + [b.label for b in at.button]
    texts += [h.value for h in at.subheader] + [x.label for x in at.expander]
    for df in at.dataframe:
        frame = df.value
        assert not frame.isna().any().any(), frame
        texts += [" ".join(map(str, frame.columns))] + [" ".join(map(str, r)) for r in frame.itertuples()]
    return texts


def _tasks(data: Path) -> list[str]:
    with Engine.open(data) as engine:
        return engine.label_tasks()


def test_cards_speak_plain_words(app, ui_archive):
    tasks = _tasks(ui_archive["data"])
    assert any("_" in t for t in tasks), "the test model has snake_case task names to hide"
    _search(app)
    cards = [m.value for m in app.markdown if m.value.startswith("**") and "·" in m.value]
    assert len(cards) == len(_buttons(app, "-play")) > 0
    for card in cards:
        first = card.splitlines()[0]
        assert re.search(r"\d{4}-\d{2}-\d{2}|date not recorded", first), first  # date (and view) first
    efs = [c for c in cards if "EF:" in c]
    assert efs and all("report" in c or "estimate" in c for c in efs)
    assert all("model estimate ≈" in c for c in efs if "≈" in c)  # the model's EF is named an estimate
    assert any("report " in c for c in efs), "the report's own EF is shown beside the estimate"
    reports = [e for e in app.expander if e.label == "Full report"]
    assert reports
    full = reports[0].markdown[0].value
    assert not full.endswith("…") and full.rstrip().endswith(".")  # the whole report, not cut mid-word
    assert not _internal_words(_page_words(app), tasks)
    # the study page and its tables, and the status page, in words too
    _buttons(app, "-study")[0].click().run()
    _ok(app)
    assert not _internal_words(_page_words(app), tasks)
    app.sidebar.radio(key="page").set_value("Index status").run()
    _ok(app)
    runs = [df.value for df in app.dataframe if "what it did" in df.value.columns]
    assert runs and "clips found" in runs[0]["what it did"].iloc[0]
    app.sidebar.radio(key="page").set_value("Labels").run()
    _ok(app)
    headers = [m.value for m in app.markdown if m.value.startswith("**")]
    assert headers and not _internal_words(headers, tasks)


def test_play_opens_the_cine_viewer_with_frame_steps(app, ui_archive):
    _search(app)
    play = _buttons(app, "-play")[0]
    video_id = int(play.key.split("-")[-2])
    play.click().run()
    _ok(app)
    videos = app.get("video")
    assert len(videos) == 1 and videos[0].proto.url.endswith(".mp4")
    cine = ui_archive["data"] / "cine" / f"{video_id}.mp4"
    assert cine.is_file() and cine.stat().st_mode & 0o777 == 0o600
    sidecar = json.loads(cine.with_suffix(".json").read_text())
    assert sidecar["frames"] >= 16 and sidecar["fps"] > 0  # every frame, not the 8 indexed ones
    assert any("frames at" in c.value and "sector only" in c.value for c in app.caption)
    assert app.html, "the control bar (play/pause, frame step, speed, loop) is drawn"
    app.slider(key="cine-frame").set_value(3).run()
    _ok(app)
    assert any(f"frame 3 of {sidecar['frames']}" in str(i.proto) for i in app.image)
    # the same viewer on the study page
    app.session_state.cine_video = None
    _buttons(app, "-study")[0].click().run()
    _ok(app)
    assert "Cine" in [h.value for h in app.subheader]
    assert len(app.get("video")) == 1 and app.slider(key="studycine-frame")


def test_compare_two_clips_from_their_cards(app):
    _search(app)
    first, second = _buttons(app, "-cmp")[:2]
    first.click().run()
    _ok(app)
    assert app.session_state.page == "Search" and app.toast  # the first waits for its partner
    _buttons(app, "-cmp")[1].click().run()
    _ok(app)
    assert app.session_state.page == "Compare"
    ids = [int(b.key.split("-")[-2]) for b in (first, second)]
    assert [app.number_input(key="cmp_a").value, app.number_input(key="cmp_b").value] == ids
    assert len(app.get("video")) == 2
    app.slider(key="cmp-frame").set_value(4).run()
    _ok(app)
    captions = " ".join(str(i.proto) for i in app.image)
    assert "left: frame 4 of" in captions and "right: frame" in captions


def test_compare_with_prior_opens_the_prior_study_beside(app, ui_archive, manifest):
    by_patient: dict[str, list[dict]] = {}
    for row in manifest:
        by_patient.setdefault(row["patient_id"], []).append(row)
    later = next(
        max(rows, key=lambda r: r["study_date"])
        for rows in by_patient.values()
        if len({r["study_uid"] for r in rows}) > 1
    )
    prior = min(by_patient[later["patient_id"]], key=lambda r: r["study_date"])
    app.sidebar.radio(key="page").set_value("Study lookup").run()
    app.text_input(key="study_q").input(later["study_uid"]).run()
    _ok(app)
    button = app.button(key="cmp-prior")
    assert not button.disabled and prior["study_date"][:4] in button.label
    button.click().run()
    _ok(app)
    assert app.session_state.page == "Compare"
    assert any(i.value.startswith("Left: this study") and "prior study" in i.value for i in app.info)
    assert len(app.get("video")) == 2
    with Engine.open(ui_archive["data"]) as engine:
        right = engine.video(app.number_input(key="cmp_b").value)
    assert right.study_uid == prior["study_uid"]


def test_export_csv_has_the_list_and_no_paths_or_mrns(app, ui_archive, manifest, monkeypatch):
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    handed: list[tuple[bytes, str | None]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if mimetype == "text/csv":
            handed.append((path_or_data, filename))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    _search(app)
    n = len(_buttons(app, "-play"))
    assert handed, "no CSV download offered"
    data, name = handed[-1]
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    assert name.startswith("echosearch-results-") and name.endswith(".csv")
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == n
    assert {"Study UID", "Study date", "View", "Similarity", "Report EF"} <= set(rows[0])
    uids = {r["study_uid"] for r in manifest}
    assert all(r["Study UID"] in uids for r in rows)
    assert any(r["Report EF"].endswith("%") for r in rows)
    assert not _internal_words([text], _tasks(ui_archive["data"]))
    for row in manifest:  # no file path, no MRN, no accession number
        for secret in (row["path"], Path(row["path"]).name, row["patient_id"], row["accession"]):
            assert secret not in text, secret
    assert str(ui_archive["archive"]) not in text and str(ui_archive["data"]) not in text
    codes = [c.value for c in app.code]
    assert codes and codes[-1].splitlines() == list(dict.fromkeys(r["Study UID"] for r in rows))


def test_an_empty_result_says_why_once(app, manifest):
    import datetime as dt

    _search(app, "xyzzy plugh")
    warnings = [w.value for w in app.warning]
    assert warnings == ["No clips found: nothing in the query was understood (xyzzy, plugh)."], warnings
    suggestions = [b.label for b in app.button if b.key and b.key.startswith("miss-")]
    assert suggestions and len(set(suggestions)) == len(suggestions)
    assert not any("Try:" in w or any(s in w for s in suggestions) for w in warnings)  # shown once
    assert not any("<#>" in s for s in suggestions)
    # the filters left nothing: the message says so, not that the words were not understood
    _search(app, QUERY)
    days = {dt.datetime.strptime(r["study_date"], "%Y%m%d").date() for r in manifest}
    empty = next(d for d in (min(days) + dt.timedelta(days=i) for i in range(1, 9999)) if d not in days)
    app.sidebar.date_input(key="f_dates").set_value((empty, empty)).run()
    _ok(app)
    assert [w.value for w in app.warning] == ["No clips found: no clip passes the filters; loosen them."]


def test_the_server_opens_the_engine_before_the_first_visitor(ui_archive, monkeypatch):
    """``echosearch.ui.serve`` opens the data dir's Engine before Streamlit listens; the app takes
    that one (once) instead of opening its own, so the first page does not pay for it."""
    from echosearch.ui import preopened, serve

    monkeypatch.setenv("ECHOSEARCH_HOME", str(ui_archive["data"]))
    serve._preopen()
    root = str(ui_archive["data"].resolve())
    engine = preopened.take(root, None)
    try:
        assert isinstance(engine, Engine) and engine.data_dir.resolve() == ui_archive["data"].resolve()
        assert preopened.take(root, None) is None  # handed over once; the app's cache keeps it
    finally:
        engine.close()
    monkeypatch.setenv("ECHOSEARCH_HOME", str(ui_archive["data"] / "no-such-dir"))
    serve._preopen()  # a data dir that cannot be opened: logged, and the app reports it itself
    assert preopened.take(str((ui_archive["data"] / "no-such-dir").resolve()), None) is None
