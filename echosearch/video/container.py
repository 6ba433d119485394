"""AVI / MP4 (any container and codec FFmpeg reads) through PyAV.

Frames are decoded in order (inter-frame codecs need their references) but only the sampled ones
are converted to RGB, which is most of the cost, and decoding stops after the last one needed.
The frame count comes from the stream header, or from counting packets (demuxing without
decoding) when the container does not say.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from echosearch.video.errors import CorruptFile, NotAnImage, TooFewFrames, one_line
from echosearch.video.limits import Limits
from echosearch.video.meta import ClipMeta, uid_from_hash
from echosearch.video.sampling import Sampling

log = logging.getLogger(__name__)

# FFmpeg demuxers that will "read" almost anything (text as ANSI art, raw bytes, subtitles)
_NOT_VIDEO_FORMATS = {"tty", "data", "bin", "srt", "ass", "webvtt", "lrc", "mpl2", "microdvd", "sami"}


def _open(source: str | BinaryIO, name: str) -> av.container.InputContainer:
    try:
        container = av.open(source, mode="r", timeout=30.0)
    except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError) as e:
        raise NotAnImage(f"{name}: not a video FFmpeg can read ({one_line(e)})") from None
    fmt = container.format.name
    if fmt in _NOT_VIDEO_FORMATS:
        container.close()
        raise NotAnImage(f"{name}: not a video (FFmpeg reads it as {fmt!r})")
    if not container.streams.video:
        container.close()
        # a real container with no video track: typically a video written without any frames
        raise TooFewFrames(f"{name}: the {fmt.split(',')[0]} file has no video frames")
    return container


def _count_packets(source: str | BinaryIO, name: str) -> int:
    """Frames in the first video stream, by demuxing (no decoding); for containers that don't say."""
    container = _open(source, name)
    try:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as e:
        raise CorruptFile(f"{name}: damaged video container ({one_line(e)})") from None
    finally:
        container.close()
        if hasattr(source, "seek"):
            source.seek(0)


def _decode(
    container, stream, wanted: np.ndarray, name: str, limits: Limits
) -> tuple[np.ndarray, np.ndarray]:
    """RGB frames at ``wanted`` positions (sorted); returns (frames, indices actually found)."""
    stream.thread_type = "AUTO"
    wanted_set = set(int(i) for i in wanted)
    last = int(wanted[-1]) if len(wanted) else -1
    frames, found = [], []
    try:
        for i, frame in enumerate(container.decode(stream)):
            if frame.width * frame.height > limits.frame_pixels:  # a stream may change size mid-way
                limits.check(name, frame.height, frame.width, 1, source="decoded frame")
            if i in wanted_set:
                frames.append(frame.to_ndarray(format="rgb24"))
                found.append(i)
            if i >= last:
                break
    except av.FFmpegError as e:
        if not frames:
            raise CorruptFile(f"{name}: video stream cannot be decoded ({one_line(e)})") from None
        log.warning("%s: decoding stopped early at frame %d: %s", name, len(found), e)
    if not frames:
        raise TooFewFrames(f"{name}: the video has no decodable frames")
    return np.stack(frames), np.asarray(found, dtype=np.int64)


def decode_stream(
    source: str | BinaryIO,
    name: str,
    indices: np.ndarray | None = None,
    sampling: Sampling | None = None,
    limits: Limits | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Decode a video (path or file object): frames ``[F,H,W,3]`` uint8, their indices, stream info.

    Give either explicit ``indices`` or a ``sampling`` policy (resolved against the frame count).
    The stream's declared size is checked against ``limits`` before any frame is decoded.
    """
    limits = limits or Limits.from_env()
    container = _open(source, name)
    stream = container.streams.video[0]
    n_frames = int(stream.frames or 0)
    if n_frames <= 0:
        container.close()
        if hasattr(source, "seek"):
            source.seek(0)
        n_frames = _count_packets(source, name)
        container = _open(source, name)
        stream = container.streams.video[0]
    try:
        if n_frames == 0:
            raise TooFewFrames(f"{name}: the video has no frames")
        policy = sampling or Sampling("all")
        n_decoded = len(indices) if indices is not None else policy.n_decoded(n_frames)
        ctx = stream.codec_context
        limits.check(name, ctx.height or 0, ctx.width or 0, n_decoded, source="video stream header")
        if indices is None:
            indices = policy.indices(n_frames)
        rate = stream.average_rate or stream.guessed_rate
        info = {
            "frame_count": n_frames,
            "fps": float(rate) if rate else None,
            "codec": stream.codec_context.name,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "tags": dict(container.metadata or {}),
        }
        frames, found = _decode(container, stream, np.asarray(indices), name, limits)
        if len(found) < len(indices):
            log.info("%s: header said %d frames; decoded fewer", name, n_frames)
        return frames, found, info
    finally:
        container.close()


#: DICOM attributes an exporter may carry in a video's "comment" tag as ``Keyword=value;...``.
VIDEO_TAG_KEYWORDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "StudyDate",
    "StudyTime",
    "PatientID",
    "AccessionNumber",
    "Manufacturer",
    "ManufacturerModelName",
)


def dicom_tags_from_comment(tags: dict) -> dict[str, str]:
    """DICOM identifiers that a PACS export wrote into the container's comment, if any.

    Echo MP4/AVI exports often drop every identifier; some keep ``Keyword=value`` pairs in the
    comment. With them a video joins its real study and patient instead of a hash-derived one.
    """
    comment = str(tags.get("comment") or tags.get("COMMENT") or "")
    found: dict[str, str] = {}
    for part in comment.replace("\n", ";").split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() in VIDEO_TAG_KEYWORDS and value.strip():
            found[key.strip()] = value.strip()
    return found


def read_video(
    path: Path, sampling: Sampling, sha: str, site_key: bytes | None = None, limits: Limits | None = None
) -> tuple[np.ndarray, np.ndarray, ClipMeta]:
    """Sampled RGB frames of a video file and its :class:`ClipMeta`.

    UIDs come from DICOM identifiers in the container's comment when present (see
    :func:`dicom_tags_from_comment`), else they are derived from ``sha``. The patient ID and
    accession number are kept only as keyed hashes, and only when ``site_key`` is given.
    """
    from echosearch.privacy import keyed_hash

    frames, indices, info = decode_stream(str(path), path.name, sampling=sampling, limits=limits)
    tags = dicom_tags_from_comment(info.get("tags", {}))

    def keyed(keyword: str) -> str | None:
        return keyed_hash(tags[keyword], site_key) if site_key and keyword in tags else None

    meta = ClipMeta(
        path=str(path),
        format="video",
        sha256=sha,
        sop_instance_uid=tags.get("SOPInstanceUID") or uid_from_hash(sha, "instance"),
        series_instance_uid=tags.get("SeriesInstanceUID") or uid_from_hash(sha, "series"),
        study_instance_uid=tags.get("StudyInstanceUID") or uid_from_hash(sha, "study"),
        frame_count=info["frame_count"],
        rows=int(frames.shape[1]),
        columns=int(frames.shape[2]),
        fps=info["fps"],
        study_date=tags.get("StudyDate"),
        study_time=tags.get("StudyTime"),
        manufacturer=tags.get("Manufacturer"),
        model_name=tags.get("ManufacturerModelName"),
        codec=info["codec"],
        photometric_interpretation="RGB",
        patient_key=keyed("PatientID"),
        accession_key=keyed("AccessionNumber"),
    )
    return frames, indices, meta
