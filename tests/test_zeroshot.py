"""Zero-shot scoring: the reference outputs, hand-worked cases, task files, thresholds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from echosearch import zeroshot as zs
from echosearch.errors import ConfigError, EchosearchError


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# ------------------------------------------------------------------------------------------ golden


@pytest.fixture(scope="module")
def golden(echoclip_ref):
    with np.load(echoclip_ref / "golden_zeroshot.npz") as z:
        return {k: z[k] for k in z.files}


def test_binary_scores_match_reference(golden):
    got = zs.binary_scores(golden["video_frame_embeddings"], golden["binary_prompt_embeddings"])
    assert got.dtype == np.float32 and got.shape == golden["binary_scores"].shape
    assert np.abs(got - golden["binary_scores"]).max() <= 1e-5


def test_regression_predictions_match_reference(golden):
    got = zs.regression_predictions(
        golden["video_frame_embeddings"],
        golden["regression_prompt_embeddings"],
        golden["regression_prompt_values"],
    )
    assert got.dtype == np.float32
    assert np.abs(got - golden["regression_predictions"]).max() <= 1e-5


def test_reference_match_holds_in_small_chunks_and_torch_input(golden, monkeypatch):
    monkeypatch.setattr(zs, "_CHUNK_ELEMENTS", 1)  # one video per chunk
    frames = torch.from_numpy(golden["video_frame_embeddings"])
    got = zs.regression_predictions(
        frames, torch.from_numpy(golden["regression_prompt_embeddings"]), golden["regression_prompt_values"]
    )
    assert np.abs(got - golden["regression_predictions"]).max() <= 1e-5
    got = zs.binary_scores(frames, golden["binary_prompt_embeddings"])
    assert np.abs(got - golden["binary_scores"]).max() <= 1e-5


def test_echoclip_prompt_file_converts(echoclip_ref):
    data = json.loads((echoclip_ref / "prompts_used.json").read_text())
    tasks = {t.name: t for t in zs.tasks_from_echoclip_prompts(data)}
    assert set(tasks) == set(data)
    for name, entry in data.items():
        assert tasks[name].kind == entry["mode"]
    texts, values = tasks["ejection_fraction"].expanded()
    assert len(texts) == 101 * len(data["ejection_fraction"]["label_sources"])
    assert all(zs.SLOT not in t for t in texts)


# ------------------------------------------------------------------------------------------ scorers


def test_binary_hand_computed():
    frames = np.array([[unit(0), unit(90)], [unit(90), unit(90)]], dtype=np.float32)
    prompts = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    # video 0: (1 + 0.6 + 0 + 0.8) / 4; video 1: (0 + 0.8) / 2
    np.testing.assert_allclose(zs.binary_scores(frames, prompts), [0.6, 0.4], atol=1e-6)


def test_binary_negative_prompts_subtract():
    frames = np.array([[unit(0), unit(90)], [unit(90), unit(90)]], dtype=np.float32)
    positives = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    negatives = np.array([[0.0, 1.0]], dtype=np.float32)
    # video 0: 0.6 - (0 + 1) / 2; video 1: 0.4 - 1
    np.testing.assert_allclose(zs.binary_scores(frames, positives, negatives), [0.1, -0.6], atol=1e-6)


def test_regression_hand_computed():
    # ten prompts at 0, 10, ..., 90 degrees with values 0, 10, ..., 90; top 20% = 2 ranks
    prompts = np.array([unit(a) for a in range(0, 100, 10)], dtype=np.float32)
    values = np.arange(0, 100, 10)
    # frame at 42 deg ranks 40, 50; frame at 12 deg ranks 10, 20
    # per-rank means over frames: 25, 35 -> lower median 25
    frames = np.array([[unit(42), unit(12)]], dtype=np.float32)
    np.testing.assert_allclose(zs.regression_predictions(frames, prompts, values), [25.0])
    # five prompts -> k = 1: the best prompt's value averaged over frames
    frames = np.array([[unit(31), unit(88)]], dtype=np.float32)
    got = zs.regression_predictions(frames, prompts[[0, 3, 5, 7, 9]], values[[0, 3, 5, 7, 9]])
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
    np.testing.assert_allclose(zs.regression_predictions(frames, prompts, values), expected, atol=1e-5)
    monkeypatch.setattr(zs, "_CHUNK_ELEMENTS", 3 * 5 * m)  # chunks of three videos, last one short
    np.testing.assert_allclose(zs.regression_predictions(frames, prompts, values), expected, atol=1e-5)


def test_float16_memmap_in_chunks(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 4, 8)).astype(np.float16)
    mm = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float16, shape=data.shape)
    mm[:] = data
    prompts = rng.normal(size=(3, 8)).astype(np.float32)
    whole = zs.binary_scores(data.astype(np.float32), prompts)
    monkeypatch.setattr(zs, "_CHUNK_ELEMENTS", 40)
    np.testing.assert_allclose(zs.binary_scores(mm, prompts), whole, atol=1e-5)


def test_categorical_hand_computed():
    prompts = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    frames = np.array([[[0.8, 0.6]], [[0.0, 1.0]]], dtype=np.float32)
    pred = zs.categorical_predictions(frames, prompts, [0, 1, 1], ["a", "b"])
    # video 0: a = 0.8, b = (0.6 + 0.96) / 2 = 0.78; video 1: a = 0, b = (1 + 0.8) / 2 = 0.9
    np.testing.assert_allclose(pred.scores, [[0.8, 0.78], [0.0, 0.9]], atol=1e-6)
    assert pred.index.tolist() == [0, 1] and pred.labels == ["a", "b"]


def test_categorical_rejects_class_without_prompts():
    frames = np.zeros((1, 1, 2), dtype=np.float32)
    with pytest.raises(EchosearchError, match="classes without prompts: c"):
        zs.categorical_predictions(frames, np.eye(2, dtype=np.float32), [0, 1], ["a", "b", "c"])


def test_categorical_offsets_shift_the_pick():
    prompts = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    frames = np.array([[[0.8, 0.6]], [[0.6, 0.8]]], dtype=np.float32)
    assert zs.categorical_predictions(frames, prompts, [0, 1], ["a", "b"]).index.tolist() == [0, 1]
    shifted = zs.categorical_predictions(frames, prompts, [0, 1], ["a", "b"], offsets=[0.0, 0.3])
    assert shifted.index.tolist() == [1, 1]
    np.testing.assert_allclose(shifted.scores, [[0.8, 0.9], [0.6, 1.1]], atol=1e-6)


def test_accuracy_offsets_undo_a_class_bias():
    """Class 2 wins every clip by a wording bias; the fitted offsets restore the true argmax."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=60)
    scores = rng.normal(0.0, 0.01, size=(60, 3))
    scores[np.arange(60), y] += 0.05  # the right class is best...
    scores[:, 2] += 0.08  # ...until class 2's bias beats it everywhere
    assert (scores.argmax(1) == y).mean() < 0.5
    offsets = zs.accuracy_offsets(scores, y)
    assert offsets[0] == 0.0 and offsets[2] < -0.03
    assert ((scores + offsets).argmax(1) == y).mean() == 1.0
    only_two = y < 2  # a class the labels never show keeps offset 0
    assert zs.accuracy_offsets(scores[only_two][:, :2], y[only_two]).tolist()[0] == 0.0
    with pytest.raises(zs.CalibrationError, match="N labels"):
        zs.accuracy_offsets(scores, y[:5])


