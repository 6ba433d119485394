"""Cine loops for the viewer: a clip's every frame, masked to the ultrasound sector, as an H.264 MP4.

Why a file of its own: a browser plays an MP4 at the clip's own frame rate and full resolution, with
seeking and looping, where the card's animated preview has 16 frames at 160 px. Decoding a DICOM
and finding its sector takes seconds, so the loop is made once, on first view, and kept in
``DATA/cine/<video id>.mp4`` with a JSON sidecar (frame rate, frame count, size, heart rate, and the
source file's size and mtime: a changed source makes the loop again). Both are written atomically
and owner-only, like the rest of the private data dir. The folder is a cache, bounded in size
(``ECHOSEARCH_CINE_CACHE_MB``, default 2 GiB): past it the least recently watched loops are deleted,
to be made again if someone opens them (each use touches the sidecar's mtime). The frames are the reader's masked frames, so
burned-in names, dates and the ECG strip never reach the screen, as with the previews.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from echosearch.fsutil import PRIVATE, atomic_path, atomic_write_text
from echosearch.video.errors import ClipReadError, one_line

log = logging.getLogger(__name__)

CINE_DIR = "cine"
#: The frame rate a clip is played at when its file records none (DICOM without frame time).
DEFAULT_FPS = 30.0
#: x264 quality (lower is better; 18 is visually lossless for grey-scale echo).
CRF = 18
#: The largest instance retrieved from a PACS to make a loop (as the indexer's spool allows).
MAX_RETRIEVE_BYTES = 4 << 30
#: Default cap on ``DATA/cine`` in MiB (``ECHOSEARCH_CINE_CACHE_MB``).
DEFAULT_CACHE_MB = 2048
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class Cine:
    """A clip's cine loop: the MP4 and what a player needs to step it frame by frame."""

    path: Path
    fps: float
    frames: int
    width: int
    height: int
    heart_rate: float | None = None  # beats per minute, from the DICOM header when it has one
    fps_recorded: bool = True  # False: the file gave no frame rate, DEFAULT_FPS is assumed
    source_size: int | None = None
    source_mtime: float | None = None

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    @property
    def cycle_s(self) -> float | None:
        """One heartbeat in seconds (from the heart rate), or None when the file records none."""
        return 60.0 / self.heart_rate if self.heart_rate else None

    def sidecar(self) -> dict:
        doc = asdict(self)
        doc["path"] = self.path.name
        return doc


def cine_path(data_dir: str | os.PathLike, video_id: int) -> Path:
    """Where the cine loop of a clip lives (the sidecar is the same name with ``.json``)."""
    return Path(data_dir) / CINE_DIR / f"{int(video_id)}.mp4"


def cached_cine(data_dir: str | os.PathLike, video_id: int, source: str | os.PathLike | None) -> Cine | None:
    """The stored loop of a clip when it is there and its source file has not changed since.
    ``source=None``: a PACS instance (immutable by its SOP Instance UID), any stored loop of it is good."""
    mp4 = cine_path(data_dir, video_id)
    try:
        doc = json.loads(mp4.with_suffix(".json").read_text())
        stat = os.stat(source) if source is not None else None
    except (OSError, ValueError):
        return None
    if not mp4.is_file() or (
        stat is not None
        and (doc.get("source_size") != stat.st_size or doc.get("source_mtime") != stat.st_mtime)
    ):
        return None
    doc["path"] = mp4
    try:
        cine = Cine(**doc)
    except TypeError:  # a sidecar of another version: make the loop again
        return None
    try:
        os.utime(mp4.with_suffix(".json"))  # recently used: the last to be pruned
    except OSError:
        pass
    return cine


