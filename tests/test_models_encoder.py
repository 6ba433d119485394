"""The encoder: EchoCLIP's clip recipe, bf16 close to fp32, precision choice, text through the bundle tokenizer."""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F

from echosearch.errors import UsageError
from echosearch.models import Manifest, load_model, write_bundle
from echosearch.models.arch import echoclip_preprocess_cfg, tiny_model_cfg
from echosearch.models.precision import cpu_flags, cpu_has_fast_bf16, resolve_device, resolve_precision

TEXTS = [
    "SEVERE DILATED LEFT VENTRICLE.",
    "ECHO DENSITY IN RIGHT VENTRICLE SUGGESTIVE OF PACER LEAD.",
    "normal",
]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOSEARCH_CACHE", str(tmp_path / "cache"))


def _bundle(tmp_path, tokenizer: dict, vocab_size: int, extra_files=None, seed: int = 0):
    torch.manual_seed(seed)
    cfg = tiny_model_cfg(vocab_size=vocab_size)
    model = open_clip.CLIP(**cfg).eval()
    manifest = Manifest(name="tiny", version="1", tokenizer=tokenizer)
    path = tmp_path / "bundle"
    write_bundle(
        path,
        manifest,
        cfg,
        echoclip_preprocess_cfg(64),
        state_dict=model.state_dict(),
        extra_files=extra_files,
    )
    return path, model


@pytest.fixture(scope="module")
def bf16_pair():
    fp32 = load_model("arch:tiny", device="cpu", precision="fp32")
    bf16 = load_model("arch:tiny", device="cpu", precision="bf16")
    bf16.model.load_state_dict(fp32.model.state_dict())  # same random weights, cast on load
    return fp32, bf16


def test_bf16_embeddings_close_to_fp32(bf16_pair):
    fp32, bf16 = bf16_pair
    assert bf16.precision == "bf16" and next(bf16.model.parameters()).dtype == torch.bfloat16
    x = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    a, b = fp32.encode_frames(x), bf16.encode_frames(x)
    assert a.dtype == b.dtype == torch.float32
    assert F.cosine_similarity(a, b).min().item() >= 0.99
    ta, tb = fp32.encode_text(TEXTS), bf16.encode_text(TEXTS)
    assert F.cosine_similarity(ta, tb).min().item() >= 0.99


def test_encode_clips_is_normalised_mean_of_frame_embeddings(bf16_pair):
    enc, _ = bf16_pair
    enc.batch_size = 3  # clips straddle batch boundaries
    g = torch.Generator().manual_seed(4)
    clips = [torch.randn(n, 3, 64, 64, generator=g) for n in (2, 5, 1)]
    frame_embs, clip_embs = enc.encode_clips(clips)
    assert [f.shape for f in frame_embs] == [(2, 32), (5, 32), (1, 32)]
    assert clip_embs.shape == (3, 32)
    for clip, f, c in zip(clips, frame_embs, clip_embs, strict=True):
        direct = enc.encode_frames(clip)
        torch.testing.assert_close(f, direct, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(c, F.normalize(direct.mean(0), dim=0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(clip_embs.norm(dim=1), torch.ones(3))
    assert enc.encode_clips([]) == ([], pytest.approx(torch.zeros(0, 32)))
    with pytest.raises(ValueError):
        enc.encode_frames(torch.zeros(2, 64, 64))


def test_clip_bpe_text_matches_in_memory_model(tmp_path):
    path, model = _bundle(tmp_path, {"kind": "clip-bpe"}, vocab_size=49408)
    enc = load_model(path, device="cpu", precision="fp32")
    with torch.inference_mode():
        ref = F.normalize(model.encode_text(open_clip.tokenize(TEXTS)), dim=-1)
    torch.testing.assert_close(enc.encode_text(TEXTS), ref, atol=1e-5, rtol=1e-4)
    assert enc.encode_text([]).shape == (0, 32)


def test_template_text_matches_in_memory_model(tmp_path):
    tokenizers = pytest.importorskip("echosearch.tokenizers")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "SEVERE DILATED LEFT VENTRICLE.\nTHE LEFT VENTRICULAR EJECTION FRACTION IS <#>%.\nNORMAL\n"
    )
    wordpiece = tmp_path / "wordpiece.tokenizer"
    tokenizers.write_blank_wordpiece(wordpiece)
    tok = tokenizers.TemplateTokenizer.from_files(wordpiece, vocab, context_length=77)
    spec = {"kind": "template", "vocab": "vocab.txt", "wordpiece": "wordpiece.tokenizer"}
    path, model = _bundle(
        tmp_path,
        spec,
        vocab_size=tok.vocab_size,
        extra_files={"vocab.txt": vocab, "wordpiece.tokenizer": wordpiece},
    )
    enc = load_model(path, device="cpu", precision="fp32")
    texts = ["SEVERE DILATED LEFT VENTRICLE.", "THE LEFT VENTRICULAR EJECTION FRACTION IS 55%."]
    with torch.inference_mode():
        ref = F.normalize(model.encode_text(tok.encode_batch(texts)), dim=-1)
    torch.testing.assert_close(enc.encode_text(texts), ref, atol=1e-5, rtol=1e-4)


def test_precision_choice_follows_cpu_flags():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, frozenset({"avx2", "amx_bf16"})) == "bf16"
    assert resolve_precision("auto", cpu, frozenset({"avx512_bf16"})) == "bf16"
    assert resolve_precision("auto", cpu, frozenset({"avx2", "avx512f"})) == "fp32"
    assert resolve_precision("fp32", cpu, frozenset({"amx_bf16"})) == "fp32"
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_fast_bf16(cpu_flags()) else "fp32")
    with pytest.raises(UsageError):
        resolve_precision("fp8", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(UsageError, match="CUDA"):
            resolve_device("cuda")
