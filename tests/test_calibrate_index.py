"""`echosearch calibrate --data DIR --labels labels.csv`: a site calibrates its labels on the clips it
already indexed (ground truth by path, SOP UID or study UID), no synthetic archive needed, no clip
read again; `relabel` then puts the calibrated probabilities on every clip."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.store.db import open_db
from echosearch.store.schema import Label
from echosearch.synth import synthesize_archive


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_task_bundle) -> dict:
    root = tmp_path_factory.mktemp("calindex")
    archive, data = root / "archive", root / "data"
    synthesize_archive(archive, patients=3, seed=41, frames=(6, 8))
    run_index(IndexOptions(paths=[str(archive)], data_dir=str(data), model=str(tiny_task_bundle), workers=0,
                           frames="uniform:4", progress=False))  # fmt: skip
    with open(archive / "manifest.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    return {"archive": archive, "data": data, "manifest": manifest, "bundle": tiny_task_bundle}


def _labels_csv(path: Path, rows: list[dict], key: str) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[key, "Pacemaker", "ejection_fraction"])
        w.writeheader()
        w.writerows(rows)
    return path


def _truth(indexed, key: str, how=lambda r, key: r[key]) -> list[dict]:
    # both classes, whatever the random tiny model scores: every other labelled clip has a pacemaker
    return [
        {key: how(r, key), "Pacemaker": "yes" if i % 2 else "no", "ejection_fraction": r["ef"]}
        for i, r in enumerate(indexed["manifest"])
    ]


@pytest.mark.parametrize("key", ["sop_uid", "path", "absolute path"])
def test_calibrate_on_the_indexed_clips_then_relabel(indexed, tmp_path, cli, key, tiny_task_bundle):
    data = indexed["data"]
    column = "path" if key.endswith("path") else key
    absolute = (
        (lambda r, k: str((indexed["archive"] / r["path"]).resolve())) if key == "absolute path" else None
    )
    labels = _labels_csv(
        tmp_path / "labels.csv", _truth(indexed, column, absolute or (lambda r, k: r[k])), column
    )
    out = tmp_path / "site-thresholds.json"
    done = cli("calibrate", "--data", str(data), "--labels", str(labels), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["clips"] == len(indexed["manifest"])  # every row found its indexed clip
    pace = result["thresholds"]["pacemaker"]
    assert {"threshold", "slope", "intercept"} <= set(pace)
    assert result["thresholds"]["ejection_fraction"]["mae"] >= 0
    assert result["skipped"] == ["view"]  # no column for it: left as it was
    assert json.loads(out.read_text())["pacemaker"]["threshold"] == pytest.approx(pace["threshold"])

    relabelled = cli("relabel", "--data", str(data), "--thresholds", str(out))
    assert relabelled.returncode == 0, relabelled.stderr
    db = open_db(data)
    try:
        with db.session() as s:
            probs = s.scalars(select(Label.value).where(Label.task == "pacemaker.probability")).all()
    finally:
        db.close()
    assert len(probs) == len(indexed["manifest"]) and all(0.0 <= p <= 1.0 for p in probs)


def test_the_default_target_is_the_site_file_in_the_cache(indexed, tmp_path, cli):
    labels = _labels_csv(tmp_path / "labels.csv", _truth(indexed, "sop_uid"), "sop_uid")
    cache = tmp_path / "cache"
    env = {**os.environ, "ECHOSEARCH_CACHE": str(cache)}
    done = cli("calibrate", "--data", str(indexed["data"]), "--labels", str(labels), env=env)
    assert done.returncode == 0, done.stderr
    written = list((cache / "thresholds").glob("*.json"))
    assert len(written) == 1 and "pacemaker" in json.loads(written[0].read_text())
    assert "apply them to every indexed clip with: echosearch relabel" in done.stdout


def test_usage_errors(indexed, tmp_path, cli):
    nobody = _labels_csv(
        tmp_path / "nobody.csv",
        [{"sop_uid": "1.2.3", "Pacemaker": "yes", "ejection_fraction": "40"}],
        "sop_uid",
    )
    bad = cli(
        "calibrate",
        "--data",
        str(indexed["data"]),
        "--labels",
        str(nobody),
        "--out",
        str(tmp_path / "t.json"),
    )
    assert bad.returncode == 1 and "no row names an indexed clip" in bad.stderr  # a data error: exit 1
    neither = cli("calibrate", "--data", str(indexed["data"]))
    assert neither.returncode == 2 and "--labels" in neither.stderr
    wrong = _labels_csv(tmp_path / "wrong.csv", [{"sop_uid": indexed["manifest"][0]["sop_uid"], "Pacemaker": "maybe", "ejection_fraction": "40"}], "sop_uid")  # fmt: skip
    bad = cli(
        "calibrate", "--data", str(indexed["data"]), "--labels", str(wrong), "--out", str(tmp_path / "t.json")
    )
    assert bad.returncode == 1 and "'maybe' is not a binary label" in bad.stderr


def test_a_view_with_enough_labelled_clips_of_each_class_gets_its_own_sigmoid(tmp_path):
    import numpy as np
    import yaml

    from echosearch.labels.scoring import ScoreResults
    from echosearch.labels.tasks import load_tasks
    from echosearch.training.calibrate import fit_calibration

    path = tmp_path / "tasks.yaml"
    view = {"kind": "categorical", "classes": {"A4C": ["A. "], "A3C": ["B. "], "PLAX": ["C. "]}}
    path.write_text(
        yaml.safe_dump(
            {"version": 1, "tasks": {"pacer": {"kind": "binary", "prompts": ["P. "]}, "view": view}},
            sort_keys=False,
        )
    )
    tasks = load_tasks(path)
    rng = np.random.default_rng(2)
    views = np.repeat([0, 1, 2], 40)  # A4C, A3C, PLAX
    y = (rng.random(120) < 0.4).astype(float)
    y[80:] = 0.0  # PLAX: negatives only, no fit of its own (MIN_VIEW_CLASS positives needed)
    # in A4C the score shows the lead; in A3C every clip scores high whatever it shows
    score = np.where(views == 0, 0.1 * y, 0.3) + 0.01 * rng.normal(size=120)
    scores = ScoreResults()
    scores["pacer"] = score.astype(np.float32)
    scores["view"] = views
    scores.classes["view"] = ("A4C", "A3C", "PLAX")
    scores.class_scores["view"] = np.eye(3, dtype=np.float32)[views]
    truth = {"pacer": y, "view": views.astype(float)}
    fitted, skipped = fit_calibration(tasks, scores, lambda task: truth[task.name])
    assert skipped == [] and set(fitted["pacer"]["views"]) == {"A4C", "A3C"}
    a4c, a3c = fitted["pacer"]["views"]["A4C"], fitted["pacer"]["views"]["A3C"]
    assert a4c["slope"] > a3c["slope"] * 5  # the A4C score carries the finding, the A3C one does not
    assert {"threshold", "slope", "intercept"} == set(a4c)
