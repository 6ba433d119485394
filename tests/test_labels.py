"""Labels as people name and read them (``--where`` forms, aliases, errors) and few-shot probes, on a
real indexed synthetic archive (the demo model when built: see ``ui_archive`` in conftest)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from sqlalchemy import select

from echosearch.errors import ConfigError, UsageError
from echosearch.labels.naming import conditions_for
from echosearch.labels.tasks import Task, load_tasks, tasks_from_dict
from echosearch.probes import auc, fit_probe
from echosearch.search import Engine, parse_where
from echosearch.store import queries as q
from echosearch.store.schema import Video

PACER = Task("pacemaker", "binary", prompts=("P. ",), aliases=("pacer",), threshold=0.2)
EF = Task("ejection_fraction", "regression", templates=("EF <#>%. ",), value_range=(10, 75, 1),
          aliases=("ef", "lvef"), display_name="EF", unit="%")  # fmt: skip
LV = Task("lv_size", "categorical", classes={"normal": ("N. ",), "mild": ("M. ",), "moderate": ("MO. ",),
          "severe": ("S. ",)}, display_name="LV size")  # fmt: skip
TASKS = [PACER, EF, LV]
STORED = {"pacemaker", "pacemaker.positive", "pacemaker.probability", "ejection_fraction", "lv_size"}


def _cond(text_key, op, value, stored=STORED):
    return [(c.task, c.op, c.value) for c in conditions_for(text_key, op, value, TASKS, stored)]


# ---------------------------------------------------------------- names and forms


def test_aliases_and_any_case_name_the_same_task():
    assert _cond("EF", "<", "40") == _cond("lvef", "<", "40") == [("ejection_fraction", "<", 40.0)]
    assert _cond("Ejection Fraction", "<", "40") == [("ejection_fraction", "<", 40.0)]


def test_binary_yes_no_and_positive_use_the_stored_decision():
    assert (
        _cond("pacer", "=", "yes")
        == _cond("pacemaker.positive", "=", "1")
        == [("pacemaker.positive", "=", 1.0)]
    )
    assert (
        _cond("pacemaker", "=", "no") == _cond("pacemaker", "!=", "yes") == [("pacemaker.positive", "=", 0.0)]
    )


def test_binary_number_is_the_calibrated_probability_where_stored_else_the_raw_score():
    assert _cond("pacemaker", ">", "0.9") == [("pacemaker.probability", ">", 0.9)]
    assert _cond("pacemaker.score", ">", "0.1") == [("pacemaker", ">", 0.1)]
    assert _cond("pacemaker", ">", "0.1", stored={"pacemaker"}) == [("pacemaker", ">", 0.1)]


def test_yes_without_a_stored_decision_falls_back_to_the_threshold():
    assert _cond("pacemaker", "=", "yes", stored={"pacemaker"}) == [("pacemaker", ">=", 0.2)]
    no_threshold = Task("tavr", "binary", prompts=("T. ",))
    with pytest.raises(UsageError, match="no calibrated threshold"):
        conditions_for("tavr", "=", "yes", [no_threshold], {"tavr"})


def test_categorical_compares_class_names_in_task_order():
    assert _cond("lv_size", ">=", "moderate") == [("lv_size", ">=", 2.0)]
    assert _cond("LV size", "=", "Normal") == [("lv_size", "=", 0.0)]
    with pytest.raises(UsageError, match="normal, mild, moderate, severe"):
        _cond("lv_size", ">=", "huge")


@pytest.mark.parametrize(
    ("key", "op", "value", "message"),
    [
        (
            "foo",
            ">",
            "1",
            r"unknown label 'foo'; labels: pacemaker \(pacer\), ejection_fraction \(ef, lvef\)",
        ),
        ("pacemaker.bogus", "=", "1", "unknown label field"),
        ("pacemaker", ">", "1.5", "probability between 0 and 1"),
        ("pacemaker", ">", "yes", "compare pacemaker with = yes"),
        ("ef", "<", "forty", "takes a number"),
        ("ef.positive", "=", "1", "is a regression label"),
        ("ef", "!=", "40", "cannot use"),
    ],
)
def test_bad_label_conditions_are_usage_errors_that_say_why(key, op, value, message):
    with pytest.raises(UsageError, match=message):
        _cond(key, op, value)


def test_task_file_names_must_not_collide():
    spec = {"kind": "regression", "templates": ["EF <#>%. "], "range": [10, 70]}
    with pytest.raises(ConfigError, match="'ef' is also task 'ejection_fraction'"):
        tasks_from_dict({"tasks": {"ejection_fraction": {**spec, "aliases": ["EF"]}, "ef": spec}})
    with pytest.raises(ConfigError, match="alias 'lv.size'"):
        tasks_from_dict({"tasks": {"x": {**spec, "aliases": ["lv.size"]}}})


def test_demo_tasks_have_display_names_and_the_readme_aliases():
    tasks = {t.name: t for t in load_tasks("configs/tasks/demo.yaml")}
    assert {"ef", "lvef"} <= {a.lower() for a in tasks["ejection_fraction"].aliases}
    assert all(t.display_name for t in tasks.values())


# ---------------------------------------------------------------- on a real index


@pytest.fixture(scope="module")
def engine(ui_archive):
    with Engine.open(ui_archive["data"]) as eng:
        yield eng


def test_unknown_label_on_an_index_lists_its_labels(engine):
    with pytest.raises(UsageError, match=r"unknown label 'foo'.*ejection_fraction"):
        parse_where(["foo > 1"], engine)


def test_alias_filter_selects_the_same_clips_as_the_task_name(engine):
    name = engine.label_catalog()[0][0].name  # any task of the index, by its own name and its key form
    tasks = {t.name: t for t in engine.label_catalog()[0]}
    ef = (
        "ef"
        if "ejection_fraction" in tasks and "ef" in {a.lower() for a in tasks["ejection_fraction"].aliases}
        else None
    )
    if ef is None:
        pytest.skip(f"this index's tasks have no EF alias (first task {name})")
    with engine.db.session() as s:
        a = q.filter_video_ids(s, parse_where(["ef < 50"], engine))
        b = q.filter_video_ids(s, parse_where(["ejection_fraction < 50"], engine))
    assert a.tolist() == b.tolist() and len(a)


def test_like_wildcards_in_manufacturer_are_literal(engine):
    with engine.db.session() as s:
        makers = {v.manufacturer for v in s.scalars(select(Video))}
        assert any(makers)
        assert q.filter_video_ids(s, q.VideoFilter(manufacturers=["%"])).size == 0
        assert q.filter_video_ids(s, q.VideoFilter(manufacturers=["_"])).size == 0
        first = sorted(m for m in makers if m)[0]
        assert q.filter_video_ids(s, q.VideoFilter(manufacturers=[first[:3]])).size > 0


def test_cli_unknown_label_exits_2_with_one_line(cli, ui_archive):
    done = cli("search", "pacemaker", "--data", str(ui_archive["data"]), "--where", "foo > 1")
    assert done.returncode == 2, done.stderr
    assert "unknown label 'foo'" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- probes


def test_probe_fit_separates_a_linear_finding_and_reports_nested_cv_auc():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 8))
    y = (x[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
    p = fit_probe("toy", "binary", x, y)
    assert p.metric["auc"] > 0.85 and p.counts == {"yes": int(y.sum()), "no": int(80 - y.sum())}
    assert auc(p.scores(x), y) > 0.9


def test_probe_regression_and_categorical_fit():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 16))
    r = fit_probe("val", "regression", x, 3 * x[:, 1] + 10)
    assert r.metric["mae"] < 1.0
    c = fit_probe(
        "grade", "categorical", x, np.where(x[:, 2] > 0.5, "high", np.where(x[:, 2] < -0.5, "low", "mid"))
    )
    assert c.classes == ["high", "low", "mid"] and c.metric["accuracy"] > 0.6


def test_probe_needs_both_classes():
    with pytest.raises(UsageError, match="at least 2 labelled clips of each"):
        fit_probe("toy", "binary", np.zeros((5, 4)), [1, 1, 1, 1, 0])


@pytest.fixture
def own_data(ui_archive, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ui_archive["data"], data)
    return data


def test_probe_train_labels_every_clip_and_is_filterable(cli, own_data):
    with Engine.open(own_data) as eng, eng.db.session() as s:
        videos = list(s.scalars(select(Video).order_by(Video.id)))
    labels = own_data.parent / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "dotted"])
        for i, v in enumerate(videos):
            w.writerow([v.path, "yes" if i % 2 else "no"])
    done = cli("probe", "train", "dotted", "--labels", str(labels), "--data", str(own_data), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "binary" and doc["labelled"] == len(videos) and doc["clips_labelled"] == len(videos)
    assert "auc" in doc["metric"]
    found = cli("search", "SEVERE DILATED LEFT VENTRICLE.", "--literal", "-k", "50", "--data", str(own_data),
                "--where", "dotted = yes", "--json")  # fmt: skip
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["results"]
    assert hits and all(
        h["labels"]["dotted.positive"] == 1.0 and "dotted.probability" in h["labels"] for h in hits
    )
    assert cli("relabel", "--data", str(own_data)).returncode == 0  # replaces every label of the clips...
    again = cli("search", "SEVERE DILATED LEFT VENTRICLE.", "--literal", "-k", "50", "--data", str(own_data),
                "--where", "dotted = yes", "--json")  # fmt: skip
    assert [h["video_id"] for h in json.loads(again.stdout)["results"]] == [
        h["video_id"] for h in hits
    ]  # ...but the probe's
    listed = cli("probe", "list", "--data", str(own_data))
    assert "dotted: binary probe on" in listed.stdout
    assert cli("probe", "remove", "dotted", "--data", str(own_data)).returncode == 0
    gone = cli("search", "x", "--data", str(own_data), "--where", "dotted = yes")
    assert gone.returncode == 2 and "unknown label 'dotted'" in gone.stderr


def test_probe_train_refuses_a_missing_column_and_a_taken_name(cli, own_data, tmp_path):
    labels = tmp_path / "l.csv"
    labels.write_text("path,other\na.dcm,1\n")
    done = cli("probe", "train", "dotted", "--labels", str(labels), "--data", str(own_data))
    assert done.returncode == 1 and "no column 'dotted'" in done.stderr
    taken = cli("probe", "train", "ejection_fraction", "--labels", str(labels), "--data", str(own_data))
    assert taken.returncode in (1, 2) and "Traceback" not in taken.stderr


# ---------------------------------------------------------------- calibrated probabilities, readable labels


def test_readable_labels_speak_in_decisions_estimates_and_classes():
    from echosearch.labels.naming import readable

    labels = {"pacemaker": 0.21, "pacemaker.positive": 1.0, "pacemaker.probability": 0.973,
              "ejection_fraction": 48.2, "lv_size": "moderate"}  # fmt: skip
    assert readable(labels, TASKS, {"ejection_fraction": 7.1}) == [
        "pacemaker: yes, 0.97",
        "EF ≈ 48% (model estimate, ±7)",
        "LV size: moderate",
    ]
    assert readable({"pacemaker": 0.21}, [PACER]) == ["pacemaker: score 0.21 (not calibrated)"]
    assert readable({"pacemaker.positive": 0.0}, [PACER]) == ["pacemaker: no"]