def test_shape_errors_are_clear():
    with pytest.raises(EchosearchError, match=r"\[N, F, D\]"):
        zs.binary_scores(np.zeros((3, 4)), np.zeros((2, 4)))
    with pytest.raises(EchosearchError, match="dimension 3"):
        zs.binary_scores(np.zeros((1, 2, 4)), np.zeros((2, 3)))
    with pytest.raises(EchosearchError, match="2 prompt values for 3"):
        zs.regression_predictions(np.zeros((1, 2, 4)), np.zeros((3, 4)), [1, 2])


# ------------------------------------------------------------------------------------------ f1


@pytest.mark.parametrize(
    ("scores", "labels", "expected"),
    [
        # cuts: 0.8 -> F1 2/3, 0.4 -> 1/2, 0.35 -> 4/5, 0.1 -> 2/3
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.35),
        # separable: the highest threshold with F1 = 1
        ([0.2, 0.3, 0.7, 0.9], [0, 0, 1, 1], 0.7),
        # tied scores cannot be split: 0.9 -> 2/3, 0.5 (both) -> 4/5
        ([0.9, 0.5, 0.5], [1, 0, 1], 0.5),
        ([0.9, 0.5, 0.5], [1, 1, 0], 0.5),
        # F1 tie (0.9 and 0.4 both 2/3): the higher threshold wins
        ([0.9, 0.6, 0.5, 0.4], [1, 0, 0, 1], 0.9),
        # all positive: call everything positive
        ([0.3, 0.1, 0.2], [1, 1, 1], 0.1),
        # booleans work as labels
        ([0.3, 0.6], [False, True], 0.6),
    ],
)
def test_f1_threshold_known_cases(scores, labels, expected):
    assert zs.f1_threshold(np.array(scores), np.array(labels)) == pytest.approx(expected)


