"""Accounts from the command line (`echosearch users`, `echosearch tokens`), the rules behind them
(echosearch.accounts), the migration that adds them, and the CLI's audit rows naming the OS user."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import inspect, select

from echosearch.accounts import Accounts, FailureThrottle, RateLimiter, parse_duration, verify_password
from echosearch.errors import UsageError
from echosearch.store.db import alembic_config, current_revision, head_revision, make_engine, open_db
from echosearch.store.schema import ApiToken, AuditLog, User
from echosearch.whoami import os_user

PASSWORD = "correct horse battery"


def es(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``echosearch ARGS`` in a subprocess, as an operator runs it (stdin not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "echosearch", *args],
        input=stdin or "",
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def data(tmp_path):
    """A data dir with a database (accounts need no index)."""
    open_db(tmp_path).close()
    return tmp_path


def _rows(data, model):
    db = open_db(data)
    try:
        with db.session() as s:
            return list(s.scalars(select(model).order_by(model.id)))
    finally:
        db.close()


def test_users_add_list_disable_enable_role_and_reset(data):
    d = str(data)
    done = es(
        "users", "add", "alice", "--role", "viewer", "--password-stdin", "--data", d, stdin=PASSWORD + "\n"
    )
    assert done.returncode == 0, done.stderr
    assert es("users", "add", "pacs", "--role", "indexer", "--no-password", "--data", d).returncode == 0
    listed = json.loads(es("users", "list", "--json", "--data", d).stdout)["users"]
    assert [(u["name"], u["role"], u["active"], u["has_password"]) for u in listed] == [
        ("alice", "viewer", True, True),
        ("pacs", "indexer", True, False),
    ]
    (alice,) = [u for u in _rows(data, User) if u.name == "alice"]
    assert PASSWORD not in alice.password_hash and verify_password(PASSWORD, alice.password_hash)

    assert es("users", "disable", "alice", "--data", d).returncode == 0
    accounts = Accounts(open_db(data))
    assert not accounts.login("alice", PASSWORD).ok  # a disabled account cannot log in
    assert es("users", "enable", "alice", "--data", d).returncode == 0
    assert accounts.login("alice", PASSWORD).ok
    assert json.loads(es("users", "role", "alice", "admin", "--json", "--data", d).stdout)["role"] == "admin"

    for _ in range(accounts.lock_after):
        accounts.login("alice", "wrong password")
    assert accounts.login("alice", PASSWORD).reason == "locked"
    done = es("users", "reset", "alice", "--password-stdin", "--data", d, stdin="a new long password\n")
    assert done.returncode == 0, done.stderr
    assert accounts.login("alice", "a new long password").ok  # reset lifts the lock
    accounts.db.close()


@pytest.mark.parametrize(
    ("args", "stdin", "code", "says"),
    [
        (("users", "add", "bob", "--role", "boss", "--no-password"), None, 2, "boss"),
        (("users", "add", "bob", "--role", "viewer", "--password-stdin"), "short\n", 1, "at least 8"),
        (("users", "add", "bob", "--role", "viewer"), None, 2, "--password-stdin"),
        (("users", "add", "b b", "--role", "viewer", "--no-password"), None, 1, "bad account name"),
        (("users", "disable", "nobody"), None, 1, "no account 'nobody'"),
        (("tokens", "create", "nobody"), None, 1, "no account 'nobody'"),
        (("tokens", "create", "carol", "--expires", "soon"), None, 1, "bad duration"),
        (("tokens", "revoke", "999"), None, 1, "no token 999"),
    ],
)
def test_bad_account_commands_fail_with_one_line(data, args, stdin, code, says):
    assert (
        es("users", "add", "carol", "--role", "viewer", "--no-password", "--data", str(data)).returncode == 0
    )
    done = es(*args, "--data", str(data), stdin=stdin)
    assert done.returncode == code and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_adding_an_account_twice_is_refused(data):
    assert es("users", "add", "dan", "--role", "viewer", "--no-password", "--data", str(data)).returncode == 0
    done = es("users", "add", "dan", "--role", "admin", "--no-password", "--data", str(data))
    assert done.returncode == 1 and "exists" in done.stderr


def test_account_commands_need_an_existing_data_dir(tmp_path):
    done = es("users", "list", "--data", str(tmp_path / "typo"))
    assert done.returncode == 1 and "no echosearch index" in done.stderr
    assert not (tmp_path / "typo").exists()


def test_tokens_are_shown_once_stored_hashed_expire_and_revoke(data):
    d = str(data)
    assert es("users", "add", "pacs", "--role", "viewer", "--no-password", "--data", d).returncode == 0
    done = es(
        "tokens", "create", "pacs", "--expires", "30d", "--label", "viewer plug-in", "--json", "--data", d
    )
    assert done.returncode == 0, done.stderr
    new = json.loads(done.stdout)
    token = new["token"]
    assert token.startswith("es_") and len(token) >= 43 and new["state"] == "active"
    expires = dt.datetime.fromisoformat(new["expires_at"])
    assert dt.timedelta(days=29) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    (row,) = _rows(data, ApiToken)
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (data / "echosearch.db").read_bytes().decode("latin-1")  # only the hash is stored
    plain = es("tokens", "create", "pacs", "--data", d)
    assert plain.stdout.strip().startswith("es_") and "shown only now" in plain.stderr

    listed = es("tokens", "list", "--json", "--data", d)
    docs = json.loads(listed.stdout)["tokens"]
    assert [t["user"] for t in docs] == ["pacs", "pacs"] and all("token" not in t for t in docs)
    assert token not in listed.stdout

    accounts = Accounts(open_db(data))
    assert accounts.authenticate_token(token).name == "pacs"
    done = es("tokens", "revoke", str(new["id"]), "--json", "--data", d)
    assert json.loads(done.stdout)["state"] == "revoked"
    assert accounts.authenticate_token(token) is None
    short = accounts.create_token("pacs", dt.timedelta(seconds=1))
    assert accounts.authenticate_token(short.token) is not None
    time.sleep(1.2)
    assert accounts.authenticate_token(short.token) is None
    assert accounts.tokens("pacs")[-1].state == "expired"
    accounts.set_disabled("pacs")
    never = Accounts(accounts.db)
    with pytest.raises(UsageError, match="disabled"):
        never.create_token("pacs")
    accounts.db.close()


def test_account_changes_and_cli_searches_name_the_os_user(data, ui_archive):
    assert (
        es("users", "add", "erin", "--role", "viewer", "--no-password", "--data", str(data)).returncode == 0
    )
    assert es("tokens", "create", "erin", "--data", str(data)).returncode == 0
    rows = _rows(data, AuditLog)
    assert [(r.action, r.who) for r in rows] == [
        ("users_add", f"cli:{os_user()}"),
        ("tokens_create", f"cli:{os_user()}"),
    ]
    assert (
        es(
            "search", "SEVERE DILATED LEFT VENTRICLE.", "-k", "1", "--data", str(ui_archive["data"])
        ).returncode
        == 0
    )
    last = _rows(ui_archive["data"], AuditLog)[-1]
    assert last.action == "search_text" and last.who == f"cli:{os_user()}"


def test_an_older_database_gains_the_account_tables(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'echosearch.db'}"
    engine = make_engine(url)
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    assert current_revision(engine) == "0002" and "users" not in inspect(engine).get_table_names()
    engine.dispose()
    db = open_db(tmp_path)
    assert current_revision(db.engine) == head_revision()
    assert {"users", "api_tokens"} <= set(inspect(db.engine).get_table_names())
    assert not Accounts(db).has_accounts()
    db.close()


def test_unknown_names_are_locked_like_accounts_and_logins_are_audited(data):
    accounts = Accounts(open_db(data))
    accounts.add_user("fay", "viewer", PASSWORD)
    results = [
        accounts.login("nobody", "guess", client=f"10.0.0.{i}").reason for i in range(accounts.lock_after)
    ]
    assert results[-1] == "locked" and set(results[:-1]) == {"bad_credentials"}
    assert accounts.login("fay", PASSWORD, client="10.0.0.99").ok
    rows = _rows(data, AuditLog)
    failed = [r for r in rows if r.action == "login_failed"]
    assert len(failed) == accounts.lock_after and all(r.who == "ui:?" for r in failed)
    assert "nobody" not in str([r.query for r in failed])  # a typed name that is no account: a hash only
    assert rows[-1].action == "login" and rows[-1].who == "ui:fay"
    accounts.db.close()


def test_one_client_is_locked_after_a_burst_of_failures(data):
    accounts = Accounts(open_db(data), client_failures=10)
    accounts.add_user("gil", "viewer", PASSWORD)
    reasons = [accounts.login(f"user{i}", "guess", client="10.1.1.1").reason for i in range(10)]
    assert reasons[-1] == "client_locked"
    assert accounts.login("gil", PASSWORD, client="10.1.1.1").reason == "client_locked"  # even the right one
    assert accounts.login("gil", PASSWORD, client="10.1.1.2").ok
    accounts.db.close()


def test_throttles_and_durations():
    now = [0.0]
    throttle = FailureThrottle(3, window_s=10, lockout_s=5, clock=lambda: now[0])
    assert [throttle.failed("a") for _ in range(3)] == [0, 0, 5]
    assert throttle.retry_after("a") == 5 and throttle.retry_after("b") == 0
    now[0] = 5.1
    assert throttle.retry_after("a") == 0
    throttle.failed("b")
    now[0] = 20
    assert throttle.failed("b") == 0  # the old failure left the window
    limiter = RateLimiter(60, burst=2, clock=lambda: now[0])
    assert [limiter.allow("t") for _ in range(3)][:2] == [0, 0] and limiter.allow("t") > 0
    now[0] += 1.0
    assert limiter.allow("t") == 0 and RateLimiter(0).allow("t") == 0
    assert parse_duration("30d") == dt.timedelta(days=30) and parse_duration("never") is None
    assert parse_duration("12h") == dt.timedelta(hours=12)
    with pytest.raises(UsageError):
        parse_duration("0d")


def test_whoami_falls_back_without_a_passwd_entry(monkeypatch):
    import getpass

    def no_user() -> str:
        raise KeyError("no passwd entry")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert os_user() == f"uid{os.getuid()}"
