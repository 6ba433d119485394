"""PHI at rest: the data dir is created private (0700) and the database 0600; the audit log keeps
query text bounded with identifiers replaced by keyed hashes; uploaded originals live in the data
dir only while a session uses them."""

from __future__ import annotations

import os
import time

from sqlalchemy import select

from echosearch.privacy import keyed_hash, redact_query, redact_text, site_key_for
from echosearch.search import Engine
from echosearch.store.db import open_db
from echosearch.store.schema import AuditLog

KEY = b"k" * 32


def test_a_new_data_dir_is_private_and_its_database_owner_only(tmp_path):
    data = tmp_path / "new" / "data"
    db = open_db(data)
    site_key_for(data, db)
    db.close()
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("echosearch.db", "secret.key"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name


def test_identifiers_in_query_text_become_keyed_hashes_and_clinical_words_stay():
    text = (
        "severe dilated LV mrn = 123 ef < 40 date >= 2020-01-01 DOE^JANE accession: A77 ACC0012345 LVEF 35%"
    )
    out = redact_text(text, KEY)
    for kept in ("severe dilated LV", "ef < 40", "2020-01-01", "LVEF 35%"):
        assert kept in out
    for gone in ("123", "DOE^JANE", "A77", "ACC0012345"):
        assert gone not in out.replace(keyed_hash(gone, KEY)[:12], "")
    assert f"<id:{keyed_hash('ACC0012345', KEY)[:12]}>" in out  # the same MRN, the same mark
    assert redact_query({"where": ["mrn = 99"], "k": 5}, KEY) == {
        "where": [f"mrn = <id:{keyed_hash('99', KEY)[:12]}>"],
        "k": 5,
    }


def test_a_huge_query_is_stored_bounded(ui_archive):
    with Engine.open(ui_archive["data"]) as engine:
        try:
            engine.search_text("SEVERE DILATED LEFT VENTRICLE. mrn = 55555555 " + "x" * 1_000_000, k=1)
        except Exception:  # noqa: BLE001 - only what reached the audit log matters here
            pass
    db = open_db(ui_archive["data"])
    with db.session() as s:
        row = s.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
    db.close()
    stored = str(row.query)
    assert len(stored) < 2000 and "55555555" not in stored and "more characters not kept" in stored


def test_uploads_are_removed_when_replaced_and_when_stale(tmp_path, ui_archive):
    from echosearch.ui.views import clip as view

    clip_file = next(p for p in ui_archive["archive"].rglob("*.dcm"))
    uploads = tmp_path / "uploads"
    first = view.save_upload("a.dcm", clip_file.read_bytes(), uploads)
    assert first.path.is_file() and first.path.stat().st_mode & 0o777 == 0o600
    assert uploads.stat().st_mode & 0o777 == 0o700
    view.discard_upload(first)
    assert not first.path.exists() and not first.preview.exists()

    stale = view.save_upload("a.dcm", clip_file.read_bytes(), uploads)
    old = time.time() - view.UPLOAD_TTL_S - 10
    for p in uploads.rglob("*"):
        os.utime(p, (old, old))
    assert view.purge_uploads(uploads) >= 1 and not stale.path.exists()
    bad = uploads / "bad.dcm"
    try:
        view.save_upload("bad.dcm", b"\0" * 128 + b"DICM" + b"\0" * 300, uploads)
    except Exception:  # noqa: BLE001
        pass
    assert not bad.exists() and not any(p.suffix == ".dcm" for p in uploads.rglob("*"))
