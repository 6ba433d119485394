"""Caps on decoded size, checked from the headers before any pixel is decoded.

A compressed frame can claim any size: a 2 KB DICOM whose JPEG header says 8000x8000 made the
decoder allocate 5.4 GB and take 30 s, in the indexer and in the UI upload alike. So every reader
compares what the headers promise (DICOM Rows x Columns, each JPEG / JPEG 2000 codestream's own
size, a video stream's width x height) times the frames it would decode against two caps, and raises
:class:`TooLarge` instead of decoding. The defaults are generous for real echo (typical clips are
about 0.8 MP a frame and a few hundred frames); a site can change them with the environment
variables ``ECHOSEARCH_MAX_FRAME_PIXELS`` and ``ECHOSEARCH_MAX_CLIP_PIXELS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from echosearch.errors import ConfigError
from echosearch.video.errors import TooLarge

#: 4096 x 4096: four times a 4K screen; echo scanners export at most about 1280 x 1024.
DEFAULT_FRAME_PIXELS = 4096 * 4096
#: Pixels over all decoded frames of one clip: 2 GB of RGB (``all`` frames of a long 4K cine).
DEFAULT_CLIP_PIXELS = 700_000_000


@dataclass(frozen=True)
class Limits:
    frame_pixels: int = DEFAULT_FRAME_PIXELS
    clip_pixels: int = DEFAULT_CLIP_PIXELS

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, or the site's caps from ``ECHOSEARCH_MAX_FRAME_PIXELS`` / ``..._CLIP_PIXELS``."""

        def read(var: str, default: int) -> int:
            text = os.environ.get(var, "").strip().replace("_", "")
            if not text:
                return default
            try:
                value = int(float(text))
            except ValueError:
                raise ConfigError(f"{var}={text!r} is not a number of pixels") from None
            if value < 1:
                raise ConfigError(f"{var} must be positive, got {value}")
            return value

        return cls(
            read("ECHOSEARCH_MAX_FRAME_PIXELS", DEFAULT_FRAME_PIXELS),
            read("ECHOSEARCH_MAX_CLIP_PIXELS", DEFAULT_CLIP_PIXELS),
        )

    def check(self, name: str, rows: int, columns: int, frames: int, source: str = "header") -> None:
        """Raise :class:`TooLarge` when ``frames`` decoded frames of ``rows x columns`` exceed a cap."""
        rows, columns, frames = int(rows), int(columns), max(1, int(frames))
        if rows <= 0 or columns <= 0:
            return
        per_frame = rows * columns
        if per_frame > self.frame_pixels:
            raise TooLarge(
                f"{name}: frames of {columns}x{rows} pixels (from the {source}) exceed the cap of "
                f"{self.frame_pixels:,} pixels per frame (ECHOSEARCH_MAX_FRAME_PIXELS)"
            )
        if per_frame * frames > self.clip_pixels:
            raise TooLarge(
                f"{name}: {frames} frames of {columns}x{rows} pixels exceed the cap of "
                f"{self.clip_pixels:,} decoded pixels per clip (ECHOSEARCH_MAX_CLIP_PIXELS)"
            )


def codestream_size(data: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG, JPEG-LS or JPEG 2000 codestream declares, or None when not found.

    JPEG family: the first SOFn marker segment (``FFCn``/``FFF7``: precision, height, width); JPEG 2000:
    the SIZ segment right after SOC (``FF4F FF51``: Xsiz, Ysiz minus the image offsets).
    """
    if data[:4] == b"\xff\x4f\xff\x51" and len(data) >= 24:
        xsiz, ysiz = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
        xo, yo = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return max(0, ysiz - yo), max(0, xsiz - xo)
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        sof = (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == 0xF7
        if sof and i + 9 <= n:
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
        if marker == 0xDA or length < 2:  # start of scan: no frame header before it
            return None
        i += 2 + length
    return None
