"""What we record about a clip: :class:`ClipMeta`, plus the content hash and hash-derived UIDs.

Identifiers are pseudonymised here, at the source: ``patient_key`` and ``accession_key`` are keyed
hashes (:mod:`echosearch.privacy`) and the patient's name has no field at all, so no record built from
a :class:`ClipMeta` can leak it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from echosearch.privacy import keyed_hash


@dataclass
class ClipMeta:
    """Metadata of one clip (DICOM or video). Fields a format lacks are ``None``."""

    path: str
    format: str  # "dicom" | "video"
    sha256: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    frame_count: int
    rows: int
    columns: int
    fps: float | None = None
    study_date: str | None = None  # YYYYMMDD as in DICOM
    study_time: str | None = None
    modality: str | None = None
    sop_class_uid: str | None = None
    sop_class_name: str | None = None
    manufacturer: str | None = None
    model_name: str | None = None
    heart_rate: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None  # (row spacing, column spacing), from US regions
    transfer_syntax: str | None = None  # DICOM transfer syntax UID
    codec: str | None = None  # transfer syntax name (DICOM) or FFmpeg codec name (video)
    photometric_interpretation: str | None = None  # as stored, before conversion to RGB
    patient_key: str | None = None  # keyed hash of PatientID
    accession_key: str | None = None  # keyed hash of AccessionNumber

    def to_dict(self) -> dict:
        return asdict(self)


def uid_from_hash(sha256_hex: str, role: str) -> str:
    """A valid DICOM UID (``2.25.<int>``, the UUID-derived root) made from a content hash and a role.

    Videos have no UIDs; deriving them from the content makes them stable (the same file always
    gets the same UIDs) and distinct per role (study, series, instance).
    """
    digest = hashlib.sha256(f"{role}:{sha256_hex}".encode()).hexdigest()
    return "2.25." + str(int(digest[:32], 16))


def pseudonym(value: object, site_key: bytes | None) -> str | None:
    """Keyed hash of an identifier, or ``None`` when it is empty or no site key was given."""
    text = str(value).strip() if value is not None else ""
    if not text or not site_key:
        return None
    return keyed_hash(text, site_key)
