"""``Engine.stats()`` / ``echosearch stats`` answer from what is cheap: the database's counts, sizes on
disk, the engine's own loaded indexes, and other spaces' index file headers (no vectors loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from echosearch.index import IndexConfig, Space, SpaceInfo, VectorIndex
from echosearch.index.faiss_index import KINDS
from echosearch.index.header import read_header
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.search import Engine
from echosearch.synth import synthesize_archive

#: The top-level keys of ``stats --json`` (the API's /stats too): clients read them.
STATS_KEYS = {"data_dir", "model", "counts", "failures_by_kind", "spaces", "db_bytes", "last_runs"}
SPACE_KEYS = {"name", "kind", "model", "model_version", "dim", "index", "disk_bytes"}


def _vectors(n: int, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    return np.arange(1, n + 1, dtype=np.int64) * 3, rng.normal(size=(n, dim)).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_an_index_header_says_what_loading_the_index_would(tmp_path, kind):
    ids, x = _vectors(2000, dim=16)
    index = VectorIndex.build(ids, x, dim=16)
    index.rebuild(kind)
    index.remove(ids[:5])  # removed vectors are not counted (a saved index holds live ones only)
    index.save(tmp_path / "index.faiss")
    loaded = VectorIndex.load(tmp_path / "index.faiss").describe()
    assert read_header(tmp_path / "index.faiss").describe() == {
        k: loaded[k] for k in ("kind", "ntotal", "dim")
    }


def test_an_empty_index_header(tmp_path):
    VectorIndex(8).save(tmp_path / "index.faiss")
    assert read_header(tmp_path / "index.faiss").describe() == {"kind": "flat", "ntotal": 0, "dim": 8}


def test_a_file_that_is_not_an_index_is_a_value_error(tmp_path):
    for content in (b"", b"IxM2", b"\x00\xff" * 40):
        (tmp_path / "bad.faiss").write_bytes(content)
        with pytest.raises(ValueError, match="FAISS index"):
            read_header(tmp_path / "bad.faiss")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, tiny_task_bundle) -> Path:
    """A small indexed data dir, plus an HNSW space of another model and a space whose index is damaged."""
    root = tmp_path_factory.mktemp("stats")
    archive, data = root / "archive", root / "data"
    synthesize_archive(
        archive, patients=1, seed=2, studies=(1, 1), clips_per_study=(2, 2), frames=(4, 5),
        formats=("dicom-explicit",),
    )  # fmt: skip
    opts = IndexOptions([str(archive)], str(data), model=str(tiny_task_bundle), workers=0, frames="uniform:4")
    run_index(opts)
    # kind "report": spaces the engine never opens as its own, so only their headers can tell
    other = Space.create(data, SpaceInfo(name="other-reports", model_name="other", dim=8, kind="report"))
    other.save_index(VectorIndex.build(*_vectors(300), dim=8, config=IndexConfig(flat_max=100, ann="hnsw")))
    broken = Space.create(data, SpaceInfo(name="broken-reports", model_name="broken", dim=8, kind="report"))
    broken.index_path.write_bytes(b"not an index: a page of text " * 4)
    return data


def test_stats_loads_no_other_spaces_index_and_counts_it_from_its_header(data_dir, monkeypatch):
    with Engine.open(data_dir) as engine:
        loads = []
        real_load = VectorIndex.load.__func__
        monkeypatch.setattr(
            VectorIndex, "load", classmethod(lambda cls, *a, **k: loads.append(a) or real_load(cls, *a, **k))
        )
        info = engine.stats()
        assert loads == []  # the engine's own indexes are loaded already; the others are not loaded at all
        spaces = {sp["name"]: sp for sp in info["spaces"]}
        assert set(info) == STATS_KEYS and all(set(sp) == SPACE_KEYS for sp in spaces.values())
        assert spaces[engine.space.name]["index"] == engine.index.describe()
        assert spaces[engine.space.name]["index"]["ntotal"] == info["counts"]["videos"] == 2
        assert spaces["other-reports"]["index"] == {"kind": "hnsw", "ntotal": 300, "dim": 8}
        assert spaces["broken-reports"]["index"]["ntotal"] is None
        assert "not a FAISS index" in spaces["broken-reports"]["index"]["error"]
        assert all(sp["disk_bytes"] > 0 for sp in spaces.values())

        full = {sp["name"]: sp["index"] for sp in engine.stats(load_indexes=True)["spaces"]}
        assert loads  # asked for: every other space's index is loaded
        assert full["other-reports"] == Space.open(data_dir, "other-reports").load_index().describe()
        assert "error" in full["broken-reports"]  # a damaged space is reported, not raised


def test_stats_cli_json_keys_and_text(data_dir, cli):
    done = cli("stats", "--data", str(data_dir), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc) == STATS_KEYS and all(set(sp) == SPACE_KEYS for sp in doc["spaces"])
    for extra, broken in (((), "is not a FAISS index"), (("--indexes",), "cannot read vector index")):
        text = cli("stats", "--data", str(data_dir), *extra)
        assert text.returncode == 0, text.stderr
        assert "300 vectors, hnsw" in text.stdout and broken in text.stdout
