"""Source keys of remote clips, DICOMweb URLs and credentials, and viewer links (no server needed)."""

from __future__ import annotations

import pytest

from echosearch.errors import ConfigError, UsageError
from echosearch.pacs.credentials import Credentials, resolve_credentials
from echosearch.sources import InstanceRef, dicomweb_base, dimse_base, is_remote, parse_key
from echosearch.viewer import viewer_template, viewer_url


def test_a_remote_key_names_its_base_and_uids_and_is_not_a_file():
    ref = InstanceRef("dicomweb+https://pacs.example/dicom-web", "1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert (
        ref.key == "dicomweb+https://pacs.example/dicom-web/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5"
    )
    assert parse_key(ref.key) == ref and ref.http_base == "https://pacs.example/dicom-web"
    assert is_remote(ref.key) and is_remote("dicom://ORTHANC/studies/1/series/2/instances/3")
    assert not is_remote("/archive/dicom://x.dcm") and parse_key("/archive/a.dcm") is None
    assert dimse_base("ECHO LAB/../") == "dicom://ECHO_LAB_.._"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("dicomweb+https://user:pw@pacs/dicom-web", "credentials do not belong"),
        ("https://pacs/dicom-web", "not a DICOMweb URL"),
        ("dicomweb+https://pacs/dicom-web?x=1", "no query"),
    ],
)
def test_bad_dicomweb_urls_are_usage_errors(url, why):
    with pytest.raises(UsageError, match=why):
        dicomweb_base(url)
    assert dicomweb_base("dicomweb+http://pacs:8042/dicom-web/") == "dicomweb+http://pacs:8042/dicom-web"


def test_credentials_come_from_the_environment_then_netrc_and_never_show(tmp_path, monkeypatch):
    for var in ("ECHOSEARCH_DICOMWEB_TOKEN", "ECHOSEARCH_DICOMWEB_USER", "ECHOSEARCH_DICOMWEB_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine pacs.example login reader password n3trc-secret\n")
    netrc.chmod(0o600)
    assert resolve_credentials("pacs.example", str(netrc)) == Credentials("reader", "n3trc-secret")
    assert resolve_credentials("other.example", str(netrc)) == Credentials()
    monkeypatch.setenv("ECHOSEARCH_DICOMWEB_USER", "alice")
    monkeypatch.setenv("ECHOSEARCH_DICOMWEB_PASSWORD", "env-secret")
    creds = resolve_credentials("pacs.example", str(netrc))
    assert creds == Credentials("alice", "env-secret") and "env-secret" not in repr(creds)
    monkeypatch.setenv("ECHOSEARCH_DICOMWEB_TOKEN", "tok")
    assert resolve_credentials("pacs.example").kind == "bearer"
    with pytest.raises(UsageError, match="no such netrc file"):
        monkeypatch.delenv("ECHOSEARCH_DICOMWEB_TOKEN")
        monkeypatch.delenv("ECHOSEARCH_DICOMWEB_USER")
        resolve_credentials("pacs.example", str(tmp_path / "absent"))


def test_viewer_links_fill_the_site_template(tmp_path, monkeypatch):
    monkeypatch.delenv("ECHOSEARCH_VIEWER_URL", raising=False)
    assert viewer_template(tmp_path) is None and viewer_url(None, study_uid="1.2") is None
    (tmp_path / "site.yaml").write_text(
        "viewer:\n  url: https://pacs/ohif/viewer?StudyInstanceUIDs={study_uid}\n"
    )
    template = viewer_template(tmp_path)
    assert viewer_url(template, study_uid="1.2.3") == "https://pacs/ohif/viewer?StudyInstanceUIDs=1.2.3"
    assert viewer_url(template, study_uid=None) is None
    series = "https://pacs/v/{study_uid}/{series_uid}"
    assert viewer_url(series, study_uid="1.2") is None  # a study alone cannot fill it
    monkeypatch.setenv("ECHOSEARCH_VIEWER_URL", "https://pacs/v?{patient_id}")
    with pytest.raises(ConfigError, match="not {patient_id}"):
        viewer_template(tmp_path)


def test_index_refuses_credentials_in_the_url_with_a_usage_error(tmp_path, cli):
    r = cli("index", "dicomweb+http://u:p@127.0.0.1:1/dicom-web", "--data", str(tmp_path / "d"))
    assert r.returncode == 2 and "credentials do not belong in the DICOMweb URL" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("index", str(tmp_path / "absent"), "--data", str(tmp_path / "d"))
    assert r.returncode == 2 and "does not exist" in r.stderr
