"""The DICOM receiver of ``echosearch listen``: a C-STORE SCP (and C-ECHO) for the ultrasound storage
classes, writing each instance to the spool before it says "stored".

The acknowledgement is the promise: once the sender hears success it may delete its copy, so the
instance is written to a temporary name, fsynced, renamed into place and the folder fsynced
*before* the handler returns 0x0000. A crash before that leaves only a ``.part`` file (removed on
start; the sender saw no success and sends again); a crash after it leaves a complete file that the
indexing loop (:mod:`echosearch.indexer.spool`) indexes on the next start.

Spool layout: ``SPOOL/<calling AE>/<study UID>/<series UID>/<SOP UID>.dcm`` — the names are the
instance's source key (:mod:`echosearch.sources`), so indexing needs no second look at the headers.
UIDs are checked to be UIDs before they become file names.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from echosearch.pacs.dicomweb import US_STORAGE_CLASSES
from echosearch.sources import dimse_base, valid_uid

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
#: Encapsulated video the reader decodes with PyAV (see echosearch.video.dicom).
VIDEO_SYNTAXES = tuple(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109))


def decodable_syntaxes() -> list[str]:
    """Transfer syntaxes we accept: those pydicom can decode here (its codec plugins installed), and
    the video syntaxes the reader decodes itself; never one we would store and then fail to read."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import AllTransferSyntaxes

    out = []
    for uid in AllTransferSyntaxes:
        try:
            if get_decoder(uid).is_available:
                out.append(str(uid))
        except NotImplementedError:
            pass
    return out + [u for u in VIDEO_SYNTAXES if u not in out]


def spool_path(spool: Path, calling_ae: str, study: str, series: str, sop: str) -> Path:
    return spool / dimse_base(calling_ae).split("://", 1)[1] / study / series / f"{sop}.dcm"


def clean_partial(spool: Path) -> int:
    """Remove ``.part`` files a crash left (never acknowledged); how many."""
    gone = 0
    for p in spool.rglob("*.part") if spool.is_dir() else []:
        p.unlink(missing_ok=True)
        gone += 1
    return gone


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, tmp: Path, data: bytes, attempts: int = 3) -> None:
    """Write, fsync, rename, fsync the folder. The indexing loop removes emptied folders, so one may
    vanish between ``mkdir`` and ``open``: that is retried."""
    for attempt in range(attempts):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
            return
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise


def store_handler(spool: Path):
    """The EVT_C_STORE handler: write atomically to the spool, then acknowledge (module doc)."""

    def handle(event) -> int:  # noqa: ANN001
        ds = event.dataset
        uids = [
            str(getattr(ds, k, "") or "") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        ]
        if not all(valid_uid(u) for u in uids):
            log.warning("refused an instance without valid Study/Series/SOP Instance UIDs")
            return CANNOT_UNDERSTAND
        calling = event.assoc.requestor.ae_title
        path = spool_path(spool, calling, *uids)
        tmp = path.with_name(path.name + ".part")
        try:
            _write_durably(path, tmp, event.encoded_dataset())
        except OSError as exc:
            log.error("cannot spool a received instance: %s", exc)
            tmp.unlink(missing_ok=True)
            return OUT_OF_RESOURCES
        log.info("received %s from %s", uids[2], calling)
        return SUCCESS

    return handle


def make_ae(ae_title: str, allow: Sequence[str] = ()):
    """A pynetdicom AE accepting C-ECHO and ultrasound C-STOREs addressed to ``ae_title`` from the
    ``allow``-listed calling AE titles (any, when the list is empty)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=ae_title)
    syntaxes = decodable_syntaxes()
    for sop_class in US_STORAGE_CLASSES:
        ae.add_supported_context(sop_class, syntaxes)
    ae.add_supported_context(Verification)
    ae.require_called_aet = True
    if allow:
        ae.require_calling_aet = list(allow)
    return ae


def start_server(spool: Path, ae_title: str, port: int, allow: Sequence[str] = (), host: str = ""):
    """Start the SCP in its own threads; returns the server (``shutdown()`` stops it)."""
    from pynetdicom import evt

    spool.mkdir(parents=True, exist_ok=True)
    ae = make_ae(ae_title, allow)
    handlers = [(evt.EVT_C_STORE, store_handler(spool)), (evt.EVT_C_ECHO, lambda _event: SUCCESS)]
    return ae.start_server((host, port), block=False, evt_handlers=handlers)
