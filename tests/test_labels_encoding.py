"""Stored labels (echosearch.labels.encoding): the rows and keys every writer and reader shares."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from echosearch.errors import ConfigError
from echosearch.labels.calibration import load_thresholds, save_thresholds
from echosearch.labels.encoding import (
    as_values,
    derived_keys,
    grade_key,
    is_derived,
    positive_key,
    probability_key,
    result_rows,
)
from echosearch.labels.scoring import ScoreResults, score_tasks
from echosearch.labels.tasks import Task
from echosearch.probes import fit_probe

REPO = Path(__file__).resolve().parents[1]


def test_keys_of_a_binary_task():
    assert (positive_key("pacemaker"), probability_key("pacemaker")) == (
        "pacemaker.positive",
        "pacemaker.probability",
    )
    assert derived_keys("pacemaker") == ("pacemaker.positive", "pacemaker.probability", "pacemaker.grade")
    assert is_derived("pacemaker.positive") and is_derived("pacemaker.probability")
    assert grade_key("lv_size") == "lv_size.grade" and is_derived("lv_size.grade")
    assert not is_derived("pacemaker") and not is_derived("lv_size")


def test_result_rows_per_task_kind_and_the_view():
    results = ScoreResults()
    results["pacemaker"] = np.array([0.3, -0.1], np.float32)
    results.decisions["pacemaker"] = np.array([True, False])
    results.probabilities["pacemaker"] = np.array([0.9, 0.2], np.float32)
    results["ejection_fraction"] = np.array([55.0, 30.0], np.float32)
    results["view"] = np.array([1, 0])
    results.classes["view"] = ("A4C", "PLAX")
    rows, view = result_rows(results, 0)
    assert rows == [
        ("pacemaker", pytest.approx(0.3), None),
        ("pacemaker.positive", 1.0, None),
        ("pacemaker.probability", pytest.approx(0.9), None),
        ("ejection_fraction", 55.0, None),
        ("view", 1.0, "PLAX"),
    ]
    assert view == "PLAX"
    rows, view = result_rows(results, 1)
    assert as_values(rows) == {
        "pacemaker": pytest.approx(-0.1),
        "pacemaker.positive": 0.0,
        "pacemaker.probability": pytest.approx(0.2),
        "ejection_fraction": 30.0,
        "view": "A4C",
    }
    assert view == "A4C"
    graded = ScoreResults()  # a graded categorical task: its class and how far along its scale
    graded["lv_size"] = np.array([2])
    graded.classes["lv_size"] = ("normal", "mild", "moderate", "severe")
    graded.grades["lv_size"] = np.array([2.4], np.float32)
    assert result_rows(graded, 0)[0] == [
        ("lv_size", 2.0, "moderate"),
        ("lv_size.grade", pytest.approx(2.4), None),
    ]
    bare = ScoreResults()  # a binary task without a threshold or a Platt fit: its raw score only
    bare["pacemaker"] = np.array([0.3], np.float32)
    assert result_rows(bare, 0) == ([("pacemaker", pytest.approx(0.3), None)], None)


def test_probes_store_the_same_keys_as_zero_shot_tasks():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 10)
    x = rng.normal(size=(20, 4)) + y[:, None]
    probe = fit_probe("rv_dilation", "binary", x, y.tolist())
    rows = probe.label_rows([7], x[:1])
    assert {r[0] for r in rows} == {7}
    assert {r[1] for r in rows} == {
        "rv_dilation",
        positive_key("rv_dilation"),
        probability_key("rv_dilation"),
    }
    labels = as_values(r[1:] for r in rows)
    assert labels[positive_key("rv_dilation")] == float(labels[probability_key("rv_dilation")] >= 0.5)


def test_a_binary_thresholds_entry_gives_decisions_and_probabilities(tmp_path):
    path = save_thresholds(
        tmp_path / "t.json", {"pacemaker": {"threshold": 0.0, "slope": 10.0, "intercept": 0.0}}
    )
    thresholds = load_thresholds(path)
    frames = np.array([[[1.0, 0.0]], [[0.0, 1.0]]], np.float32)  # two one-frame clips
    texts = {"P. ": [1.0, 0.0], "N. ": [0.0, 1.0]}
    task = Task("pacemaker", "binary", prompts=("P. ",), negative_prompts=("N. ",))
    results = score_tasks([task], frames, lambda t: np.array([texts[x] for x in t]), thresholds)
    rows, _ = result_rows(results, 0)
    assert ("pacemaker.positive", 1.0, None) in rows
    prob = dict((r[0], r[1]) for r in rows)["pacemaker.probability"]
    assert prob == pytest.approx(1 / (1 + np.exp(-10.0)), rel=1e-5)
    with pytest.raises(ConfigError, match="takes threshold, slope, intercept"):
        score_tasks([task], frames, lambda t: np.array([texts[x] for x in t]), {"pacemaker": {"normal": 0.1}})


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module (f-string parts included), without its docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_only_the_encoding_spells_the_derived_label_keys():
    """``TASK.positive``/``TASK.probability`` are named through echosearch.labels.encoding, so a new
    writer or reader cannot drift from what the index stores."""
    own = REPO / "echosearch" / "labels" / "encoding.py"
    found = [
        f"{path.relative_to(REPO)}:{line}: {text!r}"
        for folder in ("echosearch", "indexer", "ui", "benchmarks")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != own
        for line, text in _string_constants(path)
        if ".positive" in text or ".probability" in text
    ]
    assert not found, "spell these with echosearch.labels.encoding:\n" + "\n".join(found)
