"""Echo clips in: DICOM / AVI / MP4 reading, metadata, the ultrasound sector, sampling, preprocessing."""

from echosearch.video.clip import EchoClip, read_clip
from echosearch.video.errors import (
    BadSamplingSpec,
    ClipReadError,
    CorruptFile,
    NotAnImage,
    TooFewFrames,
    TooLarge,
    UnsupportedTransferSyntax,
)
from echosearch.video.limits import Limits
from echosearch.video.meta import ClipMeta
from echosearch.video.preprocess import CLIP_MEAN, CLIP_STD, crop_and_scale, preprocess_frames
from echosearch.video.sampling import Sampling, parse_sampling
from echosearch.video.sector import estimate_sector, sector_from_regions

__all__ = [
    "BadSamplingSpec",
    "CLIP_MEAN",
    "CLIP_STD",
    "ClipMeta",
    "ClipReadError",
    "CorruptFile",
    "EchoClip",
    "NotAnImage",
    "Sampling",
    "TooFewFrames",
    "TooLarge",
    "Limits",
    "UnsupportedTransferSyntax",
    "crop_and_scale",
    "estimate_sector",
    "parse_sampling",
    "preprocess_frames",
    "read_clip",
    "sector_from_regions",
]
