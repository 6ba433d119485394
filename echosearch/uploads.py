"""Clips uploaded by a user (UI "Query by clip", the API's ``POST /similar``): is it a clip we read?

The format is decided by the file's own bytes (its name can lie; only a DICOM without its preamble
is taken on its name), as :mod:`echosearch.video.formats` knows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from echosearch.errors import UsageError

if TYPE_CHECKING:
    from echosearch.video.formats import ClipFormat


class BadUpload(UsageError):
    """An uploaded file that is not a clip we can read."""


def check_upload(name: str, data: bytes) -> ClipFormat:
    """The clip format of an upload from its first bytes (``formats.HEAD_SIZE`` are enough)."""
    from echosearch.video import formats

    fmt = formats.format_for(name, data[: formats.HEAD_SIZE], strict=True)
    if fmt is None:
        raise BadUpload(f"{name} is not a {formats.describe()} file")
    return fmt
