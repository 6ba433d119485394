"""The array inputs of the label code: numpy arrays or torch tensors, read the same way.

Why a module of its own: scoring (frame and prompt embeddings) and calibration (scores and ground
truth) both accept either, and neither should import torch for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_numpy(x: Any) -> np.ndarray:
    """Accept numpy arrays (memory maps stay unread) or torch tensors (any dtype/device)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        t = x.detach().to("cpu")
        return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()  # numpy has no bfloat16
    return np.asarray(x)
