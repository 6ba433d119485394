"""DICOM clips through pydicom and its codec plugins.

Only the sampled frames are decoded: ``pydicom.pixels.iter_pixels(path, indices=...)`` reads the
header, then pulls just those frames (one JPEG each for an encapsulated cine). pydicom already turns
YBR_FULL / YBR_FULL_422 (JPEG baseline) and YBR_ICT / YBR_RCT (JPEG 2000) into RGB, so no colour
conversion happens here: doing it a second time is what tints echo clips green. What is left for us
is to expand PALETTE COLOR through its LUT, window and scale monochrome to 8 bits (inverting
MONOCHROME1), and bring 16-bit colour down to 8 bits.

MPEG-2 / H.264 / HEVC encapsulated DICOMs (common for long echo cines) have no pydicom decoder;
their bit stream goes to PyAV instead.

The header is read with an explicit tag list, so the patient's name is never even parsed.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder, iter_pixels
from pydicom.uid import UID

from echosearch.video.errors import (
    ClipReadError,
    CorruptFile,
    NotAnImage,
    UnsupportedTransferSyntax,
    one_line,
)
from echosearch.video.limits import Limits, codestream_size
from echosearch.video.meta import ClipMeta, pseudonym
from echosearch.video.sampling import Sampling
from echosearch.video.sector import sector_from_regions

log = logging.getLogger(__name__)

# Every tag we look at. PatientName is deliberately absent.
_KEYWORDS = [
    "SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "StudyDate", "StudyTime",
    "Modality", "Manufacturer", "ManufacturerModelName", "PatientID", "AccessionNumber", "HeartRate",
    "FrameTime", "CineRate", "RecommendedDisplayFrameRate", "SequenceOfUltrasoundRegions",
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "NumberOfFrames", "Rows",
    "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "AlphaPaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData", "AlphaPaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "SegmentedAlphaPaletteColorLookupTableData",
]  # fmt: skip
_TAGS = [tag_for_keyword(k) for k in _KEYWORDS]
_PIXEL_TAGS = [tag_for_keyword(k) for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")]

_VIDEO_SYNTAXES = {
    "1.2.840.10008.1.2.4.100",  # MPEG2 MP@ML
    "1.2.840.10008.1.2.4.101",  # MPEG2 MP@HL
    "1.2.840.10008.1.2.4.102",  # MPEG-4 AVC/H.264 HP4.1
    "1.2.840.10008.1.2.4.103",  # MPEG-4 AVC/H.264 BD-compatible
    "1.2.840.10008.1.2.4.104",  # MPEG-4 AVC/H.264 HP4.2 2D
    "1.2.840.10008.1.2.4.105",  # MPEG-4 AVC/H.264 HP4.2 3D
    "1.2.840.10008.1.2.4.106",  # MPEG-4 AVC/H.264 Stereo HP4.2
    "1.2.840.10008.1.2.4.107",  # HEVC/H.265 Main 5.1
    "1.2.840.10008.1.2.4.108",  # HEVC/H.265 Main 10 5.1
}


@dataclass
class DicomFrames:
    frames: np.ndarray  # uint8 [F,H,W,3]
    indices: np.ndarray
    meta: ClipMeta
    region_mask: np.ndarray | None


def read_header(path: Path) -> pydicom.Dataset:
    """The tags we use (no pixel data, no patient name), or a typed error."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS + _PIXEL_TAGS)
    except InvalidDicomError:
        raise NotAnImage(f"{path.name}: not a DICOM file (no DICM header)") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, IndexError, OverflowError) as e:
        raise CorruptFile(f"{path.name}: damaged DICOM header ({one_line(e)})") from None
    if "SOPClassUID" not in ds and "Rows" not in ds:
        raise CorruptFile(f"{path.name}: the DICOM header ends early (truncated file?)")
    if "Rows" not in ds or "Columns" not in ds:
        what = getattr(ds.get("SOPClassUID"), "name", None) or "this DICOM"
        raise NotAnImage(f"{path.name}: {what} has no pixel data")
    return ds


def _check_decodable(path: Path, tsyntax: UID) -> None:
    """Raise :class:`UnsupportedTransferSyntax`, naming what to install, if no plugin can decode."""
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise UnsupportedTransferSyntax(
            f"{path.name}: no decoder exists for transfer syntax {tsyntax.name} ({tsyntax})"
        ) from None
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise UnsupportedTransferSyntax(f"{path.name}: {tsyntax.name} needs a plugin: {needs}")


