"""Frame sampling policies, resolved to frame indices *before* any decoding.

Resolving to indices first is what lets the readers decode only the frames they need (one JPEG per
sampled frame in an encapsulated DICOM, RGB conversion only of kept frames in a video).

Policies (strings, as in configs and on the command line):

- ``uniform:K`` — K frames evenly spaced over the whole clip, first and last included (all frames
  when the clip is shorter than K; the middle frame for K=1). The default is ``uniform:16``.
- ``all`` — every frame.
- ``stride:S`` or ``stride:S,limit:L`` — every S-th frame of the first L frames (EchoCLIP's zero-shot
  example used ``stride:2,limit:40``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from echosearch.video.errors import BadSamplingSpec

DEFAULT_SAMPLING = "uniform:16"


@dataclass(frozen=True)
class Sampling:
    """A parsed sampling policy; ``indices(n)`` gives the frames to decode from an n-frame clip."""

    kind: str  # "uniform" | "all" | "stride"
    count: int = 0
    stride: int = 1
    limit: int | None = None

    def indices(self, n_frames: int) -> np.ndarray:
        """Sorted, unique frame indices (int64) into a clip of ``n_frames`` frames."""
        if n_frames <= 0:
            return np.zeros(0, dtype=np.int64)
        if self.kind == "all":
            return np.arange(n_frames, dtype=np.int64)
        if self.kind == "uniform":
            if n_frames <= self.count:
                return np.arange(n_frames, dtype=np.int64)
            if self.count == 1:
                return np.array([n_frames // 2], dtype=np.int64)  # one frame: the middle one
            return np.unique(np.round(np.linspace(0, n_frames - 1, self.count)).astype(np.int64))
        end = n_frames if self.limit is None else min(n_frames, self.limit)
        return np.arange(0, end, self.stride, dtype=np.int64)

    def n_decoded(self, n_frames: int) -> int:
        """How many frames :meth:`indices` would give, without building them (a header may claim
        billions of frames; the size caps are checked before any array is made)."""
        if n_frames <= 0:
            return 0
        if self.kind == "all":
            return n_frames
        if self.kind == "uniform":
            return min(n_frames, self.count)
        end = n_frames if self.limit is None else min(n_frames, self.limit)
        return -(-end // self.stride)

    def __str__(self) -> str:
        if self.kind == "uniform":
            return f"uniform:{self.count}"
        if self.kind == "stride":
            return f"stride:{self.stride}" + (f",limit:{self.limit}" if self.limit is not None else "")
        return "all"


def _positive_int(text: str, what: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadSamplingSpec(f"sampling {spec!r}: {what} must be a whole number, got {text!r}") from None
    if value < 1:
        raise BadSamplingSpec(f"sampling {spec!r}: {what} must be at least 1, got {value}")
    return value


def parse_sampling(spec: str | Sampling | None) -> Sampling:
    """Parse ``uniform:K``, ``all`` or ``stride:S[,limit:L]``; raise :class:`BadSamplingSpec` otherwise."""
    if spec is None:
        spec = DEFAULT_SAMPLING
    if isinstance(spec, Sampling):
        return spec
    text = str(spec).strip().lower().replace(" ", "")
    if text == "all":
        return Sampling("all")
    kind, _, rest = text.partition(":")
    if kind == "uniform":
        return Sampling("uniform", count=_positive_int(rest, "K", spec))
    if kind == "stride":
        parts = rest.split(",")
        stride = _positive_int(parts[0], "S", spec)
        limit = None
        for part in parts[1:]:
            key, _, value = part.partition(":")
            if key != "limit":
                raise BadSamplingSpec(f"sampling {spec!r}: unknown option {key!r} (expected limit:L)")
            limit = _positive_int(value, "L", spec)
        return Sampling("stride", stride=stride, limit=limit)
    raise BadSamplingSpec(f"unknown sampling {spec!r}; use uniform:K, all, or stride:S,limit:L")
