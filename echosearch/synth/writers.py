"""Write synthetic clips the way scanners and PACS exports do: DICOM cines (three transfer
syntaxes), AVI and MP4. Output bytes depend only on the inputs (no timestamps, no random UIDs), so an
archive is reproducible for a seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from echosearch.synth.render import CM_PER_PIXEL, sector_bounds

US_MULTIFRAME = UID("1.2.840.10008.5.1.4.1.1.3.1")
DICOM_FORMATS = ("dicom-explicit", "dicom-rle", "dicom-j2k")
VIDEO_FORMATS = ("avi", "mp4")
FORMATS = DICOM_FORMATS + VIDEO_FORMATS
EXTENSIONS = {
    "dicom-explicit": ".dcm",
    "dicom-rle": ".dcm",
    "dicom-j2k": ".dcm",
    "avi": ".avi",
    "mp4": ".mp4",
}


def derived_uid(*parts: object) -> str:
    """A valid, reproducible UID (2.25.<128-bit hash>) derived from the archive seed and the object's identity.

    (pydicom's ``generate_uid(prefix=None)`` ignores its entropy sources and is random.)
    """
    digest = hashlib.sha256(":".join(["echosearch-synth", *map(str, parts)]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


@dataclass(frozen=True)
class DicomHeader:
    """Everything of a clip's DICOM header that is not pixels."""

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    accession: str
    study_uid: str
    study_date: str
    study_time: str
    series_uid: str
    sop_uid: str
    series_number: int
    instance_number: int
    view: str
    heart_rate: int
    manufacturer: str
    model: str


def write_dicom(path: Path, frames: np.ndarray, fps: float, hdr: DicomHeader, fmt: str) -> None:
    """An Ultrasound Multi-frame Image in MONOCHROME2 (overlays keep their brightness).

    Grey scale keeps files small and encoding fast (RGB JPEG 2000 took ~3 s a clip here); colour is
    exercised by the AVI/MP4 clips (green ECG, yellow labels) and pydicom's own test files.
    """
    rgb = False
    pixels = frames.max(axis=3)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME
    ds.file_meta.MediaStorageSOPInstanceUID = hdr.sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIAC"]
    ds.SOPClassUID = US_MULTIFRAME
    ds.SOPInstanceUID = hdr.sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = hdr.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = hdr.study_time
    ds.AccessionNumber = hdr.accession
    ds.Modality = "US"
    ds.Manufacturer = hdr.manufacturer
    ds.ManufacturerModelName = hdr.model
    ds.InstitutionName = "SYNTHETIC HOSPITAL"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "TTE ECHO COMPLETE"
    ds.SeriesDescription = hdr.view
    ds.PatientName = hdr.patient_name
    ds.PatientID = hdr.patient_id
    ds.PatientBirthDate = hdr.birth_date
    ds.PatientSex = hdr.sex
    ds.StudyInstanceUID = hdr.study_uid
    ds.SeriesInstanceUID = hdr.series_uid
    ds.StudyID = hdr.accession[-6:]
    ds.SeriesNumber = hdr.series_number
    ds.InstanceNumber = hdr.instance_number
    ds.HeartRate = hdr.heart_rate
    ds.FrameTime = f"{1000.0 / fps:.10f}"[:16]
    ds.CineRate = round(fps)
    ds.RecommendedDisplayFrameRate = round(fps)
    ds.FrameIncrementPointer = (0x0018, 0x1063)
    ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[1], pixels.shape[2]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"
    ds.SequenceOfUltrasoundRegions = Sequence([_region()])
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if fmt == "dicom-rle":
        ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    elif fmt == "dicom-j2k":
        ds.compress(
            JPEG2000Lossless,
            np.ascontiguousarray(pixels),
            encoding_plugin="pylibjpeg",
            generate_instance_uid=False,
        )
    ds.save_as(path, enforce_file_format=True)


def _region() -> Dataset:
    """The scan sector as a 2D tissue region with its physical pixel size (cm)."""
    x0, y0, x1, y1 = sector_bounds()
    r = Dataset()
    r.RegionSpatialFormat = 1  # 2D
    r.RegionDataType = 1  # tissue
    r.RegionFlags = 0
    r.RegionLocationMinX0, r.RegionLocationMinY0 = x0, y0
    r.RegionLocationMaxX1, r.RegionLocationMaxY1 = x1, y1
    r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = 3  # cm
    r.PhysicalDeltaX = r.PhysicalDeltaY = round(CM_PER_PIXEL, 6)
    r.ReferencePixelX0, r.ReferencePixelY0 = 200, 20
    return r


def write_video(
    path: Path, frames: np.ndarray, fps: float, fmt: str, tags: dict[str, str] | None = None
) -> None:
    """AVI (MJPEG) or MP4 (H.264), single-threaded so the bytes are reproducible.

    ``tags`` (DICOM keyword -> value) go into the container's comment as ``Keyword=value;...``, the
    way some PACS exports keep a video's study and patient (the reader picks them up).
    """
    import av

    codec = {"avi": "mjpeg", "mp4": "libx264"}[fmt]
    with av.open(str(path), mode="w", format="avi" if fmt == "avi" else "mp4") as container:
        if tags:
            container.metadata["comment"] = ";".join(f"{k}={v}" for k, v in tags.items())
        stream = container.add_stream(codec, rate=round(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.thread_count = 1
        if fmt == "mp4":
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        else:
            stream.pix_fmt = "yuvj420p"
            stream.options = {"q:v": "3"}
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
