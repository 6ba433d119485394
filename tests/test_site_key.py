"""The site key: its fingerprint is recorded in the database; a missing or different key is refused
with a message on how to restore it (never silently replaced), and `echosearch key export|import`
backs it up and restores it."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import delete

from echosearch.privacy import (
    KEY_FILE,
    SiteKeyError,
    export_site_key,
    import_site_key,
    key_fingerprint,
    site_key_for,
)
from echosearch.store import queries as q
from echosearch.store.db import open_db
from echosearch.store.schema import SiteSetting


def _with_patient(data):
    db = open_db(data)
    key = site_key_for(data, db)
    with db.session() as s:
        q.get_or_create_patient(s, "hash-of-mrn")
    return db, key


def test_the_fingerprint_is_recorded_and_a_deleted_key_is_refused_not_replaced(tmp_path):
    db, key = _with_patient(tmp_path)
    (tmp_path / KEY_FILE).unlink()
    with pytest.raises(SiteKeyError, match=f"missing.*{key_fingerprint(key)}.*echosearch key import"):
        site_key_for(tmp_path, db)
    assert not (tmp_path / KEY_FILE).exists()  # nothing was created in its place
    with pytest.raises(SiteKeyError, match="missing"):
        site_key_for(tmp_path, db, create=False)  # a search refuses too: MRN lookups would find nothing
    db.close()


def test_a_different_key_is_refused(tmp_path):
    db, key = _with_patient(tmp_path)
    (tmp_path / KEY_FILE).write_bytes(os.urandom(32))
    with pytest.raises(SiteKeyError, match=f"not the key.*{key_fingerprint(key)}"):
        site_key_for(tmp_path, db)
    db.close()


def test_a_data_dir_with_hashes_but_no_fingerprint_yet_never_gets_a_new_key(tmp_path):
    db, _ = _with_patient(tmp_path)
    with db.session() as s:  # an older data dir: patients hashed, no fingerprint recorded
        s.execute(delete(SiteSetting))
    (tmp_path / KEY_FILE).unlink()
    with pytest.raises(SiteKeyError, match="the key its patients were hashed with"):
        site_key_for(tmp_path, db)
    db.close()


def test_export_then_import_restores_the_key(tmp_path, cli):
    data = tmp_path / "data"
    db, key = _with_patient(data)
    db.close()
    backup = tmp_path / "backup.key"
    done = cli("key", "export", str(backup), "--data", str(data))
    assert done.returncode == 0, done.stderr
    assert backup.read_bytes() == key and backup.stat().st_mode & 0o777 == 0o600
    assert cli("key", "export", str(backup), "--data", str(data)).returncode == 1  # never overwritten

    (data / KEY_FILE).unlink()
    done = cli("key", "import", str(backup), "--data", str(data))
    assert done.returncode == 0 and key_fingerprint(key) in done.stdout
    assert (data / KEY_FILE).read_bytes() == key and (data / KEY_FILE).stat().st_mode & 0o777 == 0o600

    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(os.urandom(32))
    done = cli("key", "import", str(wrong), "--data", str(data))
    assert done.returncode == 1 and "fingerprint" in done.stderr


def test_import_replaces_a_wrong_key_and_keeps_it_aside(tmp_path):
    db, key = _with_patient(tmp_path)
    backup = tmp_path / "b.key"
    export_site_key(tmp_path, db, backup)
    (tmp_path / KEY_FILE).write_bytes(b"w" * 32)
    assert import_site_key(tmp_path, db, backup) == key_fingerprint(key)
    assert site_key_for(tmp_path, db) == key
    assert (tmp_path / f"{KEY_FILE}.{key_fingerprint(b'w' * 32)}.replaced").read_bytes() == b"w" * 32
    db.close()


def test_an_index_run_refuses_to_start_without_its_key(tmp_path, tiny_task_bundle):
    from echosearch.indexer.runner import IndexOptions, run_index

    data, src = tmp_path / "data", tmp_path / "src"
    db, _ = _with_patient(data)
    db.close()
    (data / KEY_FILE).unlink()
    src.mkdir()
    opts = IndexOptions(
        paths=[str(src)], data_dir=str(data), model=str(tiny_task_bundle), workers=0, progress=False
    )
    with pytest.raises(SiteKeyError, match="echosearch key import"):
        run_index(opts)
    assert not (data / KEY_FILE).exists()  # the same patients never become new ones
