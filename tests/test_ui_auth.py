"""The UI's password gate: only a scrypt hash is stored, and the CLI sets and clears it."""

from __future__ import annotations

import pytest

from echosearch.errors import UsageError
from echosearch.ui.auth import (
    check_login,
    clear_password,
    hash_password,
    password_hash,
    set_password,
    site_config_path,
    verify_password,
)


def test_hash_verifies_and_hides_the_password():
    stored = hash_password("correct horse battery")
    assert "correct horse" not in stored and stored.startswith("scrypt$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert hash_password("correct horse battery") != stored  # salted
    assert not verify_password("x", "not-a-hash")


def test_site_config_keeps_other_settings(tmp_path):
    site_config_path(tmp_path).write_text("site_name: cardiology\n")
    assert check_login(tmp_path, "anything")  # no password: no gate
    set_password(tmp_path, "s3cret-passphrase")
    text = site_config_path(tmp_path).read_text()
    assert "s3cret" not in text and "site_name: cardiology" in text
    assert site_config_path(tmp_path).stat().st_mode & 0o077 == 0
    assert check_login(tmp_path, "s3cret-passphrase") and not check_login(tmp_path, "wrong-passphrase")
    assert clear_password(tmp_path) and password_hash(tmp_path) is None
    with pytest.raises(UsageError, match="at least"):
        set_password(tmp_path, "short")


def test_cli_set_and_clear_password(tmp_path, cli):
    done = cli("ui", "set-password", "--data", str(tmp_path), "--password", "a-long-password")
    assert done.returncode == 0, done.stderr
    assert verify_password("a-long-password", password_hash(tmp_path))
    done = cli("ui", "clear-password", "--data", str(tmp_path))
    assert done.returncode == 0 and password_hash(tmp_path) is None
    done = cli("ui", "--data", str(tmp_path / "nothing-here"))
    assert done.returncode == 1 and "no echosearch index" in done.stderr
