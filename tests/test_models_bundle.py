"""Bundles round-trip (safetensors and .bin), resolve by path and registry name, and refuse tampering."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
import yaml

from echosearch.errors import EchosearchError, UsageError
from echosearch.models import (
    ChecksumError,
    Manifest,
    list_models,
    load_model,
    open_bundle,
    resolve_bundle,
    write_bundle,
)
from echosearch.models.arch import echoclip_preprocess_cfg, tiny_model_cfg
from echosearch.models.bundle import BundleError
from echosearch.models.registry import load_registry


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ECHOSEARCH_MODELS_REGISTRY", raising=False)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = tiny_model_cfg()
    model = open_clip.CLIP(**cfg).eval()
    return cfg, model


def _write(tmp_path: Path, tiny, fmt: str = "safetensors", name: str = "tiny-test") -> Path:
    cfg, model = tiny
    manifest = Manifest(
        name=name, version="0.1", tokenizer={"kind": "clip-bpe"}, license="MIT", clinical=False
    )
    out = tmp_path / f"bundle-{fmt}"
    write_bundle(
        out, manifest, cfg, echoclip_preprocess_cfg(64), state_dict=model.state_dict(), weights_format=fmt
    )
    return out


def _frames(n: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 64, 64, generator=g)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_bundle_round_trip_matches_in_memory_model(tmp_path, tiny, fmt):
    _, model = tiny
    path = _write(tmp_path, tiny, fmt)
    expected_weights = (
        "open_clip_model.safetensors" if fmt == "safetensors" else "open_clip_pytorch_model.bin"
    )
    assert (path / expected_weights).is_file()
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(manifest["files"]) == {"open_clip_config.json", expected_weights}
    assert json.loads((path / "open_clip_config.json").read_text())["model_cfg"]["vision_cfg"][
        "timm_model_name"
    ]

    enc = load_model(path, device="cpu", precision="fp32")
    x = _frames()
    with torch.inference_mode():
        ref = F.normalize(model.encode_image(x), dim=-1)
    got = enc.encode_frames(x)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    assert enc.dim == 32 and enc.name == "tiny-test" and enc.version == "0.1"
    assert enc.preprocess_cfg["size"] == 64 and len(enc.preprocess_cfg["mean"]) == 3
    assert enc.bundle.clinical is False


def test_load_by_registry_name(tmp_path, tiny, monkeypatch):
    _, model = tiny
    path = _write(tmp_path, tiny)
    reg = tmp_path / "models.yaml"
    reg.write_text(yaml.safe_dump({"models": {"tiny-test": {"bundle": path.name, "clinical": False}}}))
    monkeypatch.setenv("ECHOSEARCH_MODELS_REGISTRY", str(reg))
    enc = load_model("tiny-test", device="cpu", precision="fp32")
    x = _frames(2)
    with torch.inference_mode():
        ref = F.normalize(model.encode_image(x), dim=-1)
    torch.testing.assert_close(enc.encode_frames(x), ref, atol=1e-5, rtol=1e-4)
    rows = {r["name"]: r for r in list_models()}
    assert rows["tiny-test"]["status"] == "ready"


def test_tampered_weights_are_refused(tmp_path, tiny):
    path = _write(tmp_path, tiny)
    open_bundle(path)  # verified once: the fast-path cache now knows the file
    weights = path / "open_clip_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="fails its checksum"):
        open_bundle(path)
    with pytest.raises(ChecksumError):
        load_model(path, device="cpu")


def test_fast_path_cache_skips_rehash_until_file_changes(tmp_path, tiny, monkeypatch):
    from echosearch.models import bundle as bundle_mod

    path = _write(tmp_path, tiny)
    calls = []
    real = bundle_mod.sha256_file
    monkeypatch.setattr(bundle_mod, "sha256_file", lambda p, *a: calls.append(p) or real(p, *a))
    open_bundle(path)
    assert calls == []  # written and hashed once at build time; loading trusted size+mtime+inode
    weights = path / "open_clip_model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    open_bundle(path)
    assert [Path(p).name for p in calls] == ["open_clip_model.safetensors"]


def test_unlisted_weight_file_is_refused(tmp_path, tiny):
    path = _write(tmp_path, tiny)
    shutil.copyfile(path / "open_clip_model.safetensors", path / "open_clip_pytorch_model.bin")
    with pytest.raises(ChecksumError, match="not in its manifest"):
        open_bundle(path)


def test_missing_file_and_not_a_bundle(tmp_path, tiny):
    path = _write(tmp_path, tiny)
    (path / "open_clip_model.safetensors").unlink()
    with pytest.raises(BundleError, match="missing"):
        open_bundle(path)
    with pytest.raises(BundleError, match="not a model bundle"):
        open_bundle(tmp_path)


def test_write_bundle_refuses_dangling_tokenizer_reference(tmp_path, tiny):
    cfg, model = tiny
    manifest = Manifest(name="x", version="1", tokenizer={"kind": "template", "vocab": "vocab.txt"})
    with pytest.raises(EchosearchError, match="vocab.txt"):
        write_bundle(tmp_path / "b", manifest, cfg, {}, state_dict=model.state_dict())
    assert not (tmp_path / "b").exists()


def test_shipped_registry_resolves(echoclip_ref):
    entries = load_registry()
    assert {"echoclip", "echoclip-r", "echosearch-demo"} <= set(entries)
    assert entries["echoclip"].hub_repo == "mkaichristensen/echo-clip"
    assert entries["echoclip-r"].tokenizer["kind"] == "template"
    from echosearch.fsutil import sha256_file

    for raw in entries["echoclip-r"].files:  # the pinned checksums are those of the reference files
        assert raw.sha256 == sha256_file(echoclip_ref / raw.name), raw.name
        assert raw.url.startswith("https://raw.githubusercontent.com/echonet/echo_CLIP/")
    status = {r["name"]: r["status"] for r in list_models()}
    assert status["echoclip"] == "not pulled"
    if not (entries["echosearch-demo"].bundle_dir / "manifest.json").exists():
        assert status["echosearch-demo"] == "not built yet"
        with pytest.raises(BundleError, match="not built yet"):
            resolve_bundle("echosearch-demo")
    with pytest.raises(BundleError, match="models pull echoclip"):
        resolve_bundle("echoclip")
    with pytest.raises(UsageError, match="unknown model"):
        resolve_bundle("no-such-model")


def test_arch_bundle_builds_echoclip_shape():
    b = resolve_bundle("arch:echoclip")
    assert b.model_cfg["vision_cfg"]["timm_model_name"] == "convnext_base"
    assert b.model_cfg["embed_dim"] == 512 and b.preprocess_cfg["size"] == 224
    assert b.path is None and not b.clinical
    with pytest.raises(UsageError):
        resolve_bundle("arch:nope")
