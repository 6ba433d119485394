"""The clip formats we read, in one registry: each with its name, suffixes, magic-bytes sniff and reader.

Folder discovery (:mod:`indexer.discover`), :func:`echosearch.video.read_clip` and the UI's upload
check all ask this registry, so a file type is added (or dropped) in one place, the way pydicom
registers its pixel decoders. Readers are imported on first use: asking which format a file is costs
neither PyAV nor pydicom.

A file's own bytes decide first (its name can lie: a DICOM named ``.avi`` is read as DICOM); the
suffix decides only when no sniff knows the bytes. DICOM comes first, since its 128-byte preamble may
hold anything (a TIFF header, say) before the ``DICM`` marker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np

    from echosearch.video.limits import Limits
    from echosearch.video.meta import ClipMeta
    from echosearch.video.sampling import Sampling

#: Bytes a sniff may look at: three MPEG-TS packets (188 bytes, 192 in M2TS) fit in them.
HEAD_SIZE = 512


class Decoded(NamedTuple):
    """What a reader gives back: sampled RGB frames ``[F,H,W,3]`` uint8, their indices in the clip,
    the metadata, and the ultrasound region mask the file itself declares (DICOM), if any."""

    frames: np.ndarray
    indices: np.ndarray
    meta: ClipMeta
    region_mask: np.ndarray | None = None


#: ``reader(path, sampling, sha256, site_key, limits)``; raises a ClipReadError for a bad file.
Reader = Callable[[Path, "Sampling", str, "bytes | None", "Limits"], Decoded]


@dataclass(frozen=True)
class ClipFormat:
    """One file type we read. ``suffixes`` are lower case with the dot; the first is the one an
    upload is saved under. ``magic_optional``: files of this type may carry no magic bytes at all
    (DICOM without its preamble), so even a strict check takes the suffix's word for it."""

    name: str
    label: str
    suffixes: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    reader: Reader
    magic_optional: bool = False

    @property
    def suffix(self) -> str:
        return self.suffixes[0] if self.suffixes else ""


# ---------------------------------------------------------------- readers (imported on first use)


def read_dicom_file(
    path: Path, sampling: Sampling, sha: str, site_key: bytes | None, limits: Limits
) -> Decoded:
    from echosearch.video.dicom import read_dicom

    d = read_dicom(path, sampling, sha, site_key, limits)
    return Decoded(d.frames, d.indices, d.meta, d.region_mask)


def read_video_file(
    path: Path, sampling: Sampling, sha: str, site_key: bytes | None, limits: Limits
) -> Decoded:
    from echosearch.video.container import read_video

    frames, indices, meta = read_video(path, sampling, sha, site_key, limits)
    return Decoded(frames, indices, meta)


# ---------------------------------------------------------------- sniffs


def _dicom(head: bytes) -> bool:
    return head[128:132] == b"DICM"


def _avi(head: bytes) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"AVI "


# ISO base media / QuickTime: the first box's type. "free" and "skip" boxes may come first too, but
# those words also open English text ("The free ..."), so such a file is known by its suffix only.
_QT_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"wide"}


def _mp4(head: bytes) -> bool:
    return head[4:8] in _QT_FIRST_BOXES


def _matroska(head: bytes) -> bool:  # MKV and WebM: an EBML header
    return head[:4] == b"\x1a\x45\xdf\xa3"


def _ts_packets(head: bytes, size: int, offset: int) -> bool:
    return len(head) > offset + 2 * size and all(head[offset + k * size] == 0x47 for k in range(3))


def _mpeg(head: bytes) -> bool:
    """MPEG-1/2 program stream (pack header), elementary video stream (sequence header), or
    transport stream (three packets' sync bytes; M2TS packets carry a 4-byte timestamp first)."""
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return True
    return _ts_packets(head, 188, 0) or _ts_packets(head, 192, 4)


_ASF_HEADER_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def _asf(head: bytes) -> bool:  # WMV
    return head[:16] == _ASF_HEADER_GUID


def _ogg(head: bytes) -> bool:
    return head[:4] == b"OggS"


def _never(head: bytes) -> bool:
    return False


# ---------------------------------------------------------------- the registry

_REGISTRY: list[ClipFormat] = []


def register(fmt: ClipFormat) -> None:
    """Add a format (after those already there: an earlier sniff wins); a name registered again is
    replaced in place."""
    for i, known in enumerate(_REGISTRY):
        if known.name == fmt.name:
            _REGISTRY[i] = fmt
            return
    _REGISTRY.append(fmt)


def registered() -> tuple[ClipFormat, ...]:
    """The formats, in the order their sniffs are tried."""
    return tuple(_REGISTRY)


def clip_suffixes() -> frozenset[str]:
    """Every suffix (lower case, with the dot) that names a clip."""
    return frozenset(s for fmt in _REGISTRY for s in fmt.suffixes)


def describe() -> str:
    """The formats for people: ``"DICOM, AVI, MP4/MOV, ... or Ogg"``."""
    labels = [fmt.label for fmt in _REGISTRY]
    return ", ".join(labels[:-1]) + " or " + labels[-1] if len(labels) > 1 else "".join(labels)


def sniff(head: bytes) -> ClipFormat | None:
    """The format the bytes show (the first :data:`HEAD_SIZE` bytes of a file are enough), if any."""
    return next((fmt for fmt in _REGISTRY if fmt.sniff(head)), None)


def read_head(path: str | os.PathLike) -> bytes:
    """The first :data:`HEAD_SIZE` bytes of a file (fewer for a short one); raises ``OSError``."""
    with open(path, "rb") as f:
        return f.read(HEAD_SIZE)


#: What an extension-less file no sniff knows is handed to: FFmpeg probes it, and knows more
#: containers than our sniffs (it refuses text, which it would show as ANSI art, by name).
PROBE = ClipFormat("video", "video", (), _never, read_video_file)


def format_for(
    path_or_name: str | os.PathLike, head: bytes = b"", *, strict: bool = False
) -> ClipFormat | None:
    """The format of a file from its first bytes ``head`` and its name; ``None`` when we do not read it.

    The bytes decide first; then the suffix. An extension-less file the bytes say nothing about goes
    to :data:`PROBE`. ``strict`` (an upload, whose name is only the sender's word): the bytes must
    show the format, except for a ``magic_optional`` one named by its suffix (DICOM without its
    preamble; its reader then decides), and nothing goes to :data:`PROBE`.
    """
    found = sniff(head)
    if found is not None:
        return found
    suffix = PurePath(os.fspath(path_or_name)).suffix.lower()
    if suffix:
        named = next((fmt for fmt in _REGISTRY if suffix in fmt.suffixes), None)
        if named is not None and (named.magic_optional or not strict):
            return named
        return None
    return None if strict else PROBE


register(
    ClipFormat("dicom", "DICOM", (".dcm", ".dicom", ".dic"), _dicom, read_dicom_file, magic_optional=True)
)
register(ClipFormat("avi", "AVI", (".avi",), _avi, read_video_file))
register(ClipFormat("mp4", "MP4/MOV", (".mp4", ".m4v", ".mov"), _mp4, read_video_file))
register(ClipFormat("mkv", "MKV/WebM", (".mkv", ".webm"), _matroska, read_video_file))
register(ClipFormat("mpeg", "MPEG", (".mpg", ".mpeg"), _mpeg, read_video_file))
register(ClipFormat("wmv", "WMV", (".wmv",), _asf, read_video_file))
register(ClipFormat("ogg", "Ogg", (".ogv",), _ogg, read_video_file))
