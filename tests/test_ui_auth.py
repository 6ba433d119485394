"""The UI's side of the accounts: only scrypt hashes are stored, uploads are refused before login, the
old shared password is gone (and an archive that had one stays closed), and a UI without accounts is
never offered to the network."""

from __future__ import annotations

import pytest

from echosearch.accounts import Accounts, hash_password, verify_password
from echosearch.store.db import open_db
from echosearch.ui import auth


def test_hash_verifies_and_hides_the_password():
    stored = hash_password("correct horse battery")
    assert "correct horse" not in stored and stored.startswith("scrypt$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert hash_password("correct horse battery") != stored  # salted
    assert not verify_password("x", "not-a-hash") and not verify_password("x", None)
    assert not verify_password("x" * 100_000, stored)  # a huge "password" costs nothing


def test_clearing_the_old_password_keeps_other_settings(tmp_path):
    auth.site_config_path(tmp_path).write_text(
        f"site_name: cardiology\nui:\n  password_hash: '{hash_password('x' * 8)}'\n"
    )
    assert auth.password_hash(tmp_path)
    assert auth.clear_password(tmp_path) and auth.password_hash(tmp_path) is None
    assert "site_name: cardiology" in auth.site_config_path(tmp_path).read_text()
    assert auth.site_config_path(tmp_path).stat().st_mode & 0o077 == 0
    assert not auth.clear_password(tmp_path)


class FakeUploads:
    def __init__(self):
        self.files = {}

    def add_file(self, session_id, file):
        self.files[session_id] = file


def test_uploads_from_sessions_that_have_not_logged_in_are_refused():
    from starlette.exceptions import HTTPException

    manager = FakeUploads()
    assert auth.guard_uploads(manager) and auth.guard_uploads(manager)  # idempotent
    with pytest.raises(HTTPException) as refused:
        manager.add_file("stranger", b"x" * 1000)
    assert refused.value.status_code == 403 and manager.files == {}
    auth.mark_authed("session-1")
    try:
        manager.add_file("session-1", b"clip")
        assert manager.files == {"session-1": b"clip"}
    finally:
        auth.forget("session-1")
    with pytest.raises(HTTPException):
        manager.add_file("session-1", b"clip")  # logged out
    assert not auth.guard_uploads(object())


def test_set_password_is_gone_and_points_to_users_add(tmp_path, cli):
    done = cli("ui", "set-password", "--data", str(tmp_path), "--password", "a-long-password")
    assert done.returncode == 2 and "users add" in done.stderr


def test_a_ui_without_accounts_is_refused_on_a_network_address(tmp_path, cli):
    open_db(tmp_path).close()
    done = cli("ui", "--data", str(tmp_path), "--host", "0.0.0.0")
    assert done.returncode == 1 and "no accounts" in done.stderr and "users add" in done.stderr
    auth.site_config_path(tmp_path).write_text(f"ui:\n  password_hash: '{hash_password('x' * 8)}'\n")
    done = cli("ui", "--data", str(tmp_path))  # it had a gate: not even on this machine
    assert done.returncode == 1 and "no longer has a shared password" in done.stderr
    db = open_db(tmp_path)
    Accounts(db).add_user("alice", "viewer", "correct horse battery")
    db.close()
    done = cli("ui", "clear-password", "--data", str(tmp_path))
    assert done.returncode == 0 and auth.password_hash(tmp_path) is None
    done = cli("ui", "--data", str(tmp_path / "nothing-here"))
    assert done.returncode == 1 and "no echosearch index" in done.stderr
