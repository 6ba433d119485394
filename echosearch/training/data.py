"""(frame, report) pairs from a labelled archive, decoded once and kept as small uint8 frames.

Why a cache: decoding DICOM/AVI/MP4 costs ~100x more than a training step needs per frame, and every
epoch would redo it. Each clip is read once through our own reader (``video.read_clip``) and cropped
and scaled the model's way (``video.crop_and_scale``, the first half of ``preprocess_frames``); the
uint8 frames are saved next to the archive so a resumed or repeated run starts in seconds.
Normalisation (the second half) happens per batch, so one cache serves any mean/std.

An archive is a folder with ``manifest.csv`` (at least ``path`` and ``study_uid``; ``patient_id`` and
ground-truth columns when known) and ``reports.csv`` (``study_uid``, ``report``): what
``echosearch.synth`` writes, and what a site exports from its PACS and reporting system.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from echosearch.errors import UsageError
from echosearch.fsutil import atomic_path
from echosearch.video import ClipReadError, crop_and_scale, read_clip

log = logging.getLogger(__name__)

CACHE_DIR = ".echosearch-cache"


@dataclass
class ArchiveClip:
    """One clip of a labelled archive: where it is, whose it is, its study's report, its ground truth."""

    path: Path
    study_uid: str
    patient_id: str
    report: str
    row: dict[str, str] = field(default_factory=dict)


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        raise UsageError(f"{path} not found: an archive needs manifest.csv and reports.csv") from None


def load_archive(archive: str | Path) -> list[ArchiveClip]:
    """The clips of an archive that have a report, in manifest order."""
    root = Path(archive)
    if not root.is_dir():
        raise UsageError(f"archive folder not found: {root}")
    rows = _read_csv(root / "manifest.csv")
    reports = {r["study_uid"]: r["report"] for r in _read_csv(root / "reports.csv")}
    if rows and not {"path", "study_uid"} <= set(rows[0]):
        raise UsageError(f"{root / 'manifest.csv'} needs the columns path and study_uid")
    clips = [
        ArchiveClip(
            path=root / r["path"],
            study_uid=r["study_uid"],
            patient_id=r.get("patient_id") or r["study_uid"],
            report=reports[r["study_uid"]],
            row=r,
        )
        for r in rows
        if r["study_uid"] in reports
    ]
    if not clips:
        raise UsageError(f"archive {root} has no clips with a report")
    return clips


def split_sentences(report: str) -> list[str]:
    """A report's sentences (template phrases end with a period and a space or the end)."""
    return [s.strip() + "." for s in re.split(r"\.(?:\s+|$)", report.strip()) if s.strip()]


@dataclass
class FrameCache:
    """uint8 frames ``[N, F, 3, S, S]`` of N clips (F sampled frames each; ``counts`` real ones)."""

    frames: torch.Tensor
    counts: torch.Tensor
    size: int
    paths: list[str]

    def clip(self, i: int) -> torch.Tensor:
        return self.frames[i, : int(self.counts[i])]

    @classmethod
    def concat(cls, caches: Sequence[FrameCache]) -> FrameCache:
        """One cache of several archives' clips, in order (all decoded at the same size and frame count)."""
        if len(caches) == 1:
            return caches[0]
        if len({(c.size, c.frames.shape[1]) for c in caches}) > 1:
            raise ValueError("frame caches of different sizes or frame counts cannot be joined")
        return cls(
            torch.cat([c.frames for c in caches]),
            torch.cat([c.counts for c in caches]),
            caches[0].size,
            [p for c in caches for p in c.paths],
        )


def _cache_key(clips: Sequence[ArchiveClip], size: int, frames: int) -> str:
    h = hashlib.sha256(f"{size}:{frames}".encode())
    for c in clips:
        st = c.path.stat()
        h.update(f"{c.path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_frames(
    clips: Sequence[ArchiveClip],
    size: int,
    frames: int = 8,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> FrameCache:
    """Decode and crop/scale every clip once (``uniform:frames`` sampling); cached on disk by content.

    A clip shorter than ``frames`` repeats its last frame in the padding; ``counts`` says how many
    are real. An unreadable clip is an error: training on a silently shrunken archive hides problems.
    """
    key = _cache_key(clips, size, frames)
    cache_file = (cache_dir or clips[0].path.parent) / f"frames-{size}px-{frames}f-{key}.pt"
    if cache_file.is_file():
        data = torch.load(cache_file, weights_only=True)
        log.info("frames of %d clips from cache %s", len(clips), cache_file)
        return FrameCache(data["frames"], data["counts"], size, data["paths"])
    out = torch.empty((len(clips), frames, 3, size, size), dtype=torch.uint8)
    counts = torch.empty(len(clips), dtype=torch.long)
    for i, c in enumerate(tqdm(clips, desc="decoding clips", unit="clip", disable=not progress)):
        try:
            x = crop_and_scale(read_clip(c.path, sampling=f"uniform:{frames}").frames, size=size)
        except ClipReadError as exc:
            raise UsageError(f"cannot read training clip {c.path}: {exc}") from exc
        counts[i] = x.shape[0]
        out[i, : x.shape[0]] = x
        out[i, x.shape[0] :] = x[-1]
    paths = [str(c.path) for c in clips]
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_file) as tmp:
            torch.save({"frames": out, "counts": counts, "paths": paths}, tmp)
    except OSError as exc:  # a read-only archive only costs time on the next run
        log.warning("could not write frame cache %s: %s", cache_file, exc)
    return FrameCache(out, counts, size, paths)


def default_cache_dir(archive: str | Path) -> Path:
    return Path(archive) / CACHE_DIR