def _scale_to_uint8(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if bits > 8:
        return (arr.astype(np.uint32) >> (bits - 8)).clip(0, 255).astype(np.uint8)
    return arr.clip(0, 255).astype(np.uint8)


def _mono_to_uint8(arr: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Modality LUT, VOI LUT/window, then stretch to 0..255; MONOCHROME1 is inverted."""
    windowed = "WindowCenter" in ds or "VOILUTSequence" in ds
    if arr.dtype == np.uint8 and not windowed and "ModalityLUTSequence" not in ds:
        out = arr
    else:
        values = apply_modality_lut(arr, ds)
        if windowed:
            values = apply_voi_lut(values, ds)
        values = values.astype(np.float32)
        lo, hi = float(values.min()), float(values.max())
        out = ((values - lo) * (255.0 / (hi - lo or 1.0))).round().clip(0, 255).astype(np.uint8)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 255 - out
    return out


def _palette_to_uint8(arr: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    rgb = apply_color_lut(arr, ds)[..., :3]
    if rgb.dtype == np.uint8:
        return rgb
    # 16-bit LUT entries; a few vendors declare 16 bits but store 8-bit values.
    return _scale_to_uint8(rgb, 16 if rgb.max() > 255 else 8)


def to_rgb8(frames: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Decoded frames ``[F,H,W]`` or ``[F,H,W,3]`` -> uint8 RGB ``[F,H,W,3]``."""
    pi = str(ds.PhotometricInterpretation).strip()
    if pi == "PALETTE COLOR":
        return _palette_to_uint8(frames, ds)
    if frames.ndim == 3:  # one sample per pixel
        grey = _mono_to_uint8(frames, ds)
        return np.repeat(grey[..., None], 3, axis=-1)
    return _scale_to_uint8(frames[..., :3], int(ds.get("BitsStored", 8)))


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _fps(ds: pydicom.Dataset) -> float | None:
    frame_time = _float(ds.get("FrameTime"))
    if frame_time and frame_time > 0:
        return 1000.0 / frame_time
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = _float(ds.get(keyword))
        if rate and rate > 0:
            return rate
    return None


def _pixel_spacing_mm(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """Physical spacing of the first 2D region, in mm (regions store cm when units == 3)."""
    for region in ds.get("SequenceOfUltrasoundRegions", []):
        try:
            if int(region.get("RegionSpatialFormat", 0) or 0) != 1:
                continue
        except (TypeError, ValueError, OverflowError):  # an odd value: not a region we can use
            continue
        dx, dy = _float(region.get("PhysicalDeltaX")), _float(region.get("PhysicalDeltaY"))
        if (
            dx
            and dy
            and region.get("PhysicalUnitsXDirection") == 3
            and region.get("PhysicalUnitsYDirection") == 3
        ):
            return (abs(dy) * 10.0, abs(dx) * 10.0)
    return None


def _text(value) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def build_meta(path: Path, ds: pydicom.Dataset, sha: str, site_key: bytes | None) -> ClipMeta:
    tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    sop_class = ds.get("SOPClassUID")
    return ClipMeta(
        path=str(path),
        format="dicom",
        sha256=sha,
        sop_instance_uid=_text(ds.get("SOPInstanceUID")) or "",
        series_instance_uid=_text(ds.get("SeriesInstanceUID")) or "",
        study_instance_uid=_text(ds.get("StudyInstanceUID")) or "",
        frame_count=int(ds.get("NumberOfFrames") or 1),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        fps=_fps(ds),
        study_date=_text(ds.get("StudyDate")),
        study_time=_text(ds.get("StudyTime")),
        modality=_text(ds.get("Modality")),
        sop_class_uid=_text(sop_class),
        sop_class_name=getattr(sop_class, "name", None),
        manufacturer=_text(ds.get("Manufacturer")),
        model_name=_text(ds.get("ManufacturerModelName")),
        heart_rate=_float(ds.get("HeartRate")) or None,
        pixel_spacing_mm=_pixel_spacing_mm(ds),
        transfer_syntax=_text(tsyntax),
        codec=getattr(tsyntax, "name", None),
        photometric_interpretation=_text(ds.get("PhotometricInterpretation")),
        patient_key=pseudonym(ds.get("PatientID"), site_key),
        accession_key=pseudonym(ds.get("AccessionNumber"), site_key),
    )


def _decode_native_or_plugin(path: Path, indices: np.ndarray, tsyntax: UID) -> np.ndarray:
    try:
        if tsyntax.is_deflated:  # iter_pixels reads the file itself and cannot inflate it
            ds = pydicom.dcmread(path)
            frames = [arr for arr, _ in get_decoder(tsyntax).iter_array(ds, indices=indices.tolist())]
        else:
            frames = list(iter_pixels(path, indices=indices.tolist()))
    except AttributeError as e:  # pydicom: "has no 'Pixel Data' ... element"
        raise NotAnImage(f"{path.name}: no pixel data ({one_line(e)})") from None
    except MemoryError:
        raise
    except Exception as e:  # the codecs raise many types for a damaged stream
        raise CorruptFile(f"{path.name}: pixel data cannot be decoded ({one_line(e)})") from None
    return np.stack(frames)


def _decode_video_syntax(path: Path, indices: np.ndarray, limits: Limits) -> np.ndarray:
    """MPEG-2/H.264/HEVC in DICOM: join the fragments and let FFmpeg (PyAV) decode the stream."""
    from pydicom.encaps import generate_fragments

    from echosearch.video.container import decode_stream

    ds = pydicom.dcmread(path, specific_tags=_PIXEL_TAGS)
    if "PixelData" not in ds:
        raise NotAnImage(f"{path.name}: no pixel data")
    stream = b"".join(generate_fragments(ds.PixelData))
    frames, _, _ = decode_stream(io.BytesIO(stream), path.name, indices=indices, limits=limits)
    return frames


def _check_codestreams(path: Path, n_frames: int, limits: Limits) -> None:
    """Each compressed frame's own header against the caps (it may claim more than Rows x Columns)."""
    from pydicom.encaps import generate_fragments

    ds = pydicom.dcmread(path, specific_tags=_PIXEL_TAGS)
    if "PixelData" not in ds:
        return  # read_pixels says "no pixel data"
    for fragment in generate_fragments(ds.PixelData):
        size = codestream_size(fragment[:65536])
        if size is not None:
            limits.check(path.name, size[0], size[1], n_frames, source="compressed frame header")


def read_dicom(
    path: Path, sampling: Sampling, sha: str, site_key: bytes | None, limits: Limits | None = None
) -> DicomFrames:
    """Decode the sampled frames of a DICOM clip as uint8 RGB, with its metadata.

    What the headers promise is checked against ``limits`` (default: :meth:`Limits.from_env`)
    before anything is decoded.
    """
    limits = limits or Limits.from_env()
    ds = read_header(path)
    try:
        meta = build_meta(path, ds, sha, site_key)
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as e:  # odd header values
        raise CorruptFile(f"{path.name}: unusable DICOM header value ({one_line(e)})") from None
    if meta.frame_count < 1 or meta.rows < 1 or meta.columns < 1:
        raise CorruptFile(
            f"{path.name}: header claims {meta.frame_count} frames of {meta.columns}x{meta.rows} pixels"
        )
    limits.check(path.name, meta.rows, meta.columns, sampling.n_decoded(meta.frame_count))
    indices = sampling.indices(meta.frame_count)
    tsyntax = UID(meta.transfer_syntax or "1.2.840.10008.1.2")
    if tsyntax not in _VIDEO_SYNTAXES:
        _check_decodable(path, tsyntax)
    if tsyntax.is_encapsulated:
        _check_codestreams(path, len(indices), limits)
    if tsyntax in _VIDEO_SYNTAXES:
        frames = _decode_video_syntax(path, indices, limits)
        indices = indices[: len(frames)]
    else:
        raw = _decode_native_or_plugin(path, indices, tsyntax)
        try:
            frames = to_rgb8(raw, ds)
        except (ValueError, KeyError, AttributeError, IndexError) as e:
            raise CorruptFile(
                f"{path.name}: cannot convert {meta.photometric_interpretation} to RGB: {one_line(e)}"
            ) from None
    if frames.shape[1:3] != (meta.rows, meta.columns):
        raise ClipReadError(f"{path.name}: decoded frames {frames.shape[1:3]} do not match Rows x Columns")
    try:
        regions = ds.get("SequenceOfUltrasoundRegions", [])
        region_mask = sector_from_regions(regions, meta.rows, meta.columns)
    except (ValueError, TypeError, AttributeError, KeyError, OverflowError):  # an odd region: estimate
        region_mask = None
    return DicomFrames(np.ascontiguousarray(frames), indices, meta, region_mask)
