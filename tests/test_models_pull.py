"""`models pull --from` builds a verified bundle from a hub-like snapshot offline; online pull fails fast offline."""

from __future__ import annotations

import hashlib
import json
import os
import time

import open_clip
import pytest
import torch
import torch.nn.functional as F
import yaml

from echosearch.models import load_model
from echosearch.models.arch import echoclip_preprocess_cfg, tiny_model_cfg
from echosearch.models.pull import PullError, check_online, pull

PROMPTS = {
    "pacemaker": {
        "mode": "binary",
        "label_sources": ["ECHO DENSITY IN RIGHT VENTRICLE SUGGESTIVE OF PACER LEAD. "],
    }
}


@pytest.fixture
def snapshot(tmp_path, monkeypatch):
    """A folder laid out like the hub snapshot (config + .bin weights) plus a raw prompts file, and a registry."""
    monkeypatch.setenv("ECHOSEARCH_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    cfg = tiny_model_cfg()
    model = open_clip.CLIP(**cfg).eval()
    snap = tmp_path / "snapshot"
    snap.mkdir()
    (snap / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": cfg, "preprocess_cfg": echoclip_preprocess_cfg(64)})
    )
    torch.save(model.state_dict(), snap / "open_clip_pytorch_model.bin")
    (snap / "README.md").write_text("model card\n")
    prompts = json.dumps(PROMPTS).encode()
    (snap / "prompts_used.json").write_bytes(prompts)
    reg = tmp_path / "models.yaml"
    entry = {
        "weights": "hf-hub:example/tiny-echo",
        "revision": "main",
        "version": "9",
        "tokenizer": {"kind": "clip-bpe"},
        "files": {
            "prompts_used.json": {
                "url": "https://example.invalid/prompts_used.json",
                "sha256": hashlib.sha256(prompts).hexdigest(),
            }
        },
        "tasks": {"file": "prompts_used.json", "format": "echoclip-prompts"},
        "license": "test",
        "clinical": True,
    }
    reg.write_text(yaml.safe_dump({"models": {"tiny-echo": entry}}))
    monkeypatch.setenv("ECHOSEARCH_MODELS_REGISTRY", str(reg))
    return snap, model, tmp_path


def test_pull_from_folder_builds_valid_bundle(snapshot):
    snap, model, tmp = snapshot
    bundle = pull("tiny-echo", from_dir=snap)
    assert bundle.path == tmp / "cache" / "models" / "tiny-echo"
    assert set(bundle.manifest.files) == {
        "open_clip_config.json",
        "open_clip_pytorch_model.bin",
        "prompts_used.json",
    }
    assert bundle.manifest.clinical is True and bundle.version == "9"
    assert bundle.manifest.source["weights"] == "hf-hub:example/tiny-echo"
    assert bundle.tasks_path.name == "prompts_used.json"
    tasks = bundle.load_tasks()
    assert [t.name for t in tasks] == ["pacemaker"]

    enc = load_model("tiny-echo", device="cpu", precision="fp32")
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref = F.normalize(model.encode_image(x), dim=-1)
    torch.testing.assert_close(enc.encode_frames(x), ref, atol=1e-5, rtol=1e-4)

    with pytest.raises(Exception, match="already exists"):
        pull("tiny-echo", from_dir=snap)
    assert pull("tiny-echo", from_dir=snap, force=True).path == bundle.path


def test_pull_from_refuses_wrong_or_missing_raw_files(snapshot):
    snap, _, _ = snapshot
    (snap / "prompts_used.json").write_text("{}")
    with pytest.raises(PullError, match="registry pins"):
        pull("tiny-echo", from_dir=snap)
    (snap / "prompts_used.json").unlink()
    with pytest.raises(PullError, match="example.invalid/prompts_used.json"):
        pull("tiny-echo", from_dir=snap)


def test_pull_from_needs_config(snapshot):
    snap, _, _ = snapshot
    (snap / "open_clip_config.json").unlink()
    with pytest.raises(PullError, match="open_clip_config.json"):
        pull("tiny-echo", from_dir=snap)


def test_offline_pull_fails_fast_and_explains_from(snapshot, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(PullError, match="--from"):
        pull("tiny-echo")
    assert time.monotonic() - start < 5


def test_unresolvable_host_fails_within_timeout():
    start = time.monotonic()
    with pytest.raises(PullError):
        check_online("hub.example.invalid", timeout=0.5)  # .invalid never resolves
    assert time.monotonic() - start < 5


def test_cli_models_pull_from_list_info(snapshot, cli):
    snap, _, tmp = snapshot
    env = dict(os.environ)
    res = cli("models", "pull", "tiny-echo", "--from", str(snap), "--json", env=env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["name"] == "tiny-echo" and "open_clip_pytorch_model.bin" in doc["files"]
    res = cli("models", "list", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert {r["name"]: r["status"] for r in json.loads(res.stdout)} == {"tiny-echo": "ready"}
    res = cli("models", "info", "tiny-echo", "--json", env=env)
    assert json.loads(res.stdout)["license"] == "test"
    env["HF_HUB_OFFLINE"] = "1"
    res = cli("models", "pull", "tiny-echo", "--force", env=env)
    assert res.returncode == 1 and "--from" in res.stderr and "Traceback" not in res.stderr
