"""Where an indexed clip came from, written as the key the database stores in ``videos.path``.

A clip read from disk is keyed by its file path (as always). A clip that only passed through a
temporary spool is keyed by where it really lives, so the same instance is the same row whichever
temporary file carried it, and a rerun recognises it without fetching it again:

- retrieved over DICOMweb: the instance's WADO-RS URL with its scheme marked
  (``dicomweb+https://pacs/dicom-web/studies/S/series/SE/instances/I``), so the base URL and the
  three UIDs can be read back from it; credentials never appear in it;
- received over DICOM (C-STORE): ``dicom://CALLING_AE/studies/S/series/SE/instances/I``.

Such keys are not files: pruning and "missing file" checks leave them alone (:func:`is_remote`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from echosearch.errors import UsageError

DICOMWEB_SCHEMES = ("dicomweb+http", "dicomweb+https")
DIMSE_SCHEME = "dicom"
_REMOTE = re.compile(r"^(dicomweb\+https?|dicom)://")
#: A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1).
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_TAIL = re.compile(r"/studies/([0-9.]+)/series/([0-9.]+)/instances/([0-9.]+)$")


def is_remote(key: str) -> bool:
    """Whether a stored key names a DICOMweb or C-STORE source rather than a file."""
    return bool(_REMOTE.match(key))


def valid_uid(uid: str | None) -> bool:
    return bool(uid) and len(uid) <= 64 and bool(UID_RE.match(uid))


@dataclass(frozen=True)
class InstanceRef:
    """One DICOM instance at a remote source: its base (DICOMweb URL or sender) and its UIDs."""

    base: str  # "dicomweb+https://host/path" or "dicom://AE"
    study_uid: str
    series_uid: str
    sop_uid: str

    @property
    def key(self) -> str:
        return f"{self.base}/studies/{self.study_uid}/series/{self.series_uid}/instances/{self.sop_uid}"

    @property
    def http_base(self) -> str:
        """The DICOMweb base URL as HTTP(S) (the ``dicomweb+`` marker dropped)."""
        return self.base.removeprefix("dicomweb+")


def parse_key(key: str) -> InstanceRef | None:
    """A stored remote key back into its parts (None for a file path)."""
    if not is_remote(key):
        return None
    m = _TAIL.search(key)
    if not m:
        return None
    return InstanceRef(key[: m.start()], *m.groups())


def dicomweb_base(url: str) -> str:
    """Check a ``dicomweb+http(s)://HOST/PATH`` argument; returns it without a trailing slash.

    A URL with a user name or password in it is refused: credentials come from the environment or a
    netrc file (see :mod:`echosearch.pacs.credentials`), never from the command line or the logs."""
    parts = urlsplit(url)
    if parts.scheme not in DICOMWEB_SCHEMES or not parts.hostname:
        raise UsageError(f"not a DICOMweb URL (expected dicomweb+http(s)://HOST/PATH): {url}")
    if parts.username or parts.password:
        raise UsageError(
            "credentials do not belong in the DICOMweb URL: set ECHOSEARCH_DICOMWEB_USER and "
            "ECHOSEARCH_DICOMWEB_PASSWORD (or ECHOSEARCH_DICOMWEB_TOKEN, or a netrc file)"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"a DICOMweb base URL has no query or fragment: {url}")
    return url.rstrip("/")


def dimse_base(calling_ae: str) -> str:
    """The key base of instances received from ``calling_ae`` (kept to letters, digits, ``-_.``)."""
    return f"{DIMSE_SCHEME}://{re.sub(r'[^A-Za-z0-9_.-]', '_', calling_ae.strip()) or 'UNKNOWN'}"
