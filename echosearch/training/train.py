"""Contrastive (frame, report) training with open_clip's model and ``ClipLoss``; writes a model bundle.

One code path for both uses: training the small demo model from scratch (``arch:echosearch-demo``)
and fine-tuning a pulled bundle (``--init echoclip``) on a hospital's own clips and reports.

Determinism and resume: every random choice of step ``t`` (which studies, clips, frames, sentences,
drop-path masks) is drawn from generators seeded by ``(seed, t)``, and the study order of an epoch by
``(seed, epoch)``. A checkpoint therefore only needs the weights, the optimiser and the step: a
resumed run replays exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from echosearch.errors import UsageError
from echosearch.fsutil import atomic_path
from echosearch.labels.tasks import load_tasks
from echosearch.models import Manifest, write_bundle
from echosearch.models.arch import echoclip_model_cfg, echoclip_preprocess_cfg
from echosearch.paths import cache_dir, configs_dir, package_data
from echosearch.training.data import (
    ArchiveClip,
    FrameCache,
    PairSampler,
    default_cache_dir,
    load_archive,
    load_frames,
    study_order,
)

log = logging.getLogger(__name__)

DEMO_ARCH = "arch:echosearch-demo"
DEMO_IMAGE_SIZE = 112
#: The demo reports are at most ~30 template tokens; a 77-token context would cost 2.4x the text-tower
#: compute for padding (the transformer runs over the whole context), the larger part of a CPU step.
DEMO_CONTEXT = 32
VOCAB_NAME = "template_vocab.txt"
TASKS_NAME = "tasks.yaml"
CHECKPOINT = "checkpoint.pt"
MAX_LOGIT_SCALE = math.log(100.0)


def demo_model_cfg(
    vocab_size: int, image_size: int = DEMO_IMAGE_SIZE, context_length: int = DEMO_CONTEXT
) -> dict[str, Any]:
    """The demo architecture: EchoCLIP's shape at small size (ConvNeXt-Atto at 112 px, 4x256 text)."""
    return echoclip_model_cfg(
        vocab_size=vocab_size,
        context_length=context_length,
        image_size=image_size,
        timm_model_name="convnext_atto",
        embed_dim=256,
        text_width=256,
        text_heads=4,
        text_layers=4,
    )


def demo_tasks_path() -> Path:
    return configs_dir() / "tasks" / "demo.yaml"


@dataclass
class TrainConfig:
    """Everything that determines a run (recorded in the bundle's manifest)."""

    archive: Path | Sequence[Path]  # one labelled archive, or several trained on as one
    out: Path
    init: str = DEMO_ARCH
    epochs: int = 10
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup: float = 0.05  # fraction of the steps
    seed: int = 0
    frames: int = 8  # frames decoded per clip for training
    sentence_keep: float = 0.5
    augment: bool = False  # random crop + gain per row (see data.augment_frames)
    image_size: int = DEMO_IMAGE_SIZE  # only for arch:echosearch-demo
    context_length: int = DEMO_CONTEXT  # only for arch:echosearch-demo
    arch_overrides: dict[str, Any] | None = None  # merged into the demo model_cfg (tests shrink it)
    max_steps: int | None = None
    resume: bool = False
    force: bool = False
    work_dir: Path | None = None
    checkpoint_every: int = 25
    weights_dtype: str = "fp32"  # fp16 halves the bundle (the demo model ships so)
    name: str | None = None
    version: str = "0.1.0"
    device: str = "auto"
    progress: bool = True
    tasks: Path | None = None
    grad_clip: float | None = 1.0  # max gradient norm: small CLIPs from scratch collapse after a spike
    amp: str = "auto"  # bf16 autocast: "auto" = on CUDA only (see train_step), "bf16", "none"
    max_minutes: float | None = None  # wall-clock guard: stop early (checkpointed), still write the bundle
    # each clip's view sentence before its study's report: None = when an archive has views beyond the
    # synthetic default A4C/PLAX (archives like the shipped model's train exactly as before)
    view_text: bool | None = None
    # start the image tower (visual.*) from this bundle's weights, the text tower as ``init`` says
    init_image: str | None = None
    # start the text tower from this template bundle's, its token rows mapped by token text onto the new
    # (grown) vocabulary; tokens it lacks start at the mean of its rows
    init_text: str | None = None
    tokenizer: str = "template"  # arch:echosearch-demo only: "template" (demo vocabulary) or "clip-bpe"

    def archives(self) -> list[Path]:
        """The training archives (``archive`` may name one or several); the same folder twice is an error."""
        paths = (
            [Path(self.archive)] if isinstance(self.archive, (str, Path)) else [Path(a) for a in self.archive]
        )
        if not paths:
            raise UsageError("no training archive given")
        if len({p.resolve() for p in paths}) < len(paths):
            raise UsageError("the same archive is given twice: its studies would be counted twice")
        return paths

    def work(self) -> Path:
        if self.work_dir is not None:
            return Path(self.work_dir)
        tag = hashlib.sha256(str(Path(self.out).resolve()).encode()).hexdigest()[:8]
        return cache_dir() / "train" / f"{Path(self.out).name}-{tag}"


