"""Why a clip could not be read: one family, so callers (the indexer, the CLI) can skip a bad file
with one ``except ClipReadError`` and report the reason in one line."""

from __future__ import annotations

from echosearch.errors import EchosearchError


class ClipReadError(EchosearchError):
    """A file could not be read as an echo clip."""


class NotAnImage(ClipReadError):
    """The file is not an image or video we recognise (or a DICOM without pixel data)."""


class UnsupportedTransferSyntax(ClipReadError):
    """A DICOM whose pixel data needs a codec that is not installed (the message names it)."""


class CorruptFile(ClipReadError):
    """The file looks like a DICOM or video but is empty, truncated or damaged."""


class TooFewFrames(ClipReadError):
    """The clip has no frames (or fewer than the caller needs)."""


class BadSamplingSpec(ClipReadError):
    """A frame sampling policy string could not be parsed."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """A library's exception as one short line (pydicom's plugin errors span several)."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TooLarge(ClipReadError):
    """Decoding the clip would exceed the cap on decoded pixels per frame or per clip (a pixel bomb:
    a few KB whose header claims gigapixels); checked from the headers before anything is decoded."""
