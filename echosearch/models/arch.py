"""EchoCLIP's architecture as data: the open_clip ``model_cfg`` / ``preprocess_cfg`` of its hub config.

Why here: benchmarks and speed tests need the real ConvNeXt-Base network without the weights (which
cannot be downloaded everywhere), so ``load_model("arch:echoclip")`` builds it with random weights
from these dicts, exactly as open_clip would from the hub's ``open_clip_config.json``.
"""

from __future__ import annotations

import copy
from typing import Any

from echosearch.errors import UsageError

ARCH_PREFIX = "arch:"

#: OpenAI CLIP normalisation, which EchoCLIP keeps.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: CLIP's BPE vocabulary size (EchoCLIP keeps the CLIP text tower).
CLIP_BPE_VOCAB_SIZE = 49408

#: EchoCLIP-R's template vocabulary: ids 0..908 (EOS is 908); the hub config carries the real number.
TEMPLATE_VOCAB_SIZE = 909


def echoclip_model_cfg(
    vocab_size: int = CLIP_BPE_VOCAB_SIZE,
    context_length: int = 77,
    image_size: int = 224,
    timm_model_name: str = "convnext_base",
    embed_dim: int = 512,
    text_width: int = 512,
    text_heads: int = 8,
    text_layers: int = 12,
) -> dict[str, Any]:
    """open_clip ``model_cfg`` of EchoCLIP (ConvNeXt-Base via timm + CLIP text transformer).

    The keyword arguments let tests build the same shape with tiny widths.
    """
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {
            "timm_model_name": timm_model_name,
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "timm_drop": 0.0,
            "timm_drop_path": 0.1,
            "image_size": image_size,
        },
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": vocab_size,
            "width": text_width,
            "heads": text_heads,
            "layers": text_layers,
        },
    }


def echoclip_preprocess_cfg(image_size: int = 224) -> dict[str, Any]:
    """open_clip ``preprocess_cfg`` matching :func:`echoclip_model_cfg`."""
    return {
        "size": image_size,
        "mean": list(CLIP_MEAN),
        "std": list(CLIP_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }


def tiny_model_cfg(
    vocab_size: int = CLIP_BPE_VOCAB_SIZE, image_size: int = 64, embed_dim: int = 32
) -> dict[str, Any]:
    """EchoCLIP's shape at toy size (timm ConvNeXt-Atto, 1-layer text tower): for fast tests."""
    return echoclip_model_cfg(
        vocab_size=vocab_size,
        image_size=image_size,
        timm_model_name="convnext_atto",
        embed_dim=embed_dim,
        text_width=32,
        text_heads=2,
        text_layers=1,
    )


#: Architectures constructible with random weights: name -> (model_cfg, tokenizer spec).
_ARCHS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "echoclip": (echoclip_model_cfg(), {"kind": "clip-bpe"}),
    "echoclip-r": (echoclip_model_cfg(vocab_size=TEMPLATE_VOCAB_SIZE), {"kind": "template"}),
    "tiny": (tiny_model_cfg(), {"kind": "clip-bpe"}),
}


def is_arch(name: str) -> bool:
    return str(name).startswith(ARCH_PREFIX)


def list_archs() -> list[str]:
    return [ARCH_PREFIX + k for k in _ARCHS]


def arch_config(name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(model_cfg, preprocess_cfg, tokenizer_spec)`` for ``arch:NAME`` (deep copies: callers may edit)."""
    key = name[len(ARCH_PREFIX) :] if is_arch(name) else name
    if key not in _ARCHS:
        raise UsageError(f"unknown architecture {name!r}; known: {', '.join(list_archs())}")
    model_cfg, tok = _ARCHS[key]
    image_size = model_cfg["vision_cfg"]["image_size"]
    return copy.deepcopy(model_cfg), echoclip_preprocess_cfg(image_size), dict(tok)
