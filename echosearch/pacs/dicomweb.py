"""A DICOMweb server as a source: QIDO-RS lists the echo instances, WADO-RS retrieves one to a file.

Everything goes through dicomweb-client on a ``requests`` session that has what a hospital network
needs and the library leaves to its caller: a timeout on every request (a PACS that stops answering
must not hang the indexer forever), retries with exponential back-off on refused connections and on
429/502/503/504, and the credentials of :mod:`echosearch.pacs.credentials`.

Errors are sorted into the two kinds the indexer treats differently: :class:`SourceError` (the
server is unreachable or refuses us: the run stops with one clear line, nothing is recorded against
the clips, a rerun carries on) and :class:`InstanceError` (this one instance cannot be retrieved:
recorded like a bad file, the run goes on).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from echosearch.errors import EchosearchError
from echosearch.pacs.credentials import Credentials
from echosearch.sources import InstanceRef, valid_uid

log = logging.getLogger(__name__)

#: Ultrasound storage SOP classes (PS3.4 B.5): multi-frame, single-frame, enhanced volume, retired.
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_STORAGE_CLASSES = (
    US_MULTIFRAME,
    US_IMAGE,
    "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.3",  # US Multi-frame (retired)
    "1.2.840.10008.5.1.4.1.1.6",  # US Image (retired)
)
TIMEOUT = (10.0, 120.0)  # seconds: connect, read (one read of a chunk, not the whole instance)
RETRIES = 4


class SourceError(EchosearchError):
    """The DICOMweb server cannot be used now (unreachable, refusing our credentials)."""


class InstanceError(Exception):
    """One instance could not be retrieved; ``kind`` names the reason for the failure record."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def make_session(credentials: Credentials, timeout=TIMEOUT, retries: int = RETRIES):
    """A ``requests`` session with a default timeout, retries with back-off, and the credentials."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class TimeoutAdapter(HTTPAdapter):
        def send(self, request, **kwargs):  # noqa: ANN001
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().send(request, **kwargs)

    retry = Retry(
        total=retries,
        connect=retries,
        read=1,
        status=retries,
        backoff_factor=0.5,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )
    session = requests.Session()
    session.trust_env = False  # no ~/.netrc behind our back: credentials are resolved explicitly
    adapter = TimeoutAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if credentials.token:
        session.headers["Authorization"] = f"Bearer {credentials.token}"
    elif credentials.user:
        session.auth = (credentials.user, credentials.password or "")
    return session


def make_client(http_base: str, credentials: Credentials, timeout=TIMEOUT, retries: int = RETRIES):
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(http_base, session=make_session(credentials, timeout, retries))
    client.set_http_retry_params(retry=False)  # the session retries (connections too, with back-off)
    return client


def classify(exc: BaseException, where: str) -> Exception:
    """A requests/dicomweb-client exception as :class:`SourceError` or :class:`InstanceError`."""
    import requests

    host = urlsplit(where).netloc or where
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code in (401, 403):
            return SourceError(
                f"the DICOMweb server at {host} refused the credentials (HTTP {code}); check "
                "ECHOSEARCH_DICOMWEB_USER/ECHOSEARCH_DICOMWEB_PASSWORD (or _TOKEN, or the netrc file)"
            )
        if code in (429, 502, 503, 504):
            return SourceError(f"the DICOMweb server at {host} is unavailable (HTTP {code}); rerun later")
        return InstanceError("RetrieveError", f"HTTP {code} from the DICOMweb server")
    if isinstance(exc, requests.exceptions.RetryError):
        return SourceError(f"the DICOMweb server at {host} is unavailable (retries exhausted); rerun later")
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return SourceError(
            f"the DICOMweb server at {host} is not answering ({type(exc).__name__}); rerun to continue"
        )
    return InstanceError("RetrieveError", f"{type(exc).__name__}: {exc}".splitlines()[0][:300])


def _first(item: dict, tag: str) -> str | None:
    value = (item.get(tag) or {}).get("Value") or [None]
    v = value[0]
    return None if v is None else str(v)


@dataclass(frozen=True)
class Listing:
    """What QIDO-RS found: the echo instances to consider, and how many were passed over (why)."""

    instances: list[InstanceRef]
    skipped: dict[str, int]


def list_instances(
    client,
    base: str,
    *,
    since: dt.date | None = None,
    studies: Sequence[str] = (),
    modality: str | None = None,
    stills: bool = False,
) -> Listing:
    """QIDO-RS: studies (by date, UID, modality) -> series -> the ultrasound instances in them.

    Single-frame stills (``NumberOfFrames`` absent or 1) are passed over unless ``stills``."""
    skipped: dict[str, int] = {}
    found: list[InstanceRef] = []
    for study in _studies(client, since, studies, modality):
        filters = {"Modality": modality} if modality else None
        for series in _call(client.search_for_series, base, study_instance_uid=study, search_filters=filters):
            series_uid = _first(series, "0020000E")
            if not valid_uid(series_uid):
                skipped["BadUID"] = skipped.get("BadUID", 0) + 1
                continue
            for inst in _call(
                client.search_for_instances,
                base,
                study_instance_uid=study,
                series_instance_uid=series_uid,
                fields=["00280008"],
            ):
                why = _pass_over(inst, stills)
                if why:
                    skipped[why] = skipped.get(why, 0) + 1
                    continue
                found.append(InstanceRef(base, study, series_uid, _first(inst, "00080018")))
    return Listing(found, skipped)


def _pass_over(inst: dict, stills: bool) -> str | None:
    if not valid_uid(_first(inst, "00080018")):
        return "BadUID"
    if _first(inst, "00080016") not in US_STORAGE_CLASSES:
        return "NotUltrasound"
    frames = _first(inst, "00280008")
    if not stills and (frames is None or int(float(frames)) <= 1):
        return "Still"
    return None


def _studies(client, since, studies: Sequence[str], modality: str | None) -> Iterator[str]:
    base = client.base_url
    filters: dict[str, str] = {}
    if since is not None:
        filters["StudyDate"] = since.strftime("%Y%m%d") + "-"
    if modality:
        filters["ModalitiesInStudy"] = modality
    wanted = list(studies) or [None]
    for uid in wanted:
        f = dict(filters, StudyInstanceUID=uid) if uid else filters
        for item in _call(client.search_for_studies, base, search_filters=f or None):
            study = _first(item, "0020000D")
            if valid_uid(study):
                yield study


def _call(method, where: str, **kwargs) -> list[dict]:
    """One QIDO-RS query (all pages); any failure is a :class:`SourceError` (a listing that fails
    half-way cannot be trusted to say what is new)."""
    try:
        return method(get_remaining=True, **kwargs) or []
    except Exception as exc:
        err = classify(exc, where)
        if isinstance(err, SourceError):
            raise err from None
        raise SourceError(f"the DICOMweb search at {urlsplit(where).netloc} failed: {err}") from None


def retrieve_to(client, ref: InstanceRef, path: Path, max_bytes: int) -> int:
    """WADO-RS one instance in its stored transfer syntax, written atomically to ``path``; its size.

    Raises :class:`SourceError` or :class:`InstanceError` (see :func:`classify`)."""
    from pydicom import dcmwrite

    try:
        ds = client.retrieve_instance(ref.study_uid, ref.series_uid, ref.sop_uid)
    except Exception as exc:
        raise classify(exc, ref.http_base) from None
    if getattr(ds, "SOPInstanceUID", None) != ref.sop_uid:
        raise InstanceError("RetrieveError", "the server returned another instance than the one asked for")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        try:
            dcmwrite(tmp, ds, enforce_file_format=True)
        except Exception as exc:  # a dataset the server returned but pydicom cannot write back
            raise InstanceError(
                "RetrieveError", f"cannot write the instance: {exc}".splitlines()[0]
            ) from None
        size = tmp.stat().st_size
        if size > max_bytes:
            raise InstanceError("TooLarge", f"{size} bytes, more than the spool allows ({max_bytes})")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return size
