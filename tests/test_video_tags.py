"""DICOM identifiers carried in a video's comment tag (some PACS exports keep them) are read."""

from __future__ import annotations

import numpy as np

from echosearch.privacy import keyed_hash
from echosearch.synth.writers import write_video
from echosearch.video import read_clip

TAGS = {
    "StudyInstanceUID": "1.2.826.0.1.99.1",
    "SeriesInstanceUID": "1.2.826.0.1.99.2",
    "SOPInstanceUID": "1.2.826.0.1.99.3",
    "StudyDate": "20240131",
    "PatientID": "MRN-42",
    "AccessionNumber": "ACC-7",
    "Manufacturer": "Synth",
}


def _frames() -> np.ndarray:
    return np.stack([np.full((48, 64, 3), 40 + 20 * i, np.uint8) for i in range(6)])


def test_video_with_tags_joins_its_study_and_patient(tmp_path):
    key = b"k" * 32
    for fmt in ("mp4", "avi"):
        path = tmp_path / f"clip.{fmt}"
        write_video(path, _frames(), 30.0, fmt, TAGS)
        meta = read_clip(path, sampling="all", site_key=key).meta
        assert meta.study_instance_uid == TAGS["StudyInstanceUID"]
        assert meta.sop_instance_uid == TAGS["SOPInstanceUID"]
        assert meta.study_date == "20240131" and meta.manufacturer == "Synth"
        assert meta.patient_key == keyed_hash("MRN-42", key)
        assert meta.accession_key == keyed_hash("ACC-7", key)
        assert "MRN-42" not in repr(meta)


def test_video_without_tags_gets_hash_derived_uids(tmp_path):
    path = tmp_path / "plain.mp4"
    write_video(path, _frames(), 30.0, "mp4")
    meta = read_clip(path, sampling="all", site_key=b"k" * 32).meta
    assert meta.study_instance_uid.startswith("2.25.")
    assert meta.patient_key is None and meta.study_date is None
