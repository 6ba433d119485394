"""DICOM reading: every ultrasound file in pydicom's test data, and every layout written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    RLELossless,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from echosearch.video import read_clip


def _us_test_files() -> list[str]:
    files = []
    for f in sorted(pydicom.data.get_testdata_files()):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # pydicom's corpus includes deliberately broken files
            continue
        if ds.get("Modality") == "US":
            files.append(f)
    return files


US_FILES = _us_test_files()


def test_corpus_has_the_ultrasound_files():
    names = {Path(f).name for f in US_FILES}
    assert len(US_FILES) >= 20
    assert "color3d_jpeg_baseline.dcm" in names


@pytest.mark.parametrize("path", US_FILES, ids=[Path(f).name for f in US_FILES])
def test_every_pydicom_ultrasound_file_reads(path):
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    clip = read_clip(path, sampling="uniform:4", mask_sector=False)
    n = int(ds.get("NumberOfFrames") or 1)
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (min(n, 4), ds.Rows, ds.Columns, 3)
    assert clip.meta.frame_count == n
    assert clip.meta.modality == "US"
    assert clip.meta.sop_instance_uid == ds.SOPInstanceUID
    assert clip.frames.max() > 50, "frames are (nearly) black: decoding or scaling went wrong"
    # Reference: pydicom's own decoding of the first sampled frame, with any palette applied.
    ref = pydicom.pixels.pixel_array(path, index=int(clip.frame_indices[0]))
    if ds.PhotometricInterpretation == "PALETTE COLOR" and not ds.original_encoding[1]:
        return  # big-endian palettes: compared with their little-endian twins below
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        ref = pydicom.pixels.apply_color_lut(ref, ds)
        if ref.dtype != np.uint8:
            ref = (ref >> 8).astype(np.uint8)
    elif ref.ndim == 2:
        ref = np.repeat(ref[..., None], 3, axis=-1)
    # monochrome may be rescaled/stretched; colour must match pydicom exactly (no second conversion)
    if ds.PhotometricInterpretation.startswith("MONO"):
        corr = np.corrcoef(ref[..., 0].ravel().astype(float), clip.frames[0, ..., 0].ravel().astype(float))[
            0, 1
        ]
        assert corr > 0.99
    else:
        assert np.abs(clip.frames[0].astype(int) - ref.astype(int)).mean() < 1.0


def _channel_means(frames: np.ndarray) -> np.ndarray:
    return frames.reshape(-1, 3).astype(float).mean(axis=0)


@pytest.mark.parametrize("name", ["color3d_jpeg_baseline.dcm", "examples_ybr_color.dcm"])
def test_jpeg_ybr_cine_is_grey_not_green(name):
    """Grey-scale echo tissue: R, G, B nearly equal. Converting YBR twice turns it green."""
    clip = read_clip(pydicom.data.get_testdata_file(name), sampling="uniform:8")
    tissue = clip.frames[clip.frames.max(axis=-1) > 40].astype(int)  # bright pixels inside the sector
    assert len(tissue) > 1000
    r, g, b = tissue.mean(axis=0)
    # (a second YBR->RGB conversion gives G ~ 130 with R, B ~ 15: a cast of 100, not of a few levels)
    assert abs(g - r) < 8 and abs(g - b) < 8, f"colour cast: R={r:.1f} G={g:.1f} B={b:.1f}"
    assert np.abs(tissue[:, 1] - tissue[:, 0]).mean() < 4


def test_sonosite_cine_metadata_and_sampling():
    clip = read_clip(pydicom.data.get_testdata_file("color3d_jpeg_baseline.dcm"))
    assert clip.frames.shape == (16, 480, 640, 3)
    assert clip.frame_indices.tolist() == np.round(np.linspace(0, 119, 16)).astype(int).tolist()
    assert clip.meta.frame_count == 120
    assert clip.fps == pytest.approx(1000 / 33.333, rel=1e-4)
    assert clip.meta.manufacturer == "SonoSite, Inc."
    assert clip.meta.codec == "JPEG Baseline (Process 1)"
    assert clip.meta.pixel_spacing_mm == pytest.approx((0.5105, 0.5105), abs=1e-3)
    assert clip.meta.photometric_interpretation == "YBR_FULL_422"


def test_j2k_ybr_ict_and_rct_match_uncompressed_rgb():
    ref = read_clip(pydicom.data.get_testdata_file("US1_UNCR.dcm"), mask_sector=False).frames[0].astype(int)
    rct = read_clip(pydicom.data.get_testdata_file("US1_J2KR.dcm"), mask_sector=False).frames[0].astype(int)
    ict = read_clip(pydicom.data.get_testdata_file("US1_J2KI.dcm"), mask_sector=False).frames[0].astype(int)
    assert np.array_equal(rct, ref)  # lossless
    assert np.abs(ict - ref).mean() < 2  # lossy, but not a colour space away


def test_big_endian_and_rle_palette_match_little_endian():
    base = read_clip(pydicom.data.get_testdata_file("OBXXXX1A.dcm"), mask_sector=False).frames
    for name in ("OBXXXX1A_expb.dcm", "OBXXXX1A_rle.dcm"):
        other = read_clip(pydicom.data.get_testdata_file(name), mask_sector=False).frames
        assert np.array_equal(base, other), name


# ---- layouts written here -------------------------------------------------------------------------

PATIENT_NAME = "Doe^Janet^Secretname"


def _dataset(arr: np.ndarray, pi: str, bits_stored: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "US"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = "MRN-0042"
    ds.AccessionNumber = "ACC-77"
    ds.StudyDate, ds.StudyTime = "20240102", "101500"
    ds.FrameTime = 20.0
    ds.set_pixel_data(arr, pi, bits_stored)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _save(ds: Dataset, path: Path, **kw) -> Path:
    ds.save_as(path, enforce_file_format=True, **kw)
    return path


def _rgb_clip(frames: int = 6, h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (frames, h, w, 3), dtype=np.uint8)
    arr[:, :8, :8] = (200, 30, 30)  # a red block: a channel swap or YBR mix-up shows here
    return arr


def test_rgb_planar_configuration_0_and_1(tmp_path):
    arr = _rgb_clip()
    ds0 = _dataset(arr, "RGB", 8)
    p0 = _save(ds0, tmp_path / "rgb0.dcm")
    ds1 = _dataset(arr, "RGB", 8)
    ds1.PlanarConfiguration = 1
    ds1.PixelData = np.ascontiguousarray(arr.transpose(0, 3, 1, 2)).tobytes()  # RRR..GGG..BBB per frame
    p1 = _save(ds1, tmp_path / "rgb1.dcm")
    for p in (p0, p1):
        clip = read_clip(p, sampling="all", mask_sector=False)
        assert np.array_equal(clip.frames, arr), p.name


def test_native_ybr_full_is_converted_once(tmp_path):
    arr = _rgb_clip()
    ybr = convert_color_space(arr, "RGB", "YBR_FULL")
    p = _save(_dataset(ybr, "YBR_FULL", 8), tmp_path / "ybr.dcm")
    clip = read_clip(p, sampling="all", mask_sector=False)
    assert np.abs(clip.frames.astype(int) - arr.astype(int)).max() <= 3
    assert tuple(clip.frames[0, 2, 2]) == pytest.approx((200, 30, 30), abs=3)


@pytest.mark.parametrize("pi", ["MONOCHROME2", "MONOCHROME1"])
def test_monochrome_8bit(tmp_path, pi):
    grey = np.tile(np.arange(0, 240, 10, dtype=np.uint8)[None, :, None], (4, 1, 16)).transpose(0, 2, 1)
    p = _save(_dataset(grey, pi, 8), tmp_path / "mono.dcm")
    clip = read_clip(p, sampling="all", mask_sector=False)
    expected = grey if pi == "MONOCHROME2" else 255 - grey
    assert np.array_equal(clip.frames[..., 0], expected)
    assert np.array_equal(clip.frames[..., 0], clip.frames[..., 2])


def test_monochrome_16bit_is_stretched_to_8bit(tmp_path):
    values = np.linspace(0, 4095, 32).astype(np.uint16)
    arr = np.tile(values[None, None, :], (3, 8, 1))
    p = _save(_dataset(arr, "MONOCHROME2", 12), tmp_path / "mono16.dcm")
    clip = read_clip(p, sampling="all", mask_sector=False)
    expected = np.round(values / 4095 * 255)
    assert np.abs(clip.frames[0, 0, :, 0].astype(float) - expected).max() <= 1


def test_big_endian_16bit_and_8bit_rgb(tmp_path):
    values = np.linspace(100, 3000, 32).astype(np.uint16)
    arr = np.tile(values[None, None, :], (2, 8, 1))
    ds = _dataset(arr, "MONOCHROME2", 12)
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = arr.astype(">u2").tobytes()
    little = read_clip(_save(_dataset(arr, "MONOCHROME2", 12), tmp_path / "le.dcm"), "all", mask_sector=False)
    big = read_clip(
        _save(ds, tmp_path / "be.dcm", little_endian=False, implicit_vr=False), "all", mask_sector=False
    )
    assert np.array_equal(little.frames, big.frames)
    rgb = _rgb_clip(2)
    ds = _dataset(rgb, "RGB", 8)
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    clip = read_clip(_save(ds, tmp_path / "be_rgb.dcm", little_endian=False, implicit_vr=False), "all")
    assert np.array_equal(clip.frames, rgb) or clip.sector_mask is not None


def test_palette_color_applies_the_lut(tmp_path):
    idx = np.tile(np.arange(16, dtype=np.uint8)[None, None, :], (2, 4, 1))
    lut = np.stack([np.arange(16) * 16, 255 - np.arange(16) * 16, np.full(16, 77)], axis=1).astype(np.uint16)
    ds = _dataset(idx, "MONOCHROME2", 8)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for channel, name in enumerate(("Red", "Green", "Blue")):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [16, 0, 16])
        setattr(ds, f"{name}PaletteColorLookupTableData", (lut[:, channel] * 257).astype("<u2").tobytes())
    clip = read_clip(_save(ds, tmp_path / "pal.dcm"), "all", mask_sector=False)
    assert np.array_equal(clip.frames[0, 0], lut.astype(np.uint8))


def test_rle_multiframe_roundtrip(tmp_path):
    arr = _rgb_clip(5)
    ds = _dataset(arr, "RGB", 8)
    ds.compress(RLELossless)
    clip = read_clip(_save(ds, tmp_path / "rle.dcm"), "stride:2", mask_sector=False)
    assert clip.meta.codec == "RLE Lossless"
    assert clip.frame_indices.tolist() == [0, 2, 4]
    assert np.array_equal(clip.frames, arr[[0, 2, 4]])


def test_patient_name_never_in_metadata_and_ids_are_keyed(tmp_path):
    p = _save(_dataset(_rgb_clip(2), "RGB", 8), tmp_path / "named.dcm")
    key = b"k" * 32
    clip = read_clip(p, site_key=key)
    text = repr(clip.meta) + str(clip.meta.to_dict())
    for part in ("Doe", "Janet", "Secretname", "MRN-0042", "ACC-77"):
        assert part not in text
    from echosearch.privacy import keyed_hash

    assert clip.meta.patient_key == keyed_hash("MRN-0042", key)
    assert clip.meta.accession_key == keyed_hash("ACC-77", key)
    assert read_clip(p, site_key=b"x" * 32).meta.patient_key != clip.meta.patient_key
    assert read_clip(p).meta.patient_key is None  # no key: no identifier at all
    assert clip.meta.study_date == "20240102" and clip.fps == pytest.approx(50.0)
    assert len(clip.meta.sha256) == 64


def test_h264_encapsulated_dicom_goes_through_pyav(tmp_path):
    import io

    import av
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG4HP41

    if "libx264" not in av.codecs_available:
        pytest.skip("FFmpeg in this PyAV has no libx264 encoder")
    n, h, w = 20, 96, 128
    arr = np.full((n, h, w, 3), 60, np.uint8)
    for i in range(n):
        arr[i, 30:50, 2 + i * 5 : 18 + i * 5] = (230, 120, 40)
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in arr:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    ds = _dataset(arr[:, :, :, 0], "MONOCHROME2", 8)  # UIDs etc.; pixel module replaced below
    ds.file_meta.TransferSyntaxUID = MPEG4HP41
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_PARTIAL_420", 0
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    clip = read_clip(_save(ds, tmp_path / "h264.dcm"), sampling="uniform:4", mask_sector=False)
    assert clip.frames.shape == (4, h, w, 3)
    assert clip.frame_indices.tolist() == [0, 6, 13, 19]
    for frame, i in zip(clip.frames, clip.frame_indices, strict=True):
        assert np.abs(frame[40, 10 + i * 5].astype(int) - (230, 120, 40)).max() < 25
    assert clip.meta.codec.startswith("MPEG-4 AVC/H.264")