def cache_limit_bytes() -> int:
    """The cine cache's cap: ``ECHOSEARCH_CINE_CACHE_MB`` MiB (a bad value: the default, logged)."""
    raw = os.environ.get("ECHOSEARCH_CINE_CACHE_MB", "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_CACHE_MB
        if mb < 0:
            raise ValueError(raw)
    except ValueError:
        log.warning("ECHOSEARCH_CINE_CACHE_MB=%r is not a size in MiB; using %d", raw, DEFAULT_CACHE_MB)
        mb = DEFAULT_CACHE_MB
    return int(mb * 2**20)


def prune_cine_cache(
    data_dir: str | os.PathLike, max_bytes: int | None = None, keep: Path | None = None
) -> int:
    """Delete the least recently used loops until ``DATA/cine`` holds at most ``max_bytes``
    (default :func:`cache_limit_bytes`), never ``keep``; how many loops went."""
    limit = cache_limit_bytes() if max_bytes is None else max_bytes
    loops = []
    for mp4 in (Path(data_dir) / CINE_DIR).glob("*.mp4"):
        try:
            side = mp4.with_suffix(".json")
            used = side.stat().st_mtime if side.exists() else mp4.stat().st_mtime
            loops.append((used, mp4.stat().st_size, mp4))
        except OSError:  # removed meanwhile by another session
            continue
    total, removed = sum(size for _, size, _ in loops), 0
    for _, size, mp4 in sorted(loops, key=lambda t: t[0]):
        if total <= limit:
            break
        if keep is not None and mp4 == keep:
            continue
        for f in (mp4, mp4.with_suffix(".json")):
            f.unlink(missing_ok=True)
        total, removed = total - size, removed + 1
    return removed


def make_cine(
    data_dir: str | os.PathLike, video_id: int, source: str | os.PathLike, *, immutable: bool = False
) -> Cine:
    """The clip's cine loop, made from its masked frames on first use and reused after.
    ``immutable``: ``source`` is a temporary copy of a PACS instance (the loop is kept without the
    copy's size and mtime, see :func:`cached_cine`).

    Raises :class:`~echosearch.video.errors.ClipReadError` (one line) when the clip cannot be read,
    e.g. it moved since indexing or is larger than the decoding limits allow.
    """
    key = f"{Path(data_dir).resolve()}:{int(video_id)}"
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:  # two sessions opening the same clip encode it once
        done = cached_cine(data_dir, video_id, source)
        if done is not None:
            return done
        from echosearch.video import read_clip

        if not os.path.isfile(source):
            raise ClipReadError(f"the clip's file is no longer at its indexed place ({Path(source).name})")
        stat = os.stat(source)
        clip = read_clip(source, sampling="all", mask_sector=True)
        mp4 = cine_path(data_dir, video_id)
        mp4.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fps = round(float(clip.fps), 3) if clip.fps and clip.fps > 0 else DEFAULT_FPS
        try:
            height, width = encode_mp4(clip.frames, fps, mp4)
        except ClipReadError:
            raise
        except Exception as exc:  # noqa: BLE001 - an encoder failure is one line on the page, not a traceback
            raise ClipReadError(f"cannot make the cine loop ({one_line(exc)})") from None
        cine = Cine(
            path=mp4,
            fps=fps,
            frames=int(clip.frames.shape[0]),
            width=width,
            height=height,
            heart_rate=float(clip.meta.heart_rate) if clip.meta.heart_rate else None,
            fps_recorded=bool(clip.fps and clip.fps > 0),
            source_size=None if immutable else stat.st_size,
            source_mtime=None if immutable else stat.st_mtime,
        )
        atomic_write_text(mp4.with_suffix(".json"), json.dumps(cine.sidecar()), mode=PRIVATE, fsync=False)
        prune_cine_cache(data_dir, keep=mp4)
        return cine


def encode_mp4(frames: np.ndarray, fps: float, path: Path) -> tuple[int, int]:
    """Write RGB frames ``[F,H,W,3]`` as an H.264 (yuv420p, faststart) MP4 at ``fps``, atomically and
    owner-only; returns the (height, width) written (cropped to even numbers, as 4:2:0 needs)."""
    from fractions import Fraction

    import av

    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    if height == 0 or width == 0:
        raise ClipReadError("the clip's frames are too small to play")
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path, mode=PRIVATE, fsync=False) as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(CRF), "preset": "veryfast", "tune": "grain"}
            for arr in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr[:height, :width]), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    return height, width


def read_frames(path: str | os.PathLike) -> list[np.ndarray]:
    """Every frame of a cine loop as RGB arrays, in order (for stepping through it one frame at a time)."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def make_pacs_cine(data_dir: str | os.PathLike, video_id: int, key: str) -> Cine:
    """The cine loop of a clip indexed from a DICOMweb server: reused when made before, else the
    instance is retrieved (WADO-RS, credentials as for indexing: ``ECHOSEARCH_DICOMWEB_*`` or a netrc
    file) into a private temporary folder, made into the loop and deleted, so that no copy of the
    instance with its full header stays in the data dir. C-STORE clips keep no way back to their
    sender: a clear error."""
    import tempfile
    from urllib.parse import urlsplit

    from echosearch.pacs.credentials import resolve_credentials
    from echosearch.pacs.dicomweb import InstanceError, SourceError, make_client, retrieve_to
    from echosearch.sources import DICOMWEB_SCHEMES, parse_key

    ref = parse_key(key)
    if ref is None or not ref.base.startswith(DICOMWEB_SCHEMES):
        raise ClipReadError(
            "the clip came over DICOM (C-STORE) and no file of it is kept: open it in the PACS viewer"
        )
    done = cached_cine(data_dir, video_id, None)
    if done is not None:
        return done
    folder = Path(data_dir) / CINE_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        client = make_client(ref.http_base, resolve_credentials(urlsplit(ref.http_base).hostname or ""))
        with tempfile.TemporaryDirectory(dir=folder, prefix=".retrieve-") as tmp:
            instance = Path(tmp) / "instance.dcm"
            retrieve_to(client, ref, instance, MAX_RETRIEVE_BYTES)
            return make_cine(data_dir, video_id, instance, immutable=True)
    except (SourceError, InstanceError) as exc:
        raise ClipReadError(f"cannot retrieve the clip from the PACS: {one_line(exc)}") from None