@dataclass
class TrainResult:
    out: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    seconds_per_step: float = 0.0
    resumed_from: int = 0
    planned_steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        d["final_loss"] = self.losses[-1] if self.losses else None
        d.pop("losses")
        return d


@dataclass
class Start:
    """What training starts from: the model and everything the output bundle must carry besides weights."""

    model: torch.nn.Module
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    tokenizer: Any
    tokenizer_spec: dict[str, Any]
    files: dict[str, Path]  # bundle file name -> source (tokenizer files, task file)
    tasks: dict[str, str] | None
    init_label: str  # what the weights started from, as the new manifest names it
    license: str  # ours when trained from scratch, else the init model's: the weights derive from it
    init_image_label: str | None = None  # the bundle the image tower started from (--init-image)
    init_text_label: str | None = None  # the bundle the text tower started from (--init-text)


def _demo_start(cfg: TrainConfig) -> Start:
    import open_clip

    from echosearch.tokenizers import ClipBPETokenizer, TemplateTokenizer

    tasks_src = Path(cfg.tasks) if cfg.tasks else demo_tasks_path()
    if cfg.tokenizer == "template":
        # No WordPiece file: the template tokenizer builds its blank base in code, so the bundle ships
        # only our own vocabulary (the reference base file must not be redistributed).
        vocab = package_data() / "demo_vocab" / "template_vocab.txt"
        tokenizer: Any = TemplateTokenizer.from_files(None, vocab, context_length=cfg.context_length)
        spec: dict[str, Any] = {"kind": "template", "vocab": VOCAB_NAME}
        files = {VOCAB_NAME: vocab, TASKS_NAME: tasks_src}
    elif cfg.tokenizer == "clip-bpe":
        # EchoCLIP's tokenizer: open_clip ships its merges, so the bundle carries no tokenizer file.
        tokenizer = ClipBPETokenizer(context_length=cfg.context_length)
        spec, files = {"kind": "clip-bpe"}, {TASKS_NAME: tasks_src}
    else:
        raise UsageError(f"unknown tokenizer {cfg.tokenizer!r}; choose template or clip-bpe")
    model_cfg = demo_model_cfg(tokenizer.vocab_size, cfg.image_size, cfg.context_length)
    for key, value in (cfg.arch_overrides or {}).items():
        model_cfg[key] = {**model_cfg[key], **value} if isinstance(value, dict) else value
    torch.manual_seed(cfg.seed)
    return Start(
        model=open_clip.CLIP(**model_cfg),
        model_cfg=model_cfg,
        preprocess_cfg=echoclip_preprocess_cfg(cfg.image_size),
        tokenizer=tokenizer,
        tokenizer_spec=spec,
        files=files,
        tasks={"file": TASKS_NAME, "format": "echosearch"},
        init_label=DEMO_ARCH,
        license="MIT (trained by echosearch on synthetic data)",
    )