def _f1_at(scores, labels, t):
    pred = scores >= t
    tp = np.sum(pred & labels)
    return 2 * tp / (2 * tp + np.sum(pred & ~labels) + np.sum(~pred & labels))


def test_f1_threshold_is_optimal_on_random_data():
    rng = np.random.default_rng(1)
    for _ in range(20):
        labels = rng.random(30) < 0.3
        labels[0] = True
        scores = np.round(rng.normal(size=30) + labels, 1)  # rounding makes ties
        t = zs.f1_threshold(torch.tensor(scores), labels.astype(int))
        best = max(_f1_at(scores, labels, c) for c in scores)
        assert t in scores and _f1_at(scores, labels, t) == pytest.approx(best)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2], [0, 0], "no positive"),
        ([0.1, 0.2], [1], "2 scores but 1 labels"),
        ([], [], "no videos"),
        ([0.1, float("nan")], [0, 1], "NaN"),
        ([0.1, 0.2], [0, 2], "0/1"),
    ],
)
def test_f1_threshold_errors(scores, labels, message):
    with pytest.raises(zs.CalibrationError, match=message):
        zs.f1_threshold(np.array(scores), np.array(labels))


# ------------------------------------------------------------------------------------------ tasks


EXAMPLE_TASKS = {
    "version": 1,
    "tasks": {
        "pacer": {
            "kind": "binary",
            "description": "pacemaker or ICD lead",
            "prompts": ["PACER LEAD IN RIGHT VENTRICLE. ", "PACER LEAD IN RIGHT ATRIUM. "],
            "threshold": 0.25,
        },
        "ef": {
            "kind": "regression",
            "unit": "%",
            "templates": ["EF IS <#>%. ", "LVEF <#>%. "],
            "range": [30, 40],
            "step": 5,
        },
        "lv_size": {
            "kind": "categorical",
            "classes": {"normal": ["NORMAL LV SIZE. "], "dilated": ["DILATED LV. ", "LARGE LV. "]},
        },
    },
}


@pytest.fixture
def task_file(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(EXAMPLE_TASKS, sort_keys=False))
    return path


def test_load_tasks_and_expand(task_file):
    pacer, ef, lv = zs.load_tasks(task_file)
    assert (pacer.kind, pacer.threshold, pacer.description) == ("binary", 0.25, "pacemaker or ICD lead")
    texts, values = ef.expanded()
    assert texts == ["EF IS 30%. ", "EF IS 35%. ", "EF IS 40%. ", "LVEF 30%. ", "LVEF 35%. ", "LVEF 40%. "]
    assert values.tolist() == [30, 35, 40, 30, 35, 40] and ef.unit == "%"
    texts, owner = lv.expanded()
    assert texts == ["NORMAL LV SIZE. ", "DILATED LV. ", "LARGE LV. "] and owner.tolist() == [0, 1, 1]
    assert lv.class_names == ("normal", "dilated")


def test_fractional_steps_read_cleanly():
    task = zs.task_from_dict(
        "x", {"kind": "regression", "templates": ["A <#> CM"], "range": [0, 0.3], "step": 0.1}
    )
    assert task.expanded()[0] == ["A 0 CM", "A 0.1 CM", "A 0.2 CM", "A 0.3 CM"]


def test_tasks_round_trip(task_file, tmp_path):
    tasks = zs.load_tasks(task_file)
    for name in ("again.yaml", "again.json"):
        assert zs.load_tasks(zs.save_tasks(tasks, tmp_path / name)) == tasks


