"""Mapper: read clips -> frame and clip embeddings (one batched model call across clips) + zero-shot labels.

Clips are batched across file boundaries: the frames of several clips go through the model in
full batches (``Encoder.encode_clips``), in bf16 where the CPU/GPU supports it. The readers hand
over uint8 frames, normalised here for the whole batch at once. Zero-shot labels are computed from
the same frame embeddings with the model's tasks; prompt embeddings are encoded once per run and
cached, and clips are grouped by frame count because ``score_tasks`` needs one ``F`` per call.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from echosearch.indexer.reader import ReadResult
from echosearch.labels.encoding import Row, result_rows
from echosearch.labels.scoring import score_tasks
from echosearch.labels.tasks import Task
from echosearch.models import Encoder

log = logging.getLogger(__name__)


@dataclass
class Embedded:
    """One clip after the model: its read result, frame embeddings [F,D], clip embedding [D], labels.

    ``labels`` are rows ``(task, value, category)`` (see :mod:`echosearch.labels.encoding`).
    """

    read: ReadResult
    frame_embs: np.ndarray
    clip_emb: np.ndarray
    labels: list[Row] = field(default_factory=list)
    view: str | None = None


class TextCache:
    """``encode_text`` with a per-run cache: every zero-shot prompt is embedded once, not per batch."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if new:
            embs = self.encoder.encode_text(new).float().numpy()
            self._cache.update(zip(new, embs, strict=True))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.encoder.dim))


class LocalEmbedding:
    """The local engine's encoders: one :class:`Mapper` in this process, batch by batch. The Ray
    engine's :class:`~echosearch.indexer.ray_engine.RayEmbedding` has the same three methods."""

    def __init__(self, mapper: Mapper) -> None:
        self.mapper = mapper
        self._done: list[list[Embedded]] = []

    def submit(self, reads: Sequence[ReadResult]) -> None:
        self._done.append(self.mapper.embed(reads))

    def ready(self, wait_all: bool = False) -> list[list[Embedded]]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        pass


class Mapper:
    """Embeds batches of read clips with one encoder and labels them with the model's tasks."""

    def __init__(
        self,
        encoder: Encoder,
        tasks: Sequence[Task] = (),
        thresholds: dict[str, float] | None = None,
    ) -> None:
        self.encoder = encoder
        self.tasks = list(tasks)
        self.thresholds = dict(thresholds or {})
        self.text = TextCache(encoder)
        cfg = encoder.preprocess_cfg
        self._mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1) * 255.0

    def _normalise(self, frames_u8: np.ndarray) -> torch.Tensor:
        """uint8 [F,3,S,S] -> the model's normalised float input (same maths as preprocess_frames)."""
        x = torch.from_numpy(frames_u8).float()
        return x.sub_(self._mean).div_(self._std)

    def embed(self, reads: Sequence[ReadResult]) -> list[Embedded]:
        """All frames of all ``reads`` through the model together; then zero-shot labels."""
        if not reads:
            return []
        clips = [self._normalise(r.frames) for r in reads]
        per_clip, clip_embs = self.encoder.encode_clips(clips)
        out = [
            Embedded(read=r, frame_embs=f.numpy(), clip_emb=c.numpy())
            for r, f, c in zip(reads, per_clip, clip_embs, strict=True)
        ]
        if self.tasks:
            self._label(out)
        return out

    def _label(self, items: list[Embedded]) -> None:
        by_frames: dict[int, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            by_frames[item.frame_embs.shape[0]].append(i)
        for rows in by_frames.values():
            stacked = np.stack([items[i].frame_embs for i in rows])
            results = score_tasks(self.tasks, stacked, self.text, self.thresholds)
            for j, i in enumerate(rows):
                items[i].labels, items[i].view = result_rows(results, j)
