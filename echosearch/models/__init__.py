"""Model bundles, the registry, loading through open_clip, and the encoder.

``load_model("echoclip-r")`` -> :class:`Encoder` with ``encode_frames``, ``encode_clips``,
``encode_text`` and ``preprocess_cfg``; ``resolve_bundle`` / ``list_models`` for the registry.
"""

from echosearch.models.bundle import (
    BundleError,
    ChecksumError,
    Manifest,
    ModelBundle,
    open_bundle,
    write_bundle,
)
from echosearch.models.encoder import Encoder, load_model
from echosearch.models.registry import list_models, resolve_bundle

__all__ = [
    "BundleError",
    "ChecksumError",
    "Encoder",
    "Manifest",
    "ModelBundle",
    "list_models",
    "load_model",
    "open_bundle",
    "resolve_bundle",
    "write_bundle",
]