def _with(task: str, **changes):
    data = json.loads(json.dumps(EXAMPLE_TASKS))
    for key, value in changes.items():
        if value is None:
            data["tasks"][task].pop(key)
        else:
            data["tasks"][task][key] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with("pacer", kind="tertiary"), "task 'pacer': 'kind' must be one of"),
        (_with("pacer", kind=None), "task 'pacer': 'kind' must be one of"),
        (_with("pacer", promts=["X"]), "task 'pacer': unknown key"),
        (_with("pacer", prompts=[]), "task 'pacer': 'prompts' must be a non-empty list"),
        (_with("pacer", prompts="ONE STRING"), "task 'pacer': 'prompts' must be a non-empty list"),
        (_with("pacer", prompts=["LEAD <#> CM"]), "task 'pacer': binary prompt contains '<#>'"),
        (_with("pacer", threshold="high"), "task 'pacer': 'threshold' must be a finite number"),
        (_with("pacer", negative_prompts=[]), "task 'pacer': 'negative_prompts' must be a non-empty list"),
        (_with("pacer", negative_prompts=["NO LEAD <#>"]), "task 'pacer': binary prompt contains '<#>'"),
        (
            _with("pacer", negative_prompts=["PACER LEAD IN RIGHT ATRIUM. "]),
            "task 'pacer': prompt is both positive and negative: 'PACER LEAD IN RIGHT ATRIUM. '",
        ),
        (_with("ef", negative_prompts=["X"]), "task 'ef': unknown key"),
        (_with("ef", templates=["EF IS NORMAL"]), "task 'ef': regression template lacks"),
        (_with("ef", range=[40, 30]), "task 'ef': need step > 0 and start <= stop"),
        (_with("ef", step=0), "task 'ef': need step > 0"),
        (_with("ef", range=[0]), r"task 'ef': 'range' must be \[start, stop\]"),
        (_with("ef", threshold=0.3), "task 'ef': unknown key"),
        (_with("lv_size", classes={"only": ["X"]}), "task 'lv_size': 'classes' must map at least two"),
        (_with("lv_size", classes={"a": ["X"], "b": []}), r"task 'lv_size': 'classes.b' must be"),
        ({"pacer": {"kind": "binary"}}, "expected a mapping with a non-empty 'tasks'"),
        ({"tasks": {"bad name!": {"kind": "binary"}}}, "task name 'bad name!'"),
    ],
)
def test_task_validation_errors(tmp_path, data, message):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as info:
        zs.load_tasks(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_task_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        zs.load_tasks(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  a: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML/JSON \(line"):
        zs.load_tasks(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("tasks:\n  a: {kind: binary, prompts: [X]}\n  a: {kind: binary, prompts: [Y]}\n")
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        zs.load_tasks(dup)


# ------------------------------------------------------------------------------------------ echoclip converter


def test_tasks_from_echoclip_prompts():
    data = {
        "device": {
            "mode": "binary",
            "label_sources": ["DEVICE IS <#>CM FROM VALVE. ", "DEVICE SEEN. "],
            "testers": ["DEVICE IS 4.0CM FROM VALVE. ", "DEVICE SEEN. "],
        },
        "lead": {"mode": "binary", "label_sources": ["LEAD IN RV. "]},
        "pressure": {"mode": "regression", "label_sources": ["PRESSURE IS <#>MMHG. "], "range": [0, 10]},
        "size": {
            "mode": "categorical",
            "label_sources": ["SEVERE BIG. ", "MILD BIG. ", "MILD BIGGISH. "],
            "values": [3, 1, 1],
            "value_mapping": {"0": "Normal", "1": "Mild", "3": "Severe"},
        },
        "effusion": {
            "mode": "categorical",
            "label_sources": ["LONG A. ", "LONG B. "],
            "values": [1, 2],
            "testers": ["A. ", "B. "],
            "tester_values": [2, 1],
        },
    }
    tasks = {t.name: t for t in zs.tasks_from_echoclip_prompts(data)}
    assert tasks["device"].prompts == ("DEVICE IS 4.0CM FROM VALVE. ", "DEVICE SEEN. ")
    assert tasks["lead"].prompts == ("LEAD IN RV. ",)
    texts, values = tasks["pressure"].expanded()
    assert texts[0] == "PRESSURE IS 0MMHG. " and texts[-1] == "PRESSURE IS 10MMHG. " and len(values) == 11
    assert dict(tasks["size"].classes) == {
        "Mild": ("MILD BIG. ", "MILD BIGGISH. "),
        "Severe": ("SEVERE BIG. ",),
    }
    assert dict(tasks["effusion"].classes) == {"1": ("B. ",), "2": ("A. ",)}
    with pytest.raises(ConfigError, match="task 'x': unknown mode 'ordinal'"):
        zs.tasks_from_echoclip_prompts({"x": {"mode": "ordinal", "label_sources": ["A"]}})
    with pytest.raises(ConfigError, match="task 'y': binary prompt contains '<#>'"):
        zs.tasks_from_echoclip_prompts({"y": {"mode": "binary", "label_sources": ["A <#> B"]}})


# ------------------------------------------------------------------------------------------ score_tasks


def test_score_tasks(task_file):
    tasks = zs.load_tasks(task_file)
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
    out = zs.score_tasks(tasks, frames, encode_text, thresholds={"pacer": 0.0})
    encoded = [t for batch in calls for t in batch]
    assert sorted(encoded) == sorted(set(encoded)) and len(encoded) == 2 + 6 + 3

    def emb(texts):
        vecs = np.stack([table[t] for t in texts])
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    pacer, ef, lv = tasks
    np.testing.assert_allclose(out["pacer"], zs.binary_scores(frames, emb(pacer.prompts)), atol=1e-6)
    assert out.thresholds["pacer"] == 0.0  # the override beats the file's 0.25
    assert out.decisions["pacer"].tolist() == (out["pacer"] >= 0.0).tolist()
    texts, values = ef.expanded()
    np.testing.assert_allclose(out["ef"], zs.regression_predictions(frames, emb(texts), values))
    texts, owner = lv.expanded()
    pred = zs.categorical_predictions(frames, emb(texts), owner, lv.class_names)
    assert out["lv_size"].tolist() == pred.index.tolist()
    assert out.classes["lv_size"] == ("normal", "dilated") and out.class_scores["lv_size"].shape == (6, 2)
    # without an override the task's own threshold applies
    assert zs.score_tasks(tasks[:1], frames, encode_text).thresholds == {"pacer": 0.25}


def test_score_tasks_with_negative_prompts_and_round_trip(tmp_path):
    data = _with("pacer", negative_prompts=["NO PACER LEAD. "])
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(data))
    pacer = {t.name: t for t in zs.load_tasks(path)}["pacer"]
    assert pacer.negative_prompts == ("NO PACER LEAD. ",)
    assert pacer.expanded()[0] == [*pacer.prompts, "NO PACER LEAD. "]
    assert zs.load_tasks(zs.save_tasks([pacer], tmp_path / "again.yaml")) == [pacer]
    rng = np.random.default_rng(5)
    table = {t: rng.normal(size=8) for t in pacer.expanded()[0]}
    table = {t: v / np.linalg.norm(v) for t, v in table.items()}
    frames = rng.normal(size=(5, 3, 8)).astype(np.float32)
    frames /= np.linalg.norm(frames, axis=-1, keepdims=True)
    out = zs.score_tasks([pacer], frames, lambda texts: np.stack([table[t] for t in texts]))
    positives = np.stack([table[t] for t in pacer.prompts])
    expected = zs.binary_scores(frames, positives) - zs.binary_scores(frames, table["NO PACER LEAD. "][None])
    np.testing.assert_allclose(out["pacer"], expected, atol=1e-6)
    assert out.decisions["pacer"].tolist() == (out["pacer"] >= 0.25).tolist()


# ------------------------------------------------------------------------------------------ thresholds files


@pytest.mark.parametrize("name", ["thresholds.yaml", "thresholds.json"])
def test_thresholds_round_trip(tmp_path, name):
    path = zs.save_thresholds(tmp_path / name, {"pacemaker": 0.2125, "tavr": -0.01})
    assert zs.load_thresholds(path) == {"pacemaker": 0.2125, "tavr": -0.01}


def test_thresholds_file_holds_class_offsets(tmp_path):
    data = {"pacemaker": 0.2, "lv_size": {"normal": 0.0, "dilated": -0.015}}
    path = zs.save_thresholds(tmp_path / "t.json", data)
    assert zs.load_thresholds(path) == data
    path.write_text('{"lv_size": {"dilated": "big"}}')
    with pytest.raises(
        ConfigError, match="task 'lv_size': offset of class 'dilated' must be a finite number"
    ):
        zs.load_thresholds(path)


def test_score_tasks_applies_class_offsets_and_rejects_mismatched_entries(task_file):
    tasks = {t.name: t for t in zs.load_tasks(task_file)}
    rng = np.random.default_rng(4)
    table: dict[str, np.ndarray] = {}

    def encode_text(texts):
        for t in texts:
            table.setdefault(t, rng.normal(size=8))
        vecs = np.stack([table[t] for t in texts])
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    frames = rng.normal(size=(6, 3, 8)).astype(np.float32)
    lv = tasks["lv_size"]
    out = zs.score_tasks([lv], frames, encode_text, {"lv_size": {"dilated": 5.0}})
    assert out["lv_size"].tolist() == [1] * 6 and out.offsets == {"lv_size": {"normal": 0.0, "dilated": 5.0}}
    assert (
        zs.score_tasks([lv], frames, encode_text, {"lv_size": {"normal": 5.0}})["lv_size"].tolist() == [0] * 6
    )
    with pytest.raises(ConfigError, match="task 'lv_size' is categorical"):
        zs.score_tasks([lv], frames, encode_text, {"lv_size": 0.1})
    with pytest.raises(ConfigError, match="offsets for unknown classes huge"):
        zs.score_tasks([lv], frames, encode_text, {"lv_size": {"huge": 0.1}})
    with pytest.raises(ConfigError, match="task 'pacer' is binary"):
        zs.score_tasks([tasks["pacer"]], frames, encode_text, {"pacer": {"yes": 0.1}})


def test_thresholds_errors(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("pacemaker: high\n")
    with pytest.raises(ConfigError, match="task 'pacemaker': threshold must be a finite number"):
        zs.load_thresholds(path)
    path.write_text("- 0.3\n")
    with pytest.raises(ConfigError, match="mapping of task name"):
        zs.load_thresholds(path)
    with pytest.raises(EchosearchError, match="'tavr'"):
        zs.save_thresholds(tmp_path / "x.json", {"tavr": float("nan")})


def test_documented_example_loads(tmp_path):
    """The task-file example in configs/tasks/README.md stays valid."""
    readme = (Path(__file__).resolve().parents[1] / "configs" / "tasks" / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    assert [(t.name, t.kind) for t in zs.load_tasks(path)] == [
        ("pacemaker", "binary"),
        ("ejection_fraction", "regression"),
        ("lv_size", "categorical"),
    ]


def test_site_task_file_keeps_the_bundle_thresholds_only_of_unchanged_tasks(tmp_path, tiny_task_bundle):
    """A calibrated threshold is on its task's score scale: a reworded task must not inherit it."""
    from echosearch.models import open_bundle

    bundle = open_bundle(tiny_task_bundle)
    assert bundle.thresholds == {"pacemaker": 0.0}
    own = {t.name: zs.task_to_dict(t) for t in bundle.load_tasks()}
    site = tmp_path / "site.yaml"
    site.write_text(
        yaml.safe_dump({"tasks": {"pacemaker": {**own["pacemaker"], "description": "site text"}}})
    )
    assert zs.resolve_tasks(bundle, site)[1] == {"pacemaker": 0.0}  # same sentences: still calibrated
    reworded = {**own["pacemaker"], "negative_prompts": ["NO PACER LEAD IS SEEN. "]}
    site.write_text(yaml.safe_dump({"tasks": {"pacemaker": reworded}}))
    tasks, thresholds = zs.resolve_tasks(bundle, site)
    assert [t.name for t in tasks] == ["pacemaker"] and thresholds == {}
    site_thresholds = zs.save_thresholds(tmp_path / "site-thresholds.json", {"pacemaker": 0.05})
    assert zs.resolve_tasks(bundle, site, site_thresholds)[1] == {"pacemaker": 0.05}
    assert zs.resolve_tasks(bundle)[1] == {"pacemaker": 0.0}  # no site file: the bundle's own


def test_documented_thresholds_example_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "configs" / "tasks" / "README.md").read_text()
    section = readme.split("## Thresholds file", 1)[1]
    path = tmp_path / "thresholds.yaml"
    path.write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    loaded = zs.load_thresholds(path)
    assert loaded["pacemaker"]["threshold"] == 0.2125 and loaded["tavr"] == 0.198
    assert loaded["ejection_fraction"] == {"mae": 7.1}
    assert set(loaded["lv_size"]) == {
        "normal",
        "mild",
        "moderate",
        "severe",
    }
