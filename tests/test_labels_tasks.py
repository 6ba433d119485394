"""Task files (echosearch.labels.tasks): loading, validation, round trips, EchoCLIP's prompt file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import example_tasks

from echosearch.errors import ConfigError
from echosearch.labels.tasks import SLOT, load_tasks, save_tasks, task_from_dict, tasks_from_echoclip_prompts


def test_load_tasks_and_expand(task_file):
    pacer, ef, lv = load_tasks(task_file)
    assert (pacer.kind, pacer.threshold, pacer.description) == ("binary", 0.25, "pacemaker or ICD lead")
    texts, values = ef.expanded()
    assert texts == ["EF IS 30%. ", "EF IS 35%. ", "EF IS 40%. ", "LVEF 30%. ", "LVEF 35%. ", "LVEF 40%. "]
    assert values.tolist() == [30, 35, 40, 30, 35, 40] and ef.unit == "%"
    texts, owner = lv.expanded()
    assert texts == ["NORMAL LV SIZE. ", "DILATED LV. ", "LARGE LV. "] and owner.tolist() == [0, 1, 1]
    assert lv.class_names == ("normal", "dilated")


def test_fractional_steps_read_cleanly():
    task = task_from_dict(
        "x", {"kind": "regression", "templates": ["A <#> CM"], "range": [0, 0.3], "step": 0.1}
    )
    assert task.expanded()[0] == ["A 0 CM", "A 0.1 CM", "A 0.2 CM", "A 0.3 CM"]


def test_tasks_round_trip(task_file, tmp_path):
    tasks = load_tasks(task_file)
    for name in ("again.yaml", "again.json"):
        assert load_tasks(save_tasks(tasks, tmp_path / name)) == tasks


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (example_tasks("pacer", kind="tertiary"), "task 'pacer': 'kind' must be one of"),
        (example_tasks("pacer", kind=None), "task 'pacer': 'kind' must be one of"),
        (example_tasks("pacer", promts=["X"]), "task 'pacer': unknown key"),
        (example_tasks("pacer", prompts=[]), "task 'pacer': 'prompts' must be a non-empty list"),
        (example_tasks("pacer", prompts="ONE STRING"), "task 'pacer': 'prompts' must be a non-empty list"),
        (example_tasks("pacer", prompts=["LEAD <#> CM"]), "task 'pacer': binary prompt contains '<#>'"),
        (example_tasks("pacer", threshold="high"), "task 'pacer': 'threshold' must be a finite number"),
        (
            example_tasks("pacer", negative_prompts=[]),
            "task 'pacer': 'negative_prompts' must be a non-empty list",
        ),
        (
            example_tasks("pacer", negative_prompts=["NO LEAD <#>"]),
            "task 'pacer': binary prompt contains '<#>'",
        ),
        (
            example_tasks("pacer", negative_prompts=["PACER LEAD IN RIGHT ATRIUM. "]),
            "task 'pacer': prompt is both positive and negative: 'PACER LEAD IN RIGHT ATRIUM. '",
        ),
        (example_tasks("ef", negative_prompts=["X"]), "task 'ef': unknown key"),
        (example_tasks("ef", templates=["EF IS NORMAL"]), "task 'ef': regression template lacks"),
        (example_tasks("ef", range=[40, 30]), "task 'ef': need step > 0 and start <= stop"),
        (example_tasks("ef", step=0), "task 'ef': need step > 0"),
        (example_tasks("ef", range=[0]), r"task 'ef': 'range' must be \[start, stop\]"),
        (example_tasks("ef", threshold=0.3), "task 'ef': unknown key"),
        (
            example_tasks("lv_size", classes={"only": ["X"]}),
            "task 'lv_size': 'classes' must map at least two",
        ),
        (example_tasks("lv_size", classes={"a": ["X"], "b": []}), r"task 'lv_size': 'classes.b' must be"),
        ({"pacer": {"kind": "binary"}}, "expected a mapping with a non-empty 'tasks'"),
        ({"tasks": {"bad name!": {"kind": "binary"}}}, "task name 'bad name!'"),
    ],
)
def test_task_validation_errors(tmp_path, data, message):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as info:
        load_tasks(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_task_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_tasks(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  a: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML/JSON \(line"):
        load_tasks(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("tasks:\n  a: {kind: binary, prompts: [X]}\n  a: {kind: binary, prompts: [Y]}\n")
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_tasks(dup)


def test_echoclip_prompt_file_converts(echoclip_ref):
    data = json.loads((echoclip_ref / "prompts_used.json").read_text())
    tasks = {t.name: t for t in tasks_from_echoclip_prompts(data)}
    assert set(tasks) == set(data)
    for name, entry in data.items():
        assert tasks[name].kind == entry["mode"]
    texts, values = tasks["ejection_fraction"].expanded()
    assert len(texts) == 101 * len(data["ejection_fraction"]["label_sources"])
    assert all(SLOT not in t for t in texts)


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
    tasks = {t.name: t for t in tasks_from_echoclip_prompts(data)}
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
        tasks_from_echoclip_prompts({"x": {"mode": "ordinal", "label_sources": ["A"]}})
    with pytest.raises(ConfigError, match="task 'y': binary prompt contains '<#>'"):
        tasks_from_echoclip_prompts({"y": {"mode": "binary", "label_sources": ["A <#> B"]}})


def test_documented_example_loads(tmp_path):
    """The task-file example in configs/tasks/README.md stays valid."""
    readme = (Path(__file__).resolve().parents[1] / "configs" / "tasks" / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    assert [(t.name, t.kind) for t in load_tasks(path)] == [
        ("pacemaker", "binary"),
        ("ejection_fraction", "regression"),
        ("lv_size", "categorical"),
    ]