def _bundle_start(cfg: TrainConfig) -> Start:
    """Fine-tuning: the pulled (or any) bundle's weights, tokenizer files and tasks; a new model's manifest."""
    import open_clip

    from echosearch.models.encoder import build_model
    from echosearch.models.registry import resolve_bundle
    from echosearch.tokenizers import load_tokenizer

    bundle = resolve_bundle(cfg.init)
    torch.manual_seed(cfg.seed)
    model = build_model(bundle) if bundle.path is not None else open_clip.CLIP(**bundle.model_cfg)
    spec = bundle.tokenizer_spec
    tokenizer = load_tokenizer(spec, base_dir=bundle.path, context_length=bundle.context_length)
    files = {v: bundle.path / v for k, v in spec.items() if k != "kind" and bundle.path is not None}
    tasks = dict(bundle.manifest.tasks) if bundle.manifest.tasks and bundle.path is not None else None
    if cfg.tasks:
        tasks = {"file": TASKS_NAME, "format": "echosearch"}
        files[TASKS_NAME] = Path(cfg.tasks)
    elif tasks:
        files[tasks["file"]] = bundle.path / tasks["file"]
    # Name the init model by name and version, not by the local folder it was read from.
    label = f"{bundle.name} {bundle.version}".strip()
    return Start(model, bundle.model_cfg, dict(bundle.open_clip_config.get("preprocess_cfg", {})),
                 tokenizer, spec, files, tasks, label, bundle.manifest.license)  # fmt: skip


def prepare_start(cfg: TrainConfig) -> Start:
    if cfg.tasks:
        load_tasks(cfg.tasks)  # a broken task file fails now, not when the trained bundle first loads
    if cfg.init != DEMO_ARCH and cfg.tokenizer != "template":
        raise UsageError("--tokenizer applies to arch:echosearch-demo; a bundle to fine-tune brings its own")
    start = _demo_start(cfg) if cfg.init == DEMO_ARCH else _bundle_start(cfg)
    if cfg.init_image:
        start.init_image_label = load_image_tower(start.model, cfg.init_image)
    if cfg.init_text:
        start.init_text_label = load_text_tower(start.model, start.tokenizer, cfg.init_text)
    return start


def _bundle_state(name_or_path: str, option: str):
    from safetensors.torch import load_file

    from echosearch.models.registry import resolve_bundle

    bundle = resolve_bundle(name_or_path)
    weights = bundle.weights_path
    if bundle.path is None or weights is None:
        raise UsageError(f"{option} {name_or_path}: not a bundle with weights")
    if weights.suffix == ".safetensors":
        return bundle, load_file(weights)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return bundle, state.get("state_dict", state)


def _token_texts(tokenizer) -> dict[str, int]:
    """Template tokenizer: token text -> id, for phrases, value tokens, BOS and EOS."""
    texts = {t: i for i, t in tokenizer._token_text.items()}
    texts.update({"<value>" + t: i for i, t in tokenizer._variable_text.items()})
    texts.update({"<bos>": tokenizer.bos_id, "<eos>": tokenizer.eos_id})
    return texts


def load_text_tower(model: torch.nn.Module, tokenizer, name_or_path: str) -> str:
    """Copy a template bundle's text tower into ``model``, its token rows moved to the new vocabulary's ids.

    Why: the demo vocabulary grew by phrases inserted before the value tokens, so every value, BOS and
    EOS id moved; copying the embedding row by row under the token's text keeps what the earlier
    model learnt of every old token, and only the new phrases start untrained (at the mean row).
    """
    from echosearch.tokenizers import TemplateTokenizer, load_tokenizer

    bundle, state = _bundle_state(name_or_path, "--init-text")
    label = f"{bundle.name} {bundle.version}".strip()
    if not isinstance(tokenizer, TemplateTokenizer) or bundle.tokenizer_spec.get("kind") != "template":
        raise UsageError(f"--init-text {label}: both models must use a template tokenizer")
    old = load_tokenizer(bundle.tokenizer_spec, base_dir=bundle.path, context_length=bundle.context_length)
    ours = model.state_dict()
    text_keys = [k for k in ours if not k.startswith("visual.") and k != "logit_scale"]
    for key in text_keys:
        if key not in state:
            raise UsageError(f"--init-text {label}: its text tower has no {key}")
        if key != "token_embedding.weight" and state[key].shape != ours[key].shape:
            raise UsageError(f"--init-text {label}: text tower shapes differ at {key} "
                             f"({tuple(state[key].shape)} there, {tuple(ours[key].shape)} here)")  # fmt: skip
    old_rows = state["token_embedding.weight"].float()
    new_ids, old_ids = _token_texts(tokenizer), _token_texts(old)
    with torch.no_grad():
        for key in text_keys:
            if key != "token_embedding.weight":
                ours[key].copy_(state[key].to(ours[key].dtype))
        emb = ours["token_embedding.weight"]
        emb.copy_(old_rows.mean(0, keepdim=True).expand_as(emb))
        moved = 0
        for text, i in new_ids.items():
            j = old_ids.get(text)
            if j is not None and j < old_rows.shape[0] and i < emb.shape[0]:
                emb[i] = old_rows[j]
                moved += 1
        if "logit_scale" in state:
            ours["logit_scale"].copy_(state["logit_scale"].float())
    log.info("text tower from %s: %d of %d token rows carried over", label, moved, emb.shape[0])
    return label


