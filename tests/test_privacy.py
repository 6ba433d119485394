from __future__ import annotations

import stat

import pytest

from echosearch.privacy import SiteKeyError, keyed_hash, load_or_create_site_key


def test_site_key_created_private_and_stable(tmp_path):
    key = load_or_create_site_key(tmp_path / "data")
    path = tmp_path / "data" / "secret.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_site_key(tmp_path / "data") == key
    assert load_or_create_site_key(tmp_path / "other") != key


def test_short_key_file_is_an_error(tmp_path):
    (tmp_path / "secret.key").write_bytes(b"abc")
    with pytest.raises(SiteKeyError):
        load_or_create_site_key(tmp_path)


def test_keyed_hash_is_hmac_sha256():
    import hashlib
    import hmac

    key = b"k" * 32
    assert keyed_hash("MRN123", key) == hmac.new(key, b"MRN123", hashlib.sha256).hexdigest()
    assert keyed_hash("MRN123 ", key) == keyed_hash("MRN123", key)  # DICOM space padding
    assert keyed_hash("MRN123", b"j" * 32) != keyed_hash("MRN123", key)
    assert keyed_hash("MRN124", key) != keyed_hash("MRN123", key)
    with pytest.raises(ValueError):
        keyed_hash("x", b"")
