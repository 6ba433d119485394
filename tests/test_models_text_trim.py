"""The trimmed text pass gives the same embeddings as open_clip's full 77-token pass."""

from __future__ import annotations

import open_clip
import torch

from echosearch.models.arch import tiny_model_cfg
from echosearch.models.encoder import encode_text_trimmed


def test_trimmed_text_pass_equals_full_pass():
    torch.manual_seed(0)
    model = open_clip.CLIP(**tiny_model_cfg(image_size=32)).eval()
    tokens = open_clip.tokenize(
        ["pacer lead", "severe dilated left ventricle with a very long tail of words", ""]
    )
    with torch.inference_mode():
        full = model.encode_text(tokens)
        trimmed = encode_text_trimmed(model, tokens)
    assert torch.allclose(full, trimmed, atol=1e-5)