def load_image_tower(model: torch.nn.Module, name_or_path: str) -> str:
    """Copy a bundle's image tower (every ``visual.*`` weight) into ``model``; returns the bundle's label.

    Why: a new text tower (a grown template vocabulary has new token ids; a BPE model has another
    tokenizer altogether) need not cost the image tower's training too: the image tower starts where
    an earlier model left it and the text tower learns to meet it. The towers must have the same
    shapes (same timm model, image size and embedding width); anything else is a clear error.
    """
    from safetensors.torch import load_file

    from echosearch.models.registry import resolve_bundle

    bundle = resolve_bundle(name_or_path)
    weights = bundle.weights_path
    if bundle.path is None or weights is None:
        raise UsageError(f"--init-image {name_or_path}: not a bundle with weights")
    if weights.suffix == ".safetensors":
        state = load_file(weights)
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    theirs = {k: v for k, v in state.items() if k.startswith("visual.")}
    ours = {k: v for k, v in model.state_dict().items() if k.startswith("visual.")}
    label = f"{bundle.name} {bundle.version}".strip()
    if set(theirs) != set(ours):
        diff = sorted(set(theirs) ^ set(ours))
        raise UsageError(f"--init-image {label}: its image tower is another architecture "
                         f"({len(diff)} weights differ in name, e.g. {diff[0]})")  # fmt: skip
    for key, value in ours.items():
        if theirs[key].shape != value.shape:
            raise UsageError(f"--init-image {label}: image tower shapes differ at {key} "
                             f"({tuple(theirs[key].shape)} there, {tuple(value.shape)} here)")  # fmt: skip
    with torch.no_grad():
        for key, value in ours.items():
            value.copy_(theirs[key].to(value.dtype))
    log.info("image tower from %s (%d tensors); text tower from %s", label, len(ours), "the start model")
    return label


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only, not on norms, biases, embeddings' scale or the logit scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        flat = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if flat else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_lambda(total: int, warmup: int) -> Callable[[int], float]:
    """Linear warmup to 1, then cosine decay to 0 at ``total``."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def _device(cfg: TrainConfig) -> torch.device:
    from echosearch.models.precision import resolve_device

    return resolve_device(cfg.device)


def use_autocast(amp: str, device: torch.device) -> bool:
    """bf16 autocast on CUDA; on CPU only when asked.

    Measured on this project's 2-core AMX CPU (demo model, batch 32, 112 px): a training step took
    23 s under bf16 autocast and 2.4 s in fp32 -- the backward of ConvNeXt's depthwise convolutions
    in bf16 is far slower there -- while inference in bf16 is faster (see models.precision).
    """
    if amp not in ("auto", "bf16", "none"):
        raise UsageError(f"unknown --amp {amp!r}; choose auto, bf16 or none")
    return amp == "bf16" or (amp == "auto" and device.type == "cuda")


def train_step(
    model,
    loss_fn,
    optimizer,
    scheduler,
    images,
    tokens,
    device,
    bf16: bool = False,
    grad_clip: float | None = None,
) -> float:
    """One AdamW step on one batch (under bf16 autocast when ``bf16``); returns the loss."""
    model.train()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        img, txt, scale = model(images.to(device), tokens.to(device))[:3]
        loss = loss_fn(img.float(), txt.float(), scale.float())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
    return float(loss.detach())


def _save_checkpoint(path: Path, model, optimizer, scheduler, step: int, losses: list[float]) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "losses": losses,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def train(cfg: TrainConfig) -> TrainResult:
    """Train (or resume) and write the bundle at ``cfg.out``."""
    import open_clip

    out = Path(cfg.out)
    if out.exists() and not cfg.force:
        raise UsageError(f"{out} already exists; choose another --out or pass --force to replace it")
    work = cfg.work()
    work.mkdir(parents=True, exist_ok=True)
    ckpt_path = work / CHECKPOINT
    if ckpt_path.exists() and not cfg.resume:
        raise UsageError(f"a checkpoint of an earlier run exists in {work}; pass --resume to continue it")
    start = prepare_start(cfg)
    device = _device(cfg)
    model = start.model.to(device)
    pre = start.preprocess_cfg
    size = int(pre.get("size", start.model_cfg["vision_cfg"].get("image_size", 224)))
    clips, cache = _load_training_clips(cfg, size)
    from echosearch.video import CLIP_MEAN, CLIP_STD

    _warn_unread_text(start.tokenizer, clips)
    sampler = PairSampler(clips, cache, start.tokenizer, pre.get("mean", CLIP_MEAN), pre.get("std", CLIP_STD),
                          cfg.sentence_keep, cfg.augment, view_sentences(cfg, clips))  # fmt: skip
    batch = min(cfg.batch_size, sampler.n_studies)
    if batch < 2:
        raise UsageError("contrastive training needs at least 2 studies with reports")
    per_epoch = max(1, sampler.n_studies // batch)
    total = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * per_epoch
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total, max(1, int(cfg.warmup * total)))
    )
    loss_fn = open_clip.loss.ClipLoss()
    bf16 = use_autocast(cfg.amp, device)
    first, losses = 0, []
    if cfg.resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        first, losses = int(state["step"]), list(state["losses"])
        log.info("resumed from step %d of %d (%s)", first, total, ckpt_path)
    log.info("training %d steps (%d per epoch, batch %d) on %d clips of %d studies; checkpoints in %s",
             total, per_epoch, batch, len(clips), sampler.n_studies, work)  # fmt: skip
    t0 = time.perf_counter()
    bar = tqdm(range(first, total), initial=first, total=total, desc="training", disable=not cfg.progress)
    for step in bar:
        epoch, k = divmod(step, per_epoch)
        studies = study_order(sampler.n_studies, epoch, cfg.seed)[k * batch : (k + 1) * batch]
        g = _step_generator(cfg.seed, step)
        images, tokens = sampler.batch(studies.tolist(), g)
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # drop-path masks
        loss = train_step(model, loss_fn, optimizer, scheduler, images, tokens, device, bf16, cfg.grad_clip)
        losses.append(loss)
        bar.set_postfix(loss=f"{loss:.3f}", epoch=epoch)
        _log_step(work, step, epoch, loss, scheduler.get_last_lr()[0])
        out_of_time = cfg.max_minutes is not None and time.perf_counter() - t0 > 60 * cfg.max_minutes
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total or out_of_time:
            _save_checkpoint(ckpt_path, model, optimizer, scheduler, step + 1, losses)
        if out_of_time and step + 1 < total:
            log.warning("stopping after %d of %d steps (--max-minutes %g); --resume continues", step + 1,
                        total, cfg.max_minutes)  # fmt: skip
            break
    seconds = time.perf_counter() - t0
    done = max(0, len(losses) - first)
    result = TrainResult(out, len(losses), losses, seconds, seconds / done if done else 0.0, first)
    result.planned_steps = total
    write_trained_bundle(cfg, start, model, result, len(clips), sampler.n_studies)
    return result


def _warn_unread_text(tokenizer, clips: Sequence[ArchiveClip]) -> int:
    """Warn when the tokenizer drops text of the training reports; returns how many reports lose text.

    Why: a template tokenizer silently skips phrases its vocabulary lacks, e.g. the varied reports'
    "LVEF IS 35%." read with an older bundle's vocabulary loses the EF, and training would go on.
    """
    if not hasattr(tokenizer, "explain") or not hasattr(tokenizer, "phrases"):
        return 0
    reports = {c.study_uid: c.report for c in clips}
    lost = [r for r in reports.values() if tokenizer.explain(r).unmatched]
    if lost:
        log.warning(
            "%d of %d training reports have text the tokenizer's vocabulary does not read (first: %r); "
            "it is dropped from training",
            len(lost),
            len(reports),
            tokenizer.explain(lost[0]).unmatched[0],
        )
    return len(lost)


def view_sentences(cfg: TrainConfig, clips: Sequence[ArchiveClip]) -> dict[str, str] | None:
    """The view sentences to put before each clip's report (see ``PairSampler``), or None."""
    from echosearch.synth.reports import VIEW_PHRASES
    from echosearch.synth.views import LEGACY_VIEWS

    views = {c.row.get("view", "") for c in clips} - {""}
    use = cfg.view_text if cfg.view_text is not None else bool(views - set(LEGACY_VIEWS))
    if use:
        log.info("training text: each clip's view sentence + its report (views %s)", ", ".join(sorted(views)))
    return dict(VIEW_PHRASES) if use else None


