"""Calibration (echosearch.labels.calibration): F1 thresholds, Platt probabilities, class offsets,
thresholds files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from echosearch.errors import ConfigError, EchosearchError
from echosearch.labels.calibration import (
    CalibrationError,
    accuracy_offsets,
    f1_threshold,
    fit_binary,
    load_thresholds,
    platt_scaling,
    probability,
    resolve_tasks,
    save_thresholds,
    view_calibrations,
)
from echosearch.labels.tasks import load_tasks, task_to_dict


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
    assert f1_threshold(np.array(scores), np.array(labels)) == pytest.approx(expected)


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
        t = f1_threshold(torch.tensor(scores), labels.astype(int))
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
    with pytest.raises(CalibrationError, match=message):
        f1_threshold(np.array(scores), np.array(labels))


def test_accuracy_offsets_undo_a_class_bias():
    """Class 2 wins every clip by a wording bias; the fitted offsets restore the true argmax."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=60)
    scores = rng.normal(0.0, 0.01, size=(60, 3))
    scores[np.arange(60), y] += 0.05  # the right class is best...
    scores[:, 2] += 0.08  # ...until class 2's bias beats it everywhere
    assert (scores.argmax(1) == y).mean() < 0.5
    offsets = accuracy_offsets(scores, y)
    assert offsets[0] == 0.0 and offsets[2] < -0.03
    assert ((scores + offsets).argmax(1) == y).mean() == 1.0
    only_two = y < 2  # a class the labels never show keeps offset 0
    assert accuracy_offsets(scores[only_two][:, :2], y[only_two]).tolist()[0] == 0.0
    with pytest.raises(CalibrationError, match="N labels"):
        accuracy_offsets(scores, y[:5])


@pytest.mark.parametrize("name", ["thresholds.yaml", "thresholds.json"])
def test_thresholds_round_trip(tmp_path, name):
    path = save_thresholds(tmp_path / name, {"pacemaker": 0.2125, "tavr": -0.01})
    assert load_thresholds(path) == {"pacemaker": 0.2125, "tavr": -0.01}


def test_thresholds_file_holds_class_offsets(tmp_path):
    data = {"pacemaker": 0.2, "lv_size": {"normal": 0.0, "dilated": -0.015}}
    path = save_thresholds(tmp_path / "t.json", data)
    assert load_thresholds(path) == data
    path.write_text('{"lv_size": {"dilated": "big"}}')
    with pytest.raises(
        ConfigError, match="task 'lv_size': offset of class 'dilated' must be a finite number"
    ):
        load_thresholds(path)


def test_thresholds_errors(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("pacemaker: high\n")
    with pytest.raises(ConfigError, match="task 'pacemaker': threshold must be a finite number"):
        load_thresholds(path)
    path.write_text("- 0.3\n")
    with pytest.raises(ConfigError, match="mapping of task name"):
        load_thresholds(path)
    with pytest.raises(EchosearchError, match="'tavr'"):
        save_thresholds(tmp_path / "x.json", {"tavr": float("nan")})


def test_site_task_file_keeps_the_bundle_thresholds_only_of_unchanged_tasks(tmp_path, tiny_task_bundle):
    """A calibrated threshold is on its task's score scale: a reworded task must not inherit it."""
    from echosearch.models import open_bundle

    bundle = open_bundle(tiny_task_bundle)
    assert bundle.thresholds == {"pacemaker": 0.0}
    own = {t.name: task_to_dict(t) for t in bundle.load_tasks()}
    site = tmp_path / "site.yaml"
    site.write_text(
        yaml.safe_dump({"tasks": {"pacemaker": {**own["pacemaker"], "description": "site text"}}})
    )
    assert resolve_tasks(bundle, site)[1] == {"pacemaker": 0.0}  # same sentences: still calibrated
    reworded = {**own["pacemaker"], "negative_prompts": ["NO PACER LEAD IS SEEN. "]}
    site.write_text(yaml.safe_dump({"tasks": {"pacemaker": reworded}}))
    tasks, thresholds = resolve_tasks(bundle, site)
    assert [t.name for t in tasks] == ["pacemaker"] and thresholds == {}
    site_thresholds = save_thresholds(tmp_path / "site-thresholds.json", {"pacemaker": 0.05})
    assert resolve_tasks(bundle, site, site_thresholds)[1] == {"pacemaker": 0.05}
    assert resolve_tasks(bundle)[1] == {"pacemaker": 0.0}  # no site file: the bundle's own


def test_documented_thresholds_example_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "configs" / "tasks" / "README.md").read_text()
    section = readme.split("## Thresholds file", 1)[1]
    path = tmp_path / "thresholds.yaml"
    path.write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    loaded = load_thresholds(path)
    assert loaded["pacemaker"]["threshold"] == 0.2125 and loaded["tavr"] == 0.198
    assert loaded["pacemaker"]["views"]["A4C"]["slope"] == 70.2
    assert loaded["ejection_fraction"] == {"mae": 7.1}
    assert set(loaded["lv_size"]) == {
        "normal",
        "mild",
        "moderate",
        "severe",
    }


