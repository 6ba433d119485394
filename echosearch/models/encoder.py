"""The encoder: frames -> frame embeddings -> clip embedding, and text -> embedding.

Why a wrapper around the open_clip model: every caller (indexer, search, zero-shot, UI) needs the
same recipe -- L2-normalised frame embeddings, the clip embedding as the normalised mean of the
normalised frame embeddings (EchoCLIP's recipe), text through the bundle's own tokenizer -- and the
same speed choices (bf16 where the hardware has it, channels_last, inference mode, bounded batches).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from echosearch.models.bundle import ModelBundle
from echosearch.models.precision import configure_threads, resolve_device, resolve_precision, torch_dtype
from echosearch.models.registry import resolve_bundle

log = logging.getLogger(__name__)

CPU_BATCH = 32
CUDA_BATCH = 256
TEXT_BATCH = 256


def _as_tensor(x: Any) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else torch.as_tensor(x)


class Encoder:
    """Embeds preprocessed frames and text with one model bundle on one device at one precision.

    Outputs are float32 CPU tensors, L2-normalised, whatever the device and precision used inside.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        bundle: ModelBundle,
        device: torch.device,
        precision: str,
        batch_size: int | None = None,
    ) -> None:
        self.model = model
        self.bundle = bundle
        self.device = device
        self.precision = precision
        self.dtype = torch_dtype(precision)
        self.batch_size = batch_size or (CUDA_BATCH if device.type == "cuda" else CPU_BATCH)
        self._tokenizer = None

    # -- identity -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def dim(self) -> int:
        return int(self.bundle.model_cfg["embed_dim"])

    @property
    def preprocess_cfg(self) -> dict[str, Any]:
        """size, mean, std (and interpolation, resize_mode) for ``video.preprocess_frames``."""
        return self.bundle.preprocess_cfg

    @property
    def tokenizer(self):
        """The bundle's tokenizer (echosearch.tokenizers), loaded on first use."""
        if self._tokenizer is None:
            from echosearch.tokenizers import load_tokenizer

            self._tokenizer = load_tokenizer(
                self.bundle.tokenizer_spec,
                base_dir=self.bundle.path,
                context_length=self.bundle.context_length,
            )
        return self._tokenizer

    def __repr__(self) -> str:
        return f"Encoder({self.name!r}, device={self.device}, precision={self.precision}, dim={self.dim})"

    # -- images ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_frames(self, x: Any) -> torch.Tensor:
        """[N,3,H,W] preprocessed float frames -> [N,D] normalised embeddings (batched to bound memory)."""
        x = _as_tensor(x)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"encode_frames expects [N,3,H,W], got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return torch.zeros(0, self.dim)
        out = []
        for chunk in torch.split(x, self.batch_size):
            chunk = chunk.to(self.device, self.dtype, non_blocking=True).contiguous(
                memory_format=torch.channels_last
            )
            emb = self.model.encode_image(chunk)
            out.append(F.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out)

    def encode_clips(self, clips: Sequence[Any]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Clips of [F,3,H,W] -> (per-clip [F,D] frame embeddings, [B,D] clip embeddings).

        All frames go through the model together (full batches across clip boundaries); a clip's
        embedding is normalise(mean of its normalised frame embeddings).
        """
        clips = [_as_tensor(c) for c in clips]
        if not clips:
            return [], torch.zeros(0, self.dim)
        if any(c.shape[0] == 0 for c in clips):
            raise ValueError("encode_clips got a clip with no frames")
        frames = self.encode_frames(torch.cat(clips))
        per_clip = list(torch.split(frames, [c.shape[0] for c in clips]))
        clip_embs = F.normalize(torch.stack([f.mean(0) for f in per_clip]), dim=-1)
        return per_clip, clip_embs

    # -- text -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """[M, context_length] token ids -> [M,D] normalised embeddings."""
        if tokens.shape[0] == 0:
            return torch.zeros(0, self.dim)
        out = []
        for chunk in torch.split(tokens, TEXT_BATCH):
            emb = encode_text_trimmed(self.model, chunk.to(self.device))
            out.append(F.normalize(emb.float(), dim=-1).cpu())
        return torch.cat(out)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> [M,D] normalised embeddings through the bundle's tokenizer."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return torch.zeros(0, self.dim)
        return self.encode_tokens(self.tokenizer.encode_batch(list(texts)))


def encode_text_trimmed(model: torch.nn.Module, text: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` computed only up to the last pooled (EOS) position of the batch.

    CLIP's text tower is causal: a token's output never depends on the tokens after it, and the
    text embedding is read at the EOS position. So the padding after the longest sequence of the
    batch can be dropped with bit-for-bit the same maths: a 10-token query costs ~1/7 of the full
    77-token pass. Models that are not causal open_clip CLIPs take the normal path.
    """
    pool = getattr(model, "text_pool_type", None)
    mask = getattr(model, "attn_mask", None)
    if mask is None or pool not in ("argmax", "eos") or not hasattr(model, "positional_embedding"):
        return model.encode_text(text)
    if pool == "argmax":
        positions = text.argmax(dim=-1)
    else:
        positions = (text == model.text_eos_id).int().argmax(dim=-1)
    length = int(positions.max()) + 1
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(text[:, :length]).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), positions]
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def build_model(bundle: ModelBundle) -> torch.nn.Module:
    """The open_clip model of a bundle in fp32 on CPU: ``local-dir:`` for a folder, random init for arch."""
    import open_clip

    if bundle.path is None:
        return open_clip.CLIP(**bundle.model_cfg)
    if bundle.weights_path is None:
        from echosearch.models.bundle import BundleError

        raise BundleError(f"bundle {bundle.path} has no weights file")
    return open_clip.create_model(f"local-dir:{os.fspath(bundle.path)}", device="cpu", weights_only=True)


def load_model(
    name_or_path: str | os.PathLike,
    device: str | torch.device = "auto",
    precision: str = "auto",
    *,
    registry: str | os.PathLike | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    verify: bool = True,
) -> Encoder:
    """Load a bundle (registry name, folder, or ``arch:echoclip``) as an :class:`Encoder`.

    ``device`` auto: CUDA if present else CPU. ``precision`` auto: bf16 on CUDA or a CPU with
    AMX/AVX512-BF16, fp32 otherwise. ``threads``: CPU intra-op threads (default: usable cores).
    """
    bundle = resolve_bundle(name_or_path, registry=registry, verify=verify)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if dev.type == "cpu":
        configure_threads(threads)
    model = build_model(bundle).eval().requires_grad_(False)
    model = model.to(dev, dtype=torch_dtype(prec))
    model.visual.to(memory_format=torch.channels_last)
    log.info("loaded %s on %s at %s", bundle.name, dev, prec)
    return Encoder(model, bundle, dev, prec, batch_size=batch_size)