def _load_training_clips(cfg: TrainConfig, size: int) -> tuple[list, FrameCache]:
    """Clips and decoded frames of every training archive, each archive cached on its own.

    Why several archives: synthetic archives of different seeds have disjoint patients and UIDs, so a
    larger training set is several archives synthesised in parallel, with no merging step.
    """
    clips, caches = [], []
    for archive in cfg.archives():
        part = load_archive(archive)
        caches.append(load_frames(part, size, cfg.frames, default_cache_dir(archive), cfg.progress))
        clips += part
    return clips, FrameCache.concat(caches)


def _log_step(work: Path, step: int, epoch: int, loss: float, lr: float) -> None:
    with (work / "log.jsonl").open("a") as fh:
        fh.write(
            json.dumps({"step": step, "epoch": epoch, "loss": round(loss, 5), "lr": lr, "t": time.time()})
        )
        fh.write("\n")


def write_trained_bundle(cfg: TrainConfig, start: Start, model, result: TrainResult, n_clips: int,
                         n_studies: int) -> None:  # fmt: skip
    """Weights (fp32 or fp16), config, tokenizer files, task file, and a manifest that says how it was made."""
    dtype = torch.float16 if cfg.weights_dtype == "fp16" else torch.float32
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype)
             for k, v in model.state_dict().items()}  # fmt: skip
    source = {
        "trained_by": "echosearch train",
        "init": start.init_label,
        **({"init_image": start.init_image_label} if start.init_image_label else {}),
        **({"init_text": start.init_text_label} if start.init_text_label else {}),
        "archive": "+".join(p.name for p in cfg.archives()),
        "archive_clips": n_clips,
        "archive_studies": n_studies,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "steps": result.steps,
        "planned_steps": result.planned_steps,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "weights_dtype": cfg.weights_dtype,
        "amp": cfg.amp,
        "augment": cfg.augment,
        "final_loss": round(result.losses[-1], 4) if result.losses else None,
    }
    manifest = Manifest(
        name=cfg.name or Path(cfg.out).name,
        version=cfg.version,
        tokenizer=start.tokenizer_spec,
        source=source,
        license=start.license,
        intended_use="Demonstrations and tests on synthetic data only; not validated on any patient data"
        if cfg.init == DEMO_ARCH
        else "Research use; not validated for clinical use",
        clinical=False,
        description=f"CLIP trained with echosearch train from {start.init_label}"
        + (f" (image tower from {start.init_image_label})" if start.init_image_label else "")
        + (f" (text tower from {start.init_text_label})" if start.init_text_label else "")
        + "; NOT a clinical model",
        tasks=start.tasks,
    )
    write_bundle(cfg.out, manifest, start.model_cfg, start.preprocess_cfg, state_dict=state,
                 extra_files=start.files, overwrite=cfg.force or not Path(cfg.out).exists())  # fmt: skip
    log.info(
        "wrote bundle %s (%d steps, final loss %s)", os.fspath(cfg.out), result.steps, source["final_loss"]
    )