def test_platt_probabilities_are_monotone_and_fit_the_labels():
    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.3
    s = 0.05 * y + 0.02 * rng.normal(size=400)  # raw cosine differences: tiny
    slope, intercept = platt_scaling(s, y)
    p = probability(s, slope, intercept)
    assert slope > 0 and np.all(np.diff(p[np.argsort(s)]) >= 0)
    assert abs(float(p.mean()) - y.mean()) < 0.03  # calibrated on average
    assert p[y].mean() > 0.7 and p[~y].mean() < 0.2


def test_a_probability_anchored_at_the_threshold_agrees_with_the_decision():
    rng = np.random.default_rng(5)
    y = rng.random(300) < 0.2
    s = 0.04 * y + 0.03 * rng.normal(size=300)
    threshold = f1_threshold(s, y)
    slope, intercept = platt_scaling(s, y, midpoint=threshold)
    p = probability(s, slope, intercept)
    assert slope > 0 and np.array_equal(p >= 0.5, s >= threshold)


def test_a_fitted_binary_entry_says_yes_exactly_when_its_probability_is_at_least_one_half():
    rng = np.random.default_rng(6)
    y = rng.random(300) < 0.25
    s = 0.04 * y + 0.03 * rng.normal(size=300)
    entry = fit_binary(s, y)
    p = probability(s, entry["slope"], entry["intercept"])
    assert np.array_equal(p >= 0.5, s >= entry["threshold"] - 1e-9)
    # a free sigmoid is better calibrated than one pinned to the F1 threshold (mean p vs prevalence)
    pinned = probability(s, *platt_scaling(s, y, midpoint=f1_threshold(s, y)))
    assert abs(p.mean() - y.mean()) <= abs(pinned.mean() - y.mean()) + 1e-6
    # a task whose score falls with the finding keeps its F1 threshold for decisions
    assert fit_binary(-s, y)["threshold"] == pytest.approx(f1_threshold(-s, y))


def test_per_view_fits_round_trip_and_are_checked(tmp_path, task_file):
    a4c = {"threshold": 0.05, "slope": 40.0, "intercept": -2.0}
    entry = {"threshold": 0.1, "slope": 30.0, "intercept": -3.0, "views": {"A4C": a4c}}
    path = save_thresholds(tmp_path / "t.json", {"pacer": entry})
    assert load_thresholds(path) == {"pacer": entry}
    pacer = next(t for t in load_tasks(task_file) if t.kind == "binary")
    assert view_calibrations(pacer, entry) == {"A4C": (0.05, 40.0, -2.0)}
    assert view_calibrations(pacer, {"threshold": 0.1}) == {} and view_calibrations(pacer, 0.1) == {}
    with pytest.raises(ConfigError, match="views.A4C needs exactly"):
        view_calibrations(pacer, {**entry, "views": {"A4C": {"slope": 1.0}}})
