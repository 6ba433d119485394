"""Zero-shot scoring (echosearch.labels.scoring): the reference outputs, hand-worked cases, score_tasks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from conftest import example_tasks

from echosearch.errors import ConfigError, EchosearchError
from echosearch.labels import scoring
from echosearch.labels.scoring import (
    binary_scores,
    categorical_predictions,
    regression_predictions,
    score_tasks,
)
from echosearch.labels.tasks import load_tasks, save_tasks


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


@pytest.fixture(scope="module")
def golden(echoclip_ref):
    with np.load(echoclip_ref / "golden_zeroshot.npz") as z:
        return {k: z[k] for k in z.files}


def test_binary_scores_match_reference(golden):
    got = binary_scores(golden["video_frame_embeddings"], golden["binary_prompt_embeddings"])
    assert got.dtype == np.float32 and got.shape == golden["binary_scores"].shape
    assert np.abs(got - golden["binary_scores"]).max() <= 1e-5


def test_regression_predictions_match_reference(golden):
    got = regression_predictions(
        golden["video_frame_embeddings"],
        golden["regression_prompt_embeddings"],
        golden["regression_prompt_values"],
    )
    assert got.dtype == np.float32
    assert np.abs(got - golden["regression_predictions"]).max() <= 1e-5


def test_reference_match_holds_in_small_chunks_and_torch_input(golden, monkeypatch):
    monkeypatch.setattr(scoring, "_CHUNK_ELEMENTS", 1)  # one video per chunk
    frames = torch.from_numpy(golden["video_frame_embeddings"])
    got = regression_predictions(
        frames, torch.from_numpy(golden["regression_prompt_embeddings"]), golden["regression_prompt_values"]
    )
    assert np.abs(got - golden["regression_predictions"]).max() <= 1e-5
    got = binary_scores(frames, golden["binary_prompt_embeddings"])
    assert np.abs(got - golden["binary_scores"]).max() <= 1e-5


def test_binary_hand_computed():
    frames = np.array([[unit(0), unit(90)], [unit(90), unit(90)]], dtype=np.float32)
    prompts = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    # video 0: (1 + 0.6 + 0 + 0.8) / 4; video 1: (0 + 0.8) / 2
    np.testing.assert_allclose(binary_scores(frames, prompts), [0.6, 0.4], atol=1e-6)


def test_binary_negative_prompts_subtract():
    frames = np.array([[unit(0), unit(90)], [unit(90), unit(90)]], dtype=np.float32)
    positives = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    negatives = np.array([[0.0, 1.0]], dtype=np.float32)
    # video 0: 0.6 - (0 + 1) / 2; video 1: 0.4 - 1
    np.testing.assert_allclose(binary_scores(frames, positives, negatives), [0.1, -0.6], atol=1e-6)


def test_regression_hand_computed():
    # ten prompts at 0, 10, ..., 90 degrees with values 0, 10, ..., 90; top 20% = 2 ranks
    prompts = np.array([unit(a) for a in range(0, 100, 10)], dtype=np.float32)
    values = np.arange(0, 100, 10)
    # frame at 42 deg ranks 40, 50; frame at 12 deg ranks 10, 20
    # per-rank means over frames: 25, 35 -> lower median 25
    frames = np.array([[unit(42), unit(12)]], dtype=np.float32)
    np.testing.assert_allclose(regression_predictions(frames, prompts, values), [25.0])
    # five prompts -> k = 1: the best prompt's value averaged over frames
    frames = np.array([[unit(31), unit(88)]], dtype=np.float32)
    got = regression_predictions(frames, prompts[[0, 3, 5, 7, 9]], values[[0, 3, 5, 7, 9]])
    np.testing.assert_allclose(got, [(30 + 90) / 2])


def _reference_regression(frames, prompts, values):
    """The method as the paper's code states it: full sort per frame, loops, no tricks."""
    out = []
    k = int(len(values) * 0.2)
    for video in frames:
        ranked = np.stack([values[np.argsort(-(f @ prompts.T))] for f in video]).mean(axis=0)
        top = np.sort(ranked[:k])
        out.append(top[(k - 1) // 2])
    return np.array(out)


@pytest.mark.parametrize("m", [10, 37, 101])
def test_regression_equals_plain_method_on_random_data(m, monkeypatch):
    rng = np.random.default_rng(m)
    frames = rng.normal(size=(7, 5, 16)).astype(np.float32)
    prompts = rng.normal(size=(m, 16)).astype(np.float32)
    values = rng.permutation(m).astype(float)
    expected = _reference_regression(frames, prompts, values)
    np.testing.assert_allclose(regression_predictions(frames, prompts, values), expected, atol=1e-5)
    monkeypatch.setattr(scoring, "_CHUNK_ELEMENTS", 3 * 5 * m)  # chunks of three videos, last one short
    np.testing.assert_allclose(regression_predictions(frames, prompts, values), expected, atol=1e-5)


def test_float16_memmap_in_chunks(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 4, 8)).astype(np.float16)
    mm = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float16, shape=data.shape)
    mm[:] = data
    prompts = rng.normal(size=(3, 8)).astype(np.float32)
    whole = binary_scores(data.astype(np.float32), prompts)
    monkeypatch.setattr(scoring, "_CHUNK_ELEMENTS", 40)
    np.testing.assert_allclose(binary_scores(mm, prompts), whole, atol=1e-5)


