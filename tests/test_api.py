"""The REST API (`echosearch serve`) on a real indexed archive: FastAPI's TestClient, and a live uvicorn
on a loopback port. Auth (401/403/429), every endpoint's JSON, bad inputs, uploads, jobs, concurrency."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from echosearch.accounts import Accounts
from echosearch.search import Engine
from echosearch.store.schema import ApiToken, AuditLog, Failure

fastapi_testclient = pytest.importorskip("fastapi.testclient")
TestClient = fastapi_testclient.TestClient

from echosearch.api import ApiSettings, create_app  # noqa: E402

V1 = "/api/v1"
QUERY = "SEVERE DILATED LEFT VENTRICLE."


@pytest.fixture(scope="module")
def archive(ui_archive, tmp_path_factory) -> dict:
    """A copy of the UI test archive's data dir (accounts added here must not switch the UI tests'
    login on), with an account and token per role, an expired, a revoked and a disabled one."""
    data = tmp_path_factory.mktemp("api") / "data"
    shutil.copytree(ui_archive["data"], data)
    engine = Engine.open(data)
    accounts = Accounts(engine.db)
    tokens = {}
    for name, role in (
        ("vera", "viewer"),
        ("ian", "indexer"),
        ("ada", "admin"),
        ("old", "viewer"),
        ("gone", "viewer"),
    ):
        accounts.add_user(name, role)
        tokens[name] = accounts.create_token(name, dt.timedelta(days=1)).token
    revoked = accounts.create_token("vera")
    accounts.revoke_token(revoked.info.id)
    tokens["revoked"] = revoked.token
    with engine.db.session() as s:  # expired a minute ago
        row = s.scalars(select(ApiToken).where(ApiToken.prefix == tokens["old"][:10])).one()
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    accounts.set_disabled("gone")
    yield {"data": data, "engine": engine, "tokens": tokens, "archive": ui_archive["archive"]}
    engine.close()


def _app(archive, **settings):
    defaults = {"index_roots": (Path(archive["archive"]).resolve(),)}
    return create_app(engine=archive["engine"], settings=ApiSettings(**{**defaults, **settings}))


@pytest.fixture(scope="module")
def client(archive):
    with TestClient(_app(archive)) as c:
        yield c


def auth(archive, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {archive['tokens'][who]}"}


def get(client, archive, url: str, who: str = "vera", **kw):
    return client.get(V1 + url, headers=auth(archive, who), **kw)


def _error(r, status: int, code: str | None = None, parameter: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "message"}, body
    if code:
        assert body["error"] == code, body
    if parameter:
        assert body["parameter"] == parameter, body
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body


def _audit(archive) -> list[AuditLog]:
    archive["engine"].audit.flush()  # the server writes audit rows from a background thread
    with archive["engine"].db.session() as s:
        return list(s.scalars(select(AuditLog).order_by(AuditLog.id)))


# ---------------------------------------------------------------- auth


def test_health_needs_no_token_and_docs_are_served(client):
    r = client.get(f"{V1}/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    spec = client.get(f"{V1}/openapi.json").json()
    assert {f"{V1}/search", f"{V1}/clips/{{video_id}}/similar", f"{V1}/studies/{{uid}}"} <= set(spec["paths"])
    assert "bearer" in str(spec["components"]["securitySchemes"]).lower()
    docs = client.get(f"{V1}/docs")
    assert docs.status_code == 200
    # Swagger UI's code comes from this server (a hospital network has no CDN), and it is served.
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(a.startswith(f"{V1}/docs/assets/") for a in assets)
    for a in assets:
        assert client.get(a).status_code == 200 and len(client.get(a).content) > 500


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Bearer es_not-a-token"}, "invalid_token"),
        ({"Authorization": "Basic dmVyYTpwYXNzd29yZA=="}, "invalid_token"),
    ],
)
def test_no_or_bad_token_is_401(client, headers, code):
    r = client.get(f"{V1}/search", params={"q": QUERY}, headers=headers)
    _error(r, 401, code)
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("who", ["old", "revoked", "gone"])
def test_expired_revoked_and_disabled_tokens_are_401(client, archive, who):
    _error(get(client, archive, "/stats", who), 401, "invalid_token")


def test_a_revoked_token_stops_at_the_next_request(client, archive):
    accounts = Accounts(archive["engine"].db)
    new = accounts.create_token("vera")
    headers = {"Authorization": f"Bearer {new.token}"}
    assert client.get(f"{V1}/me", headers=headers).json() == {"name": "vera", "role": "viewer"}
    accounts.revoke_token(new.info.id)
    _error(client.get(f"{V1}/me", headers=headers), 401, "invalid_token")


@pytest.mark.parametrize(
    ("method", "url", "needs"),
    [
        ("get", "/failures", "admin"),
        ("get", "/audit", "admin"),
        ("post", "/relabel", "indexer"),
        ("post", "/index", "indexer"),
        ("get", "/jobs", "indexer"),
    ],
)
def test_a_viewer_is_forbidden_from_admin_and_indexer_routes(client, archive, method, url, needs):
    r = getattr(client, method)(V1 + url, headers=auth(archive, "vera"))
    body = _error(r, 403, "forbidden")
    assert needs in body["message"]


def test_roles_are_ordered(client, archive):
    assert get(client, archive, "/failures", "ada").status_code == 200
    _error(get(client, archive, "/failures", "ian"), 403)
    assert get(client, archive, "/jobs", "ian").status_code == 200
    assert get(client, archive, "/jobs", "ada").status_code == 200


def test_a_burst_of_bad_tokens_from_one_client_is_429_for_that_client_only(archive):
    app = _app(archive, bad_token_failures=5, bad_token_window_s=60, bad_token_lockout_s=30)
    attacker = TestClient(app, client=("10.9.9.9", 4000))
    other = TestClient(app, client=("10.1.1.1", 4000))
    for i in range(5):
        _error(attacker.get(f"{V1}/me", headers={"Authorization": f"Bearer es_guess{i}"}), 401)
    r = attacker.get(f"{V1}/me", headers=auth(archive, "vera"))  # even a good token, while locked out
    _error(r, 429, "too_many_bad_tokens")
    assert int(r.headers["retry-after"]) >= 1
    assert other.get(f"{V1}/me", headers=auth(archive, "vera")).status_code == 200


def test_each_token_has_a_rate_limit(archive):
    c = TestClient(_app(archive, rate_per_minute=60, rate_burst=3))
    codes = [c.get(f"{V1}/me", headers=auth(archive, "vera")).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429
    r = c.get(f"{V1}/me", headers=auth(archive, "vera"))
    _error(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    assert c.get(f"{V1}/me", headers=auth(archive, "ada")).status_code == 200  # per token


# ---------------------------------------------------------------- searches


def test_search_returns_the_cli_json_paged(client, archive):
    r = get(client, archive, "/search", params={"q": QUERY, "k": 4})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert {"query", "model", "elapsed_ms", "notes", "suggestions", "results", "interpretation"} <= set(doc)
    assert (doc["offset"], doc["k"], doc["returned"]) == (0, 4, 4) and doc["next_offset"] == 4
    hit = doc["results"][0]
    assert {"video_id", "score", "study_uid", "labels", "thumbnail", "preview"} <= set(hit)
    assert hit["path"] is None  # a viewer does not see server paths
    assert hit["thumbnail"] == f"{V1}/clips/{hit['video_id']}/thumbnail"
    scores = [h["score"] for h in doc["results"]]
    assert scores == sorted(scores, reverse=True)
    first, second = (
        get(client, archive, "/search", params={"q": QUERY, "k": 2, "offset": o}).json() for o in (0, 2)
    )
    assert [h["video_id"] for h in first["results"] + second["results"]] == [
        h["video_id"] for h in doc["results"]
    ]
    last = get(client, archive, "/search", params={"q": QUERY, "k": 5, "offset": 5}).json()
    assert last["returned"] == 3 and last["next_offset"] is None  # 8 clips in all
    admin = get(client, archive, "/search", "ada", params={"q": QUERY, "k": 1}).json()
    assert admin["results"][0]["path"].endswith((".dcm", ".avi", ".mp4"))


def test_search_filters_negatives_and_literal(client, archive):
    every = get(client, archive, "/search", params={"q": QUERY, "k": 8}).json()["results"]
    cut = sorted(h["labels"]["ejection_fraction"] for h in every)[4]
    doc = get(client, archive, "/search", params={"q": QUERY, "k": 8, "where": [f"ef >= {cut}"]}).json()
    assert 0 < doc["returned"] < 8 and all(h["labels"]["ejection_fraction"] >= cut for h in doc["results"])
    both = {"q": QUERY, "k": 8, "where": [f"ef >= {cut}", "ejection_fraction <= 100"]}
    assert get(client, archive, "/search", params=both).json()["returned"] == doc["returned"]
    r = get(client, archive, "/search", params={"q": QUERY, "negative": "PACEMAKER", "literal": "true"})
    assert r.status_code == 200 and "interpretation" not in r.json()


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"q": QUERY, "k": 0}, "k"),
        ({"q": QUERY, "k": "ten"}, "k"),
        ({"q": QUERY, "k": 100_000}, "k"),
        ({"q": QUERY, "offset": -1}, "offset"),
        ({"q": QUERY, "k": 1000, "offset": 1}, "offset"),
        ({"q": ""}, "q"),
        ({}, "q"),
        ({"q": "x" * 5000}, "q"),
        ({"q": QUERY, "where": "ef <<< 4"}, "where"),
        ({"q": QUERY, "where": "no_such_label > 3"}, "where"),
        ({"q": QUERY, "where": "date >= yesterday"}, "where"),
        ({"q": QUERY, "literal": "maybe"}, "literal"),
    ],
)
def test_bad_search_parameters_are_400_naming_them(client, archive, params, parameter):
    _error(get(client, archive, "/search", params=params), 400, "bad_parameter", parameter)


def test_interpret(client, archive):
    doc = get(client, archive, "/interpret", params={"q": "pacmaker, no effusion"}).json()
    assert {"phrases", "negatives", "filters", "corrections", "summary"} <= set(doc)
    assert doc["corrections"] == {"pacmaker": "pacemaker"}


# ---------------------------------------------------------------- clips


def test_clip_similar_labels_and_reports(client, archive):
    clip = get(client, archive, "/clips/1").json()
    assert clip["video_id"] == 1 and clip["path"] is None and clip["labels"]
    sim = get(client, archive, "/clips/1/similar", params={"k": 3}).json()
    assert sim["returned"] == 3 and 1 not in [h["video_id"] for h in sim["results"]]
    assert all(h["study_uid"] != clip["study_uid"] for h in sim["results"])
    same = get(client, archive, "/clips/1/similar", params={"k": 7, "include_same_study": True}).json()
    assert any(h["study_uid"] == clip["study_uid"] for h in same["results"])
    labels = get(client, archive, "/clips/1/labels").json()
    assert labels["target"] == 1 and labels["labels"] == clip["labels"]
    reports = get(client, archive, "/clips/1/reports", params={"k": 2}).json()
    assert reports["returned"] == 2 and {"report_id", "score", "study_uid", "text"} <= set(
        reports["results"][0]
    )


def test_clip_thumbnail_and_preview_are_files_behind_the_token(client, archive):
    r = get(client, archive, "/clips/1/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    r = get(client, archive, "/clips/1/preview")
    assert r.status_code == 200 and r.content[8:12] == b"WEBP"
    _error(client.get(f"{V1}/clips/1/thumbnail"), 401)


@pytest.mark.parametrize(
    "url", ["/clips/999", "/clips/999/similar", "/clips/999/labels", "/clips/999/thumbnail"]
)
def test_unknown_clips_are_404(client, archive, url):
    _error(get(client, archive, url), 404, "not_found")


@pytest.mark.parametrize("url", ["/clips/abc", "/clips/0", "/clips/-3/similar"])
def test_bad_clip_ids_are_400(client, archive, url):
    _error(get(client, archive, url), 400, "bad_parameter", "video_id")


def test_upload_a_clip_to_find_similar_ones(client, archive):
    clip = sorted(Path(archive["archive"]).rglob("*.dcm"))[0]
    with open(clip, "rb") as f:
        r = client.post(
            f"{V1}/similar",
            headers=auth(archive, "vera"),
            files={"file": (clip.name, f, "application/dicom")},
            params={"k": 3, "include_same_study": True},
        )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["query"]["upload"] == clip.name and doc["returned"] == 3
    # the same bytes as an indexed clip: its stored vector, so the same answer as by its id
    everything = get(client, archive, "/search", "ada", params={"q": QUERY, "k": 8}).json()["results"]
    vid = next(h["video_id"] for h in everything if h["path"] == str(clip))
    by_id = get(client, archive, f"/clips/{vid}/similar", params={"k": 3, "include_same_study": True}).json()
    assert [h["video_id"] for h in doc["results"]] == [h["video_id"] for h in by_id["results"]]
    assert not list((archive["data"] / "uploads").glob("api-*"))  # nothing kept


def test_a_bad_upload_is_400_naming_the_file_and_a_big_one_413(client, archive):
    r = client.post(
        f"{V1}/similar",
        headers=auth(archive, "vera"),
        files={"file": ("notes.txt", b"hello " * 200, "text/plain")},
    )
    body = _error(r, 400, "bad_parameter", "file")
    assert "notes.txt" in body["message"] and str(archive["data"]) not in body["message"]
    r = client.post(f"{V1}/similar", headers=auth(archive, "vera"), files={"file": ("e.dcm", b"", "x/y")})
    _error(r, 400, "bad_parameter", "file")
    _error(client.post(f"{V1}/similar", headers=auth(archive, "vera")), 400, "bad_parameter", "file")
    small = TestClient(_app(archive, max_upload_bytes=10_000))
    r = small.post(
        f"{V1}/similar", headers=auth(archive, "vera"), files={"file": ("big.dcm", b"\0" * 50_000, "x/y")}
    )
    _error(r, 413, "too_large")


def test_request_bodies_are_size_limited_chunked_or_not(client, archive):
    big = {"paths": ["x" * 100] * 20_000}
    _error(client.post(f"{V1}/index", headers=auth(archive, "ian"), json=big), 413, "too_large")

    def chunks():
        for _ in range(40):
            yield b"x" * 50_000

    r = client.post(
        f"{V1}/index", headers={**auth(archive, "ian"), "content-type": "application/json"}, content=chunks()
    )
    _error(r, 413, "too_large")


# ---------------------------------------------------------------- studies


def test_study_similar_timeline_and_same_patient(client, archive, ui_archive):
    import csv

    with open(ui_archive["archive"] / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    uid = rows[0]["study_uid"]
    study = get(client, archive, f"/studies/{uid}").json()
    assert study["study_uid"] == uid and study["videos"] and all(v["path"] is None for v in study["videos"])
    by_accession = get(client, archive, f"/studies/{rows[0]['accession']}").json()
    assert by_accession["study_uid"] == uid
    near = get(client, archive, f"/studies/{uid}/similar", params={"k": 2}).json()
    assert near["results"] and uid not in [h["study_uid"] for h in near["results"]]
    timeline = get(client, archive, f"/studies/{uid}/timeline").json()
    patient = {r["study_uid"] for r in rows if r["patient_id"] == rows[0]["patient_id"]}
    assert {h["study_uid"] for h in timeline["results"]} == patient
    other = next(r["study_uid"] for r in rows if r["study_uid"] != uid)
    pair = get(client, archive, "/same-patient", params={"a": uid, "b": other}).json()
    assert {"study_a", "study_b", "score", "same_patient_on_record"} <= set(pair)
    _error(get(client, archive, "/studies/2.25.999"), 404, "not_found")
    _error(get(client, archive, "/studies/2.25.999/similar"), 404)
    _error(get(client, archive, "/same-patient", params={"a": uid, "b": "nope"}), 404)
    _error(get(client, archive, "/same-patient", params={"a": uid}), 400, "bad_parameter", "b")
    # a lookup by accession is audited with the accession hashed, never in the clear
    row = next(a for a in reversed(_audit(archive)) if a.action == "study")
    assert row.who == "api:vera" and rows[0]["accession"] not in str(row.query)


# ---------------------------------------------------------------- labels, stats, admin


def test_labels_and_label_stats(client, archive):
    names = get(client, archive, "/labels").json()["labels"]
    assert "ejection_fraction" in names
    ef = get(client, archive, "/labels/ejection_fraction/stats").json()
    assert ef["count"] == 8 and ef["min"] <= ef["quantiles"]["p50"] <= ef["max"]
    assert sum(ef["histogram"]["counts"]) == 8
    categorical = next(n for n in names if get(client, archive, f"/labels/{n}/stats").json()["categories"])
    assert sum(get(client, archive, f"/labels/{categorical}/stats").json()["categories"].values()) == 8
    _error(get(client, archive, "/labels/no_such_label/stats"), 404)


def test_stats_hide_the_data_dir_from_non_admins(client, archive):
    viewer = get(client, archive, "/stats").json()
    assert viewer["counts"]["videos"] == 8 and viewer["data_dir"] is None
    assert get(client, archive, "/stats", "ada").json()["data_dir"] == str(archive["data"])


def test_admin_reads_failures_and_the_audit_log_naming_each_account(client, archive):
    get(client, archive, "/clips/2", "vera")
    with archive["engine"].db.session() as s:  # a failure as the indexer stores it: below its root
        s.add(Failure(path="root:1/MRN7/broken.dcm", reason="truncated", kind="ClipReadError"))
    fails = get(client, archive, "/failures", "ada").json()
    assert {"results", "total", "offset", "limit", "next_offset"} <= set(fails)
    mine = [r for r in fails["results"] if r["reason"] == "truncated"]  # the admin sees the file itself
    assert [r["path"] for r in mine] == [f"{Path(archive['archive']).resolve()}/MRN7/broken.dcm"]
    log = get(client, archive, "/audit", "ada", params={"who": "api:vera", "limit": 5}).json()
    assert log["results"] and all(r["who"] == "api:vera" for r in log["results"])
    assert log["results"][0]["action"] == "clip" and log["results"][0]["query"] == {"video_id": 2}
    _error(
        get(client, archive, "/audit", "ada", params={"since": "last week"}), 400, "bad_parameter", "since"
    )


def test_concurrent_requests_are_each_audited_as_their_own_caller(client, archive):
    before = len(_audit(archive))
    callers = ["vera", "ada", "ian"] * 8

    def call(who: str) -> int:
        return get(client, archive, "/clips/3/similar", who, params={"k": 2}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(call, callers)) == {200}
    rows = [r for r in _audit(archive)[before:] if r.action == "search_clip"]
    assert sorted(r.who for r in rows) == sorted(f"api:{c}" for c in callers)


def test_an_unexpected_error_is_a_generic_500_logged_on_the_server(archive, monkeypatch, caplog):
    c = TestClient(_app(archive))
    monkeypatch.setattr(
        archive["engine"], "stats", lambda: (_ for _ in ()).throw(RuntimeError("secret /srv/x"))
    )
    with caplog.at_level(logging.ERROR, logger="echosearch.api"):
        r = c.get(f"{V1}/stats", headers=auth(archive, "vera"))
    body = _error(r, 500, "internal")
    assert "secret" not in r.text and "RuntimeError" not in r.text and body["message"]
    assert any("secret /srv/x" in (rec.exc_text or "") for rec in caplog.records)


def test_unknown_routes_and_methods_are_json(client, archive):
    _error(get(client, archive, "/nope"), 404, "not_found")
    _error(client.delete(f"{V1}/search", headers=auth(archive, "vera")), 405)


# ---------------------------------------------------------------- jobs (indexers)


def _wait(client, archive, job_id: str) -> dict:
    for _ in range(600):
        job = get(client, archive, f"/jobs/{job_id}", "ian").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_index_and_relabel_jobs(client, archive):
    root = str(archive["archive"])
    r = client.post(f"{V1}/index", headers=auth(archive, "ian"), json={"paths": [root]})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running") and r.headers["location"] == f"{V1}/jobs/{job['id']}"
    done = _wait(client, archive, job["id"])
    assert done["state"] == "done", done
    assert done["submitted_by"] == "api:ian" and done["summary"]["unchanged"] == 8
    r = client.post(f"{V1}/relabel", headers=auth(archive, "ian"))
    done = _wait(client, archive, r.json()["id"])
    assert done["state"] == "done" and done["summary"]["clips"] == 8
    assert get(client, archive, "/search", params={"q": QUERY, "k": 2}).status_code == 200
    listed = get(client, archive, "/jobs", "ian").json()["results"]
    assert {j["kind"] for j in listed} >= {"index", "relabel"}
    row = next(a for a in _audit(archive) if a.action == "index_job" and a.who == "api:ian")
    assert root not in json.dumps(row.query) and row.query["paths"][0].startswith("<path:")  # keyed


def test_job_inputs_are_checked(client, archive):
    post = lambda body: client.post(f"{V1}/index", headers=auth(archive, "ian"), json=body)  # noqa: E731
    _error(post({"paths": ["/etc"]}), 400, "bad_parameter", "paths")
    _error(post({"paths": [str(archive["archive"] / "no-such-dir")]}), 400, "bad_parameter", "paths")
    _error(post({"paths": []}), 400, "bad_parameter", "paths")
    _error(post({"paths": [str(archive["archive"])], "delete_everything": True}), 400, "bad_parameter")
    _error(client.post(f"{V1}/index", headers=auth(archive, "ian"), content=b"{not json"), 400)
    _error(get(client, archive, "/jobs/nope", "ian"), 404)
    off = TestClient(_app(archive, index_roots=()))
    r = off.post(f"{V1}/index", headers=auth(archive, "ian"), json={"paths": [str(archive["archive"])]})
    _error(r, 403, "indexing_disabled")


# ---------------------------------------------------------------- a live server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_live_uvicorn_on_loopback(archive, caplog):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(_app(archive), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started
        base = f"http://127.0.0.1:{port}{V1}"
        with caplog.at_level(logging.INFO, logger="echosearch.api.access"), httpx.Client(timeout=60) as http:
            assert http.get(f"{base}/health").json()["status"] == "ok"
            r = http.get(f"{base}/search", params={"q": QUERY, "k": 3}, headers=auth(archive, "vera"))
            assert r.status_code == 200 and r.json()["returned"] == 3
            assert http.get(f"{base}/search", params={"q": QUERY}).status_code == 401
            study = r.json()["results"][0]["study_uid"]
            assert http.get(f"{base}/studies/{study}", headers=auth(archive, "vera")).status_code == 200
            r = http.get(f"{base}/clips/1/thumbnail", headers=auth(archive, "vera"))
            assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
        lines = [rec.getMessage() for rec in caplog.records if rec.name == "echosearch.api.access"]
        assert any(f"{V1}/studies/{{uid}} 200" in line and "api:vera" in line for line in lines), lines
        assert not any(study in line or "SEVERE" in line for line in lines)  # no identifiers, no query text
    finally:
        server.should_exit = True
        thread.join(30)
    assert not thread.is_alive()


# ---------------------------------------------------------------- several workers (serve --workers N)


@pytest.fixture()
def two_workers(ui_archive, tmp_path):
    """Two apps on their own Engines over one copy of the data dir, sharing one runtime file: what
    the two worker processes of `serve --workers 2` are (each process holds one app)."""
    data, root = tmp_path / "data", tmp_path / "incoming"
    shutil.copytree(ui_archive["data"], data)
    root.mkdir()
    with Engine.open(data) as engine:
        accounts = Accounts(engine.db)
        accounts.add_user("ian", "indexer")
        token = accounts.create_token("ian").token
    settings = {"runtime_path": tmp_path / "runtime.sqlite3", "index_roots": (root,)}
    apps = [
        create_app(
            data, settings=ApiSettings(bad_token_failures=4, rate_per_minute=600, rate_burst=6, **settings)
        )
        for _ in range(2)
    ]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        yield {"a": a, "b": b, "apps": apps, "token": token, "root": root}


def test_workers_share_the_bad_token_lockout_and_the_rate_limit(two_workers):
    a, b, token = two_workers["a"], two_workers["b"], two_workers["token"]
    good = {"Authorization": f"Bearer {token}"}
    for i in range(2):  # two bad tokens on each worker: four from this client in all
        _error(a.get(f"{V1}/me", headers={"Authorization": f"Bearer es_bad{i}"}), 401)
        _error(b.get(f"{V1}/me", headers={"Authorization": f"Bearer es_bad{i}"}), 401)
    _error(a.get(f"{V1}/me", headers=good), 429, "too_many_bad_tokens")
    _error(b.get(f"{V1}/me", headers=good), 429, "too_many_bad_tokens")
    other = [TestClient(app, client=("10.2.2.2", 4000)) for app in two_workers["apps"]]
    codes = [other[i % 2].get(f"{V1}/me", headers=good).status_code for i in range(8)]
    assert codes[:6] == [200] * 6 and codes[-1] == 429  # one bucket of 6 for the token, across both


def test_a_job_on_one_worker_is_seen_and_reloaded_by_the_other(two_workers):
    from echosearch.synth import synthesize_archive

    a, b = two_workers["a"], two_workers["b"]
    h = {"Authorization": f"Bearer {two_workers['token']}"}

    def vectors_loaded() -> int:  # the vectors of worker b's own Engine (the database counts are shared)
        return b.get(f"{V1}/stats", headers=h).json()["spaces"][0]["index"]["ntotal"]

    before = vectors_loaded()
    new = two_workers["root"] / "new"
    synthesize_archive(new, patients=1, seed=99, studies=(1, 1), clips_per_study=(2, 2), frames=(8, 10))
    job = a.post(f"{V1}/index", headers=h, json={"paths": [str(new)]}).json()
    assert b.get(f"{V1}/jobs/{job['id']}", headers=h).status_code == 200  # any worker answers for it
    for _ in range(600):
        seen = b.get(f"{V1}/jobs/{job['id']}", headers=h).json()
        if seen["state"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert seen["state"] == "done", seen
    assert [j["id"] for j in a.get(f"{V1}/jobs", headers=h).json()["results"]][0] == job["id"]
    time.sleep(1.1)  # the other worker looks at the index generation at most once a second
    b.get(f"{V1}/me", headers=h)
    assert vectors_loaded() == before + 2


def test_a_job_whose_worker_died_is_failed_not_left_running(two_workers):
    import subprocess
    import sys

    a, h = two_workers["a"], {"Authorization": f"Bearer {two_workers['token']}"}
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    doc = {"id": "0badc0ffee00", "kind": "index", "submitted_by": "api:ian", "params": {}, "state": "running",
           "submitted_at": "2026-01-01T00:00:00+00:00", "started_at": None, "finished_at": None,
           "summary": None, "error": None}  # fmt: skip
    with two_workers["apps"][1].state.api.runtime.transaction() as db:  # as the other worker wrote it
        db.execute(
            "INSERT INTO jobs VALUES (?, 1, ?, 'running', ?)", (doc["id"], json.dumps(doc), int(dead.stdout))
        )
    job = a.get(f"{V1}/jobs/{doc['id']}", headers=h).json()
    assert job["state"] == "failed" and "stopped" in job["error"]


def test_serve_with_two_workers_answers_on_loopback(archive):
    import subprocess
    import sys

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "echosearch", "serve", "--data", str(archive["data"]), "--port", str(port),
         "--workers", "2", "--no-preload"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}{V1}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
            assert proc.poll() is None, proc.stdout.read()
        with httpx.Client(timeout=60) as http:
            codes = {http.get(f"{base}/stats", headers=auth(archive, "vera")).status_code for _ in range(6)}
            assert codes == {200}
            assert http.get(f"{base}/stats").status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert "2 workers" in out and "Traceback" not in out, out[-3000:]
