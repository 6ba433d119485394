"""Model bundles, the registry, loading through open_clip, and the encoder.

``load_model("echoclip-r")`` -> :class:`Encoder` with ``encode_frames``, ``encode_clips``,
``encode_text`` and ``preprocess_cfg``; ``resolve_bundle`` / ``list_models`` for the registry.
The encoder (and so torch and open_clip) is imported on first use of ``Encoder`` or ``load_model``:
reading the registry and a bundle's manifest (is it a clinical model?) stays cheap.
"""

from echosearch.models.bundle import (
    BundleError,
    ChecksumError,
    Manifest,
    ModelBundle,
    open_bundle,
    write_bundle,
)
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


def __getattr__(name: str):
    if name in ("Encoder", "load_model"):
        from echosearch.models import encoder

        return getattr(encoder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