def test_categorical_hand_computed():
    prompts = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    frames = np.array([[[0.8, 0.6]], [[0.0, 1.0]]], dtype=np.float32)
    pred = categorical_predictions(frames, prompts, [0, 1, 1], ["a", "b"])
    # video 0: a = 0.8, b = (0.6 + 0.96) / 2 = 0.78; video 1: a = 0, b = (1 + 0.8) / 2 = 0.9
    np.testing.assert_allclose(pred.scores, [[0.8, 0.78], [0.0, 0.9]], atol=1e-6)
    assert pred.index.tolist() == [0, 1] and pred.labels == ["a", "b"]


def test_categorical_rejects_class_without_prompts():
    frames = np.zeros((1, 1, 2), dtype=np.float32)
    with pytest.raises(EchosearchError, match="classes without prompts: c"):
        categorical_predictions(frames, np.eye(2, dtype=np.float32), [0, 1], ["a", "b", "c"])


def test_categorical_offsets_shift_the_pick():
    prompts = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    frames = np.array([[[0.8, 0.6]], [[0.6, 0.8]]], dtype=np.float32)
    assert categorical_predictions(frames, prompts, [0, 1], ["a", "b"]).index.tolist() == [0, 1]
    shifted = categorical_predictions(frames, prompts, [0, 1], ["a", "b"], offsets=[0.0, 0.3])
    assert shifted.index.tolist() == [1, 1]
    np.testing.assert_allclose(shifted.scores, [[0.8, 0.9], [0.6, 1.1]], atol=1e-6)


def test_shape_errors_are_clear():
    with pytest.raises(EchosearchError, match=r"\[N, F, D\]"):
        binary_scores(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(EchosearchError, match="dimension 3"):
        binary_scores(np.zeros((1, 2, 4)), np.zeros((2, 3)))
    with pytest.raises(EchosearchError, match="2 prompt values for 3"):
        regression_predictions(np.zeros((1, 2, 4)), np.zeros((3, 4)), [1, 2])


def test_score_tasks(task_file):
    tasks = load_tasks(task_file)
    rng = np.random.default_rng(3)
    table: dict[str, np.ndarray] = {}
    calls: list[list[str]] = []

    def encode_text(texts: list[str]) -> torch.Tensor:
        calls.append(texts)
        for t in texts:
            table.setdefault(t, rng.normal(size=8))
        embs = torch.tensor(np.stack([table[t] for t in texts]), dtype=torch.float32)
        return embs / embs.norm(dim=1, keepdim=True)

    frames = rng.normal(size=(6, 3, 8)).astype(np.float32)
    frames /= np.linalg.norm(frames, axis=-1, keepdims=True)
    out = score_tasks(tasks, frames, encode_text, thresholds={"pacer": 0.0})
    encoded = [t for batch in calls for t in batch]
    assert sorted(encoded) == sorted(set(encoded)) and len(encoded) == 2 + 6 + 3

    def emb(texts):
        vecs = np.stack([table[t] for t in texts])
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    pacer, ef, lv = tasks
    np.testing.assert_allclose(out["pacer"], binary_scores(frames, emb(pacer.prompts)), atol=1e-6)
    assert out.thresholds["pacer"] == 0.0  # the override beats the file's 0.25
    assert out.decisions["pacer"].tolist() == (out["pacer"] >= 0.0).tolist()
    texts, values = ef.expanded()
    np.testing.assert_allclose(out["ef"], regression_predictions(frames, emb(texts), values))
    texts, owner = lv.expanded()
    pred = categorical_predictions(frames, emb(texts), owner, lv.class_names)
    assert out["lv_size"].tolist() == pred.index.tolist()
    assert out.classes["lv_size"] == ("normal", "dilated") and out.class_scores["lv_size"].shape == (6, 2)
    # without an override the task's own threshold applies
    assert score_tasks(tasks[:1], frames, encode_text).thresholds == {"pacer": 0.25}


def test_score_tasks_with_negative_prompts_and_round_trip(tmp_path):
    data = example_tasks("pacer", negative_prompts=["NO PACER LEAD. "])
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(data))
    pacer = {t.name: t for t in load_tasks(path)}["pacer"]
    assert pacer.negative_prompts == ("NO PACER LEAD. ",)
    assert pacer.expanded()[0] == [*pacer.prompts, "NO PACER LEAD. "]
    assert load_tasks(save_tasks([pacer], tmp_path / "again.yaml")) == [pacer]
    rng = np.random.default_rng(5)
    table = {t: rng.normal(size=8) for t in pacer.expanded()[0]}
    table = {t: v / np.linalg.norm(v) for t, v in table.items()}
    frames = rng.normal(size=(5, 3, 8)).astype(np.float32)
    frames /= np.linalg.norm(frames, axis=-1, keepdims=True)
    out = score_tasks([pacer], frames, lambda texts: np.stack([table[t] for t in texts]))
    positives = np.stack([table[t] for t in pacer.prompts])
    expected = binary_scores(frames, positives) - binary_scores(frames, table["NO PACER LEAD. "][None])
    np.testing.assert_allclose(out["pacer"], expected, atol=1e-6)
    assert out.decisions["pacer"].tolist() == (out["pacer"] >= 0.25).tolist()