def normalize(frames_u8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``[..., 3, S, S]`` -> float32 model input (the second half of ``preprocess_frames``)."""
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (frames_u8.float() / 255.0 - m) / s


class PairSampler:
    """Batches of (frame, report) pairs: one study per row, a random clip of it, a random frame of that.

    Why by study: clips of one study share one report, and ClipLoss treats every other row of the
    batch as a negative; two rows with the same report would be pushed apart from their own text.
    ``sentence_keep`` < 1 trains on random subsets of a report's sentences in half the rows, so
    the text tower also learns the short, single-finding texts that queries and zero-shot prompts are.

    ``view_sentences`` (view code -> sentence, e.g. ``{"A4C": "APICAL FOUR CHAMBER VIEW."}``): a
    report describes the study, not the clip, so a view can only be learnt from text that belongs to
    the clip; with it each row's text is the drawn clip's view sentence (from its manifest ``view``)
    followed by the report or the report's subset. Clips without a known view get the report alone.
    """

    def __init__(
        self,
        clips: Sequence[ArchiveClip],
        cache: FrameCache,
        tokenizer,
        mean: Sequence[float],
        std: Sequence[float],
        sentence_keep: float = 0.5,
        augment: bool = False,
        view_sentences: Mapping[str, str] | None = None,
    ) -> None:
        self.cache, self.tokenizer, self.mean, self.std = cache, tokenizer, mean, std
        self.sentence_keep, self.augment = sentence_keep, augment
        by_study: dict[str, list[int]] = {}
        for i, c in enumerate(clips):
            by_study.setdefault(c.study_uid, []).append(i)
        self.studies = list(by_study)
        self.study_clips = [by_study[s] for s in self.studies]
        reports = [clips[idx[0]].report for idx in self.study_clips]
        self.full = tokenizer.encode_batch(reports)
        # Each sentence tokenized once: a subset's ids are its sentences' ids in order, between BOS
        # and EOS (true for the template tokenizer, phrase by phrase, and for BPE, word by word).
        special = {tokenizer.bos_id, tokenizer.eos_id, 0}
        self.sentence_ids = [
            [
                [i for i in row if i not in special]
                for row in tokenizer.encode_batch(split_sentences(r)).tolist()
            ]
            for r in reports
        ]
        self.view_ids: list[list[int]] = [[] for _ in clips]
        if view_sentences:
            views = sorted({c.row.get("view", "") for c in clips} & set(view_sentences))
            encoded = tokenizer.encode_batch([view_sentences[v] for v in views]).tolist() if views else []
            known = {v: [i for i in row if i not in special] for v, row in zip(views, encoded, strict=True)}
            self.view_ids = [known.get(c.row.get("view", ""), []) for c in clips]

    @property
    def n_studies(self) -> int:
        return len(self.studies)

    def _tokens(self, study: int, g: torch.Generator, clip: int | None = None) -> torch.Tensor:
        sents = self.sentence_ids[study]
        view = self.view_ids[clip] if clip is not None else []
        if self.sentence_keep >= 1 or len(sents) < 2 or torch.rand((), generator=g).item() < 0.5:
            if not view:
                return self.full[study]
            keep = torch.ones(len(sents), dtype=torch.bool)
        else:
            keep = torch.rand(len(sents), generator=g) < self.sentence_keep
            if not keep.any():
                keep[torch.randint(len(sents), (), generator=g)] = True
        ids = view + [i for s, k in zip(sents, keep.tolist(), strict=True) if k for i in s]
        n = self.full.shape[1]
        ids = [self.tokenizer.bos_id, *ids[: n - 2], self.tokenizer.eos_id]
        return torch.tensor(ids + [0] * (n - len(ids)), dtype=self.full.dtype)

    def batch(self, studies: Sequence[int], g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[B,3,S,S]`` (normalised float32) and tokens ``[B, context_length]``."""
        rows = []
        for s in studies:
            options = self.study_clips[s]
            clip = options[int(torch.randint(len(options), (), generator=g))]
            rows.append((clip, int(torch.randint(int(self.cache.counts[clip]), (), generator=g))))
        clip_idx = torch.tensor([r[0] for r in rows])
        frame_idx = torch.tensor([r[1] for r in rows])
        frames = self.cache.frames[clip_idx, frame_idx]
        if self.augment:
            frames = augment_frames(frames, g)
        images = normalize(frames, self.mean, self.std)
        return images, torch.stack([self._tokens(s, g, r[0]) for s, r in zip(studies, rows, strict=True)])


def augment_frames(frames: torch.Tensor, g: torch.Generator, min_scale: float = 0.75) -> torch.Tensor:
    """Random crop (75-100% of the side, anywhere) resized back, and a random gain, per row.

    Why: with few patients, a model can match frames to reports by recognising the patient (the
    heart's position, size and tilt persist across studies) instead of seeing the findings; moving
    and scaling the heart and changing the gain takes that shortcut away while keeping the findings.
    """
    n, _, size, _ = frames.shape
    out = torch.empty_like(frames)
    scales = min_scale + (1 - min_scale) * torch.rand(n, generator=g)
    gains = 0.8 + 0.4 * torch.rand(n, generator=g)
    for i in range(n):
        side = max(8, int(size * float(scales[i])))
        y, x = (int(v) for v in torch.randint(size - side + 1, (2,), generator=g))
        crop = frames[i : i + 1, :, y : y + side, x : x + side].float()
        crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)
        out[i] = (crop[0] * gains[i]).round_().clamp_(0, 255).to(torch.uint8)
    return out


def study_order(n_studies: int, epoch: int, seed: int) -> np.ndarray:
    """The shuffled study order of one epoch, a pure function of (seed, epoch) so a resume repeats it."""
    return np.random.default_rng([seed, epoch]).permutation(n_studies)
