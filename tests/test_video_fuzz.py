"""Fuzzing the readers: a fixed-seed corpus of mutated DICOM/AVI/MP4 files built here (byte flips,
truncations, insertions, odd header values) plus hypothesis; every read ends with a frame array or an
echosearch error (never zlib, pydicom, PyAV or numpy exceptions), in bounded time and memory."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import DeflatedExplicitVRLittleEndian

from echosearch.synth.writers import DicomHeader, write_dicom, write_video
from echosearch.video import ClipReadError, Limits, read_clip

SECONDS_PER_FILE = 10.0
#: Small caps for the fuzz: a mutated header that promises more must be refused, not decoded.
LIMITS = Limits(frame_pixels=1024 * 1024, clip_pixels=64 * 1024 * 1024)
HEADER = DicomHeader(
    patient_id="MRN123", patient_name="DOE^JANE", birth_date="19600101", sex="F", accession="ACC1",
    study_uid="1.2.3.4", study_date="20200101", study_time="120000", series_uid="1.2.3.4.1",
    sop_uid="1.2.3.4.1.1", series_number=1, instance_number=1, view="A4C", heart_rate=60,
    manufacturer="SYNTH", model="S1",
)  # fmt: skip


def _frames(n: int = 4, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """Small valid files of every format the reader takes (the corpus mutates these)."""
    root = tmp_path_factory.mktemp("seeds")
    out: dict[str, bytes] = {}
    for fmt in ("dicom", "dicom-rle", "dicom-j2k"):
        write_dicom(root / f"{fmt}.dcm", _frames(), 30.0, HEADER, fmt)
        out[fmt] = (root / f"{fmt}.dcm").read_bytes()
    ds = pydicom.dcmread(root / "dicom.dcm")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(root / "deflated.dcm", enforce_file_format=True)
    out["dicom-deflated"] = (root / "deflated.dcm").read_bytes()
    jpeg = pydicom.dcmread(pydicom.data.get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    jpeg.save_as(root / "jpeg.dcm", enforce_file_format=True)
    out["dicom-jpeg"] = (root / "jpeg.dcm").read_bytes()
    for fmt, suffix in (("avi", ".avi"), ("mp4", ".mp4")):
        write_video(root / f"v{suffix}", _frames(6), 30.0, fmt)
        out[fmt] = (root / f"v{suffix}").read_bytes()
    return out


def _suffix(kind: str) -> str:
    return {"avi": ".avi", "mp4": ".mp4"}.get(kind, ".dcm")


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    how = rng.integers(0, 6)
    if how == 0:  # flip a few bytes anywhere
        for pos in rng.integers(0, len(buf), rng.integers(1, 20)):
            buf[pos] = int(rng.integers(0, 256))
    elif how == 1:  # truncate
        del buf[int(rng.integers(0, len(buf))) :]
    elif how == 2:  # insert junk
        pos = int(rng.integers(0, len(buf)))
        buf[pos:pos] = rng.bytes(int(rng.integers(1, 64)))
    elif how == 3:  # flip bytes in the header, where lengths, VRs and sizes live
        for pos in rng.integers(0, min(len(buf), 1200), rng.integers(1, 8)):
            buf[pos] = int(rng.integers(0, 256))
    elif how == 4:  # 0xFF runs: huge lengths and sizes
        pos = int(rng.integers(0, min(len(buf), 1200)))
        buf[pos : pos + 4] = b"\xff\xff\xff\x7f"
    else:  # duplicate a chunk
        a = int(rng.integers(0, len(buf)))
        b = min(len(buf), a + int(rng.integers(1, 512)))
        buf[a:a] = buf[a:b]
    return bytes(buf)


#: Header values that made readers raise non-echosearch errors before (issue 16).
ODD_HEADERS = [
    ("NumberOfFrames", "abc"), ("NumberOfFrames", "-3"), ("NumberOfFrames", "2147483647"),
    ("NumberOfFrames", "1.5"), ("NumberOfFrames", ""), ("Rows", 65535), ("Columns", 0),
    ("BitsAllocated", 3), ("SamplesPerPixel", 7), ("PhotometricInterpretation", "NONSENSE"),
    ("FrameTime", "x"), ("StudyDate", "2020-13-45"), ("RegionSpatialFormat", ""),
    ("RegionSpatialFormat", "abc"), ("RegionLocationMaxX1", "\xff\xff\xff\xff"),
]  # fmt: skip


def _with_value(data: bytes, keyword: str, value: str | int) -> bytes | None:
    """The file with one header value replaced in its bytes (explicit VR little endian), invalid
    values included: what a broken exporter writes, which pydicom would refuse to write itself."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    vr = pydicom.datadict.dictionary_VR(tag).encode()
    head = tag.to_bytes(4, "big")
    key = head[1::-1] + head[3:1:-1] + vr  # group, element little endian, then the VR
    pos = data.find(key, 132)
    if pos < 0:
        return None  # the file has no such element
    length = int.from_bytes(data[pos + 6 : pos + 8], "little")
    if isinstance(value, int):
        raw = value.to_bytes(2, "little")
    else:
        raw = value.encode() + (b" " if len(value) % 2 else b"")
    return data[: pos + 6] + len(raw).to_bytes(2, "little") + raw + data[pos + 8 + length :]


def _read_bounded(path: Path) -> None:
    start = time.perf_counter()
    try:
        clip = read_clip(path, sampling="uniform:4", limits=LIMITS)
        assert clip.frames.dtype == np.uint8 and clip.frames.ndim == 4
    except ClipReadError:
        pass
    assert time.perf_counter() - start < SECONDS_PER_FILE, f"{path.name} took too long"


def test_fixed_seed_corpus_reads_with_only_echosearch_errors(tmp_path, seeds):
    rng = np.random.default_rng(16)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = 0
    for kind, data in seeds.items():
        for i in range(40):
            path = tmp_path / f"{kind}-{i}{_suffix(kind)}"
            path.write_bytes(_mutate(data, rng))
            _read_bounded(path)  # an exception other than ClipReadError fails the test here
            n += 1
    for kind in ("dicom", "dicom-rle", "dicom-jpeg"):
        for keyword, value in ODD_HEADERS:
            edited = _with_value(seeds[kind], keyword, value)
            if edited is None:
                continue
            path = tmp_path / f"{kind}-{keyword}.dcm"
            path.write_bytes(edited)
            _read_bounded(path)
            n += 1
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert n > 300 and grown_mb < 1500, f"peak memory grew by {grown_mb:.0f} MB over {n} files"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["dicom", "dicom-rle", "dicom-deflated", "mp4"]),
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.one_of(st.none(), st.integers(0, 1 << 20)),
)
def test_any_byte_edit_reads_or_raises_an_echosearch_error(tmp_path, seeds, kind, edits, cut):
    buf = bytearray(seeds[kind])
    for pos, value in edits:
        buf[pos % len(buf)] = value
    if cut is not None:
        del buf[cut % len(buf) :]
    path = tmp_path / f"h{_suffix(kind)}"
    path.write_bytes(bytes(buf))
    _read_bounded(path)


def test_deflated_explicit_vr_dicom_is_read(seeds, tmp_path):
    path = tmp_path / "deflated.dcm"
    path.write_bytes(seeds["dicom-deflated"])
    clip = read_clip(path, sampling="all")
    assert clip.frames.shape == (4, 48, 64, 3)