def test_score_tasks_applies_class_offsets_and_rejects_mismatched_entries(task_file):
    tasks = {t.name: t for t in load_tasks(task_file)}
    rng = np.random.default_rng(4)
    table: dict[str, np.ndarray] = {}

    def encode_text(texts):
        for t in texts:
            table.setdefault(t, rng.normal(size=8))
        vecs = np.stack([table[t] for t in texts])
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    frames = rng.normal(size=(6, 3, 8)).astype(np.float32)
    lv = tasks["lv_size"]
    out = score_tasks([lv], frames, encode_text, {"lv_size": {"dilated": 5.0}})
    assert out["lv_size"].tolist() == [1] * 6 and out.offsets == {"lv_size": {"normal": 0.0, "dilated": 5.0}}
    assert score_tasks([lv], frames, encode_text, {"lv_size": {"normal": 5.0}})["lv_size"].tolist() == [0] * 6
    with pytest.raises(ConfigError, match="task 'lv_size' is categorical"):
        score_tasks([lv], frames, encode_text, {"lv_size": 0.1})
    with pytest.raises(ConfigError, match="offsets for unknown classes huge"):
        score_tasks([lv], frames, encode_text, {"lv_size": {"huge": 0.1}})
    with pytest.raises(ConfigError, match="task 'pacer' is binary"):
        score_tasks([tasks["pacer"]], frames, encode_text, {"pacer": {"yes": 0.1}})


def test_a_binary_task_calibrated_per_view_uses_the_sigmoid_of_the_view_each_clip_is_placed_in(tmp_path):
    data = example_tasks("pacer")
    data["tasks"] = {
        "pacer": data["tasks"]["pacer"],
        "view": {"kind": "categorical", "classes": {"A4C": ["APICAL FOUR. "], "PLAX": ["LONG AXIS. "]}},
    }
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(data))
    tasks = load_tasks(path)
    rng = np.random.default_rng(8)
    table = {t: rng.normal(size=8) for task in tasks for t in task.expanded()[0]}
    table = {t: v / np.linalg.norm(v) for t, v in table.items()}
    frames = rng.normal(size=(40, 3, 8)).astype(np.float32)
    frames /= np.linalg.norm(frames, axis=-1, keepdims=True)
    a4c_fit = {"threshold": 0.5, "slope": 10.0, "intercept": -5.0}
    entry = {"threshold": -0.5, "slope": 10.0, "intercept": 5.0, "views": {"A4C": a4c_fit}}
    out = score_tasks(tasks, frames, lambda texts: np.stack([table[t] for t in texts]), {"pacer": entry})
    in_a4c = out["view"] == 0
    assert in_a4c.any() and (~in_a4c).any()
    expected = np.where(
        in_a4c, 1 / (1 + np.exp(-(10 * out["pacer"] - 5))), 1 / (1 + np.exp(-(10 * out["pacer"] + 5)))
    )
    np.testing.assert_allclose(out.probabilities["pacer"], expected, rtol=1e-5)
    assert (
        out.decisions["pacer"].tolist()
        == np.where(in_a4c, out["pacer"] >= 0.5, out["pacer"] >= -0.5).tolist()
    )
