"""Zero-shot task definitions: the :class:`Task`, task files (parse, validate, load, save), the
EchoCLIP prompt file's conversion, and the names a task answers to.

Why a module of its own: a task is data, not code. Tasks live in YAML files
(``configs/tasks/README.md`` documents the format) so that a site can add one without touching code;
every mistake in such a file is one line naming the file and the task. The EchoCLIP paper's own tasks
are built at ``models pull`` time from the public prompt file with :func:`tasks_from_echoclip_prompts`
(its text is not part of this repository). How a task is scored is :mod:`echosearch.labels.scoring`'s
job, its thresholds :mod:`echosearch.labels.calibration`'s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echosearch.errors import ConfigError
from echosearch.labels.files import read_structured, write_structured

SLOT = "<#>"
KINDS = ("binary", "regression", "categorical")
_MAX_REGRESSION_VALUES = 100_000


@dataclass(frozen=True)
class Task:
    """One zero-shot task, as written in a task file.

    ``prompts`` and optional ``negative_prompts`` (binary), ``templates`` + ``value_range``
    (regression: inclusive start, stop, step) or ``classes`` (categorical: class name -> prompts, in
    file order) define it; ``expanded()`` gives the prompts to encode and what each one stands for.
    """

    name: str
    kind: str
    prompts: tuple[str, ...] = ()
    negative_prompts: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    value_range: tuple[float, float, float] | None = None
    classes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    threshold: float | None = None
    description: str = ""
    unit: str = ""
    display_name: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.classes)

    @property
    def title(self) -> str:
        """What a person reads: the task file's ``display_name``, else the name without underscores."""
        return self.display_name or self.name.replace("_", " ")

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a filter may use for this task: its name, then its aliases."""
        return (self.name, *self.aliases)

    def values(self) -> np.ndarray:
        """Regression values start, start+step, ..., stop (inclusive), float64."""
        if self.value_range is None:
            return np.empty(0)
        start, stop, step = self.value_range
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        # Rounding drops float noise (0.1 * 3 = 0.30000000000000004) so prompts read "0.3".
        return np.round(start + step * np.arange(count), 9)

    def expanded(self) -> tuple[list[str], np.ndarray | None]:
        """Prompts to encode, and per prompt its value (regression) or class index (categorical).

        Binary: the prompts, then the negative prompts. Regression prompts are template-major:
        every value of the first template, then the second.
        """
        if self.kind == "binary":
            return list(self.prompts) + list(self.negative_prompts), None
        if self.kind == "regression":
            vals = self.values()
            texts = [t.replace(SLOT, format_value(v)) for t in self.templates for v in vals]
            return texts, np.tile(vals, len(self.templates))
        texts, owner = [], []
        for i, group in enumerate(self.classes.values()):
            texts.extend(group)
            owner.extend([i] * len(group))
        return texts, np.asarray(owner, dtype=np.int64)


def format_value(v: float) -> str:
    """How a number is written into a prompt: ``45`` not ``45.0``; ``2.5`` stays ``2.5``."""
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


_COMMON_KEYS = {"kind", "description", "unit", "display_name", "aliases"}
_TASK_KEYS = {
    "binary": _COMMON_KEYS | {"prompts", "negative_prompts", "threshold"},
    "regression": _COMMON_KEYS | {"templates", "range", "step"},
    "categorical": _COMMON_KEYS | {"classes"},
}
#: An alias is typed in a ``--where`` condition: no '.' (it separates ``task.positive``), no operator.
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_ -]*")


def _str_list(value: Any, what: str, fail: Callable[[str], ConfigError]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise fail(f"'{what}' must be a non-empty list of strings")
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise fail(f"'{what}' must contain only non-empty strings, got {bad[0]!r}")
    return tuple(value)


def _number(value: Any, what: str, fail: Callable[[str], ConfigError]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(f"'{what}' must be a finite number, got {value!r}")
    return float(value)


def task_from_dict(name: str, spec: Any, source: str = "tasks") -> Task:
    """Validate one task's mapping and build the :class:`Task`; errors name the task and the source."""

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{source}: task '{name}': {msg}")

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError(f"{source}: task name {name!r} must be letters, digits, '_', '-' or '.'")
    if not isinstance(spec, dict):
        raise fail("must be a mapping with at least 'kind'")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise fail(f"'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    unknown = sorted(set(spec) - _TASK_KEYS[kind])
    if unknown:
        raise fail(f"unknown key(s) for a {kind} task: {', '.join(map(str, unknown))}")
    common: dict[str, Any] = {}
    for key in ("description", "unit", "display_name"):
        if key in spec:
            if not isinstance(spec[key], str):
                raise fail(f"'{key}' must be a string")
            common[key] = spec[key]
    if "aliases" in spec:
        aliases = _str_list(spec["aliases"], "aliases", fail)
        bad = [a for a in aliases if not _ALIAS_RE.fullmatch(a.strip())]
        if bad:
            raise fail(f"alias {bad[0]!r} must start with a letter and use letters, digits, '_', '-', spaces")
        common["aliases"] = tuple(a.strip() for a in aliases)
    if kind == "binary":
        prompts = _str_list(spec.get("prompts"), "prompts", fail)
        negatives = (
            _str_list(spec["negative_prompts"], "negative_prompts", fail)
            if "negative_prompts" in spec
            else ()
        )
        slotted = [p for p in prompts + negatives if SLOT in p]
        if slotted:
            raise fail(f"binary prompt contains '{SLOT}' (fill in a value): {slotted[0]!r}")
        both = sorted(set(prompts) & set(negatives))
        if both:
            raise fail(f"prompt is both positive and negative: {both[0]!r}")
        threshold = spec.get("threshold")
        if threshold is not None:
            threshold = _number(threshold, "threshold", fail)
        return Task(name, kind, prompts=prompts, negative_prompts=negatives, threshold=threshold, **common)
    if kind == "regression":
        templates = _str_list(spec.get("templates"), "templates", fail)
        missing = [t for t in templates if SLOT not in t]
        if missing:
            raise fail(f"regression template lacks the '{SLOT}' slot: {missing[0]!r}")
        rng = spec.get("range")
        if not isinstance(rng, list) or len(rng) != 2:
            raise fail("'range' must be [start, stop] (inclusive)")
        start, stop = (_number(v, "range", fail) for v in rng)
        step = _number(spec.get("step", 1), "step", fail)
        if step <= 0 or stop < start:
            raise fail(f"need step > 0 and start <= stop, got range {rng} step {step:g}")
        if (stop - start) / step + 1 > _MAX_REGRESSION_VALUES:
            raise fail(f"range and step give more than {_MAX_REGRESSION_VALUES} values")
        return Task(name, kind, templates=templates, value_range=(start, stop, step), **common)
    classes = spec.get("classes")
    if not isinstance(classes, dict) or len(classes) < 2:
        raise fail("'classes' must map at least two class names to lists of prompts")
    groups = {}
    for cls, prompts in classes.items():
        if not isinstance(cls, str | int) or isinstance(cls, bool):
            raise fail(f"class name {cls!r} must be a string")
        groups[str(cls)] = _str_list(prompts, f"classes.{cls}", fail)
    return Task(name, kind, classes=groups, **common)


def tasks_from_dict(data: Any, source: str = "tasks") -> list[Task]:
    """Build tasks from a task file's parsed content: ``{"tasks": {name: spec, ...}}``."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict) or not data["tasks"]:
        raise ConfigError(f"{source}: expected a mapping with a non-empty 'tasks' mapping of name -> task")
    extra = sorted(set(data) - {"tasks", "version"})
    if extra:
        raise ConfigError(f"{source}: unknown top-level key(s): {', '.join(map(str, extra))}")
    tasks = [task_from_dict(name, spec, source) for name, spec in data["tasks"].items()]
    check_names(tasks, source)
    return tasks


def label_key(name: str) -> str:
    """How a typed label name is compared: case, spaces, '-' and '_' do not matter ("LV size" is lv_size)."""
    return re.sub(r"[\s_-]+", "_", name.strip().lower())


def check_names(tasks: Sequence[Task], source: str = "tasks") -> None:
    """Every task name and alias must name one task only (case-insensitively): ``--where "EF < 40"``
    has to know which task it means."""
    owner: dict[str, str] = {}
    for task in tasks:
        for name in dict.fromkeys(label_key(n) for n in task.names):
            if name in owner and owner[name] != task.name:
                raise ConfigError(
                    f"{source}: task '{task.name}': name or alias {name!r} is also task '{owner[name]}'"
                )
            owner[name] = task.name


def load_tasks(path: str | Path) -> list[Task]:
    """Load and validate a task file (YAML or JSON); errors are one line naming the file and task."""
    path = Path(path)
    return tasks_from_dict(read_structured(path), source=str(path))


def task_to_dict(task: Task) -> dict[str, Any]:
    """The task-file mapping of one task (inverse of :func:`task_from_dict`)."""
    spec: dict[str, Any] = {"kind": task.kind}
    if task.display_name:
        spec["display_name"] = task.display_name
    if task.aliases:
        spec["aliases"] = list(task.aliases)
    if task.description:
        spec["description"] = task.description
    if task.unit:
        spec["unit"] = task.unit
    if task.kind == "binary":
        spec["prompts"] = list(task.prompts)
        if task.negative_prompts:
            spec["negative_prompts"] = list(task.negative_prompts)
        if task.threshold is not None:
            spec["threshold"] = task.threshold
    elif task.kind == "regression":
        start, stop, step = task.value_range or (0.0, 0.0, 1.0)
        spec["templates"] = list(task.templates)
        spec["range"] = [_plain(start), _plain(stop)]
        spec["step"] = _plain(step)
    else:
        spec["classes"] = {name: list(prompts) for name, prompts in task.classes.items()}
    return spec


def _plain(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def save_tasks(tasks: Sequence[Task], path: str | Path) -> Path:
    """Write tasks as a task file (JSON for ``.json``, YAML otherwise), e.g. into a model bundle."""
    path = Path(path)
    data = {"tasks": {t.name: task_to_dict(t) for t in tasks}}
    write_structured(path, data)
    return path


# --------------------------------------------------------------------------------------------- EchoCLIP


def tasks_from_echoclip_prompts(data: Mapping[str, Any], source: str = "EchoCLIP prompts") -> list[Task]:
    """Turn EchoCLIP's zero-shot prompt file (name -> mode, label_sources, ...) into our tasks.

    In that file ``label_sources`` are the report sentences used to *label* reports; where a task
    also has ``testers`` (and ``tester_values``), those are the prompts used for zero-shot scoring,
    so they win. Categorical values are named through ``value_mapping``; classes are ordered by
    value and only values with at least one prompt become classes. Regression ranges step by 1.
    """
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{source}: expected a non-empty mapping of task name -> task")
    specs: dict[str, Any] = {}
    for name, entry in data.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: task '{name}': must be a mapping")
        mode = entry.get("mode")
        use_testers = "testers" in entry
        prompts = entry.get("testers") if use_testers else entry.get("label_sources")
        if mode == "binary":
            specs[name] = {"kind": "binary", "prompts": prompts}
        elif mode == "regression":
            specs[name] = {"kind": "regression", "templates": prompts, "range": entry.get("range", [0, 100])}
        elif mode == "categorical":
            specs[name] = _echoclip_categorical(name, entry, prompts, use_testers, source)
        else:
            raise ConfigError(f"{source}: task '{name}': unknown mode {mode!r}")
    return tasks_from_dict({"tasks": specs}, source=source)


def _echoclip_categorical(
    name: str, entry: Mapping[str, Any], prompts: Any, use_testers: bool, source: str
) -> dict[str, Any]:
    values = entry.get("tester_values" if use_testers else "values")
    if not isinstance(prompts, list) or not isinstance(values, list) or len(prompts) != len(values):
        raise ConfigError(f"{source}: task '{name}': prompts and values must be lists of the same length")
    mapping = {str(k): str(v) for k, v in (entry.get("value_mapping") or {}).items()}
    groups: dict[Any, list[str]] = {}
    for value, prompt in zip(values, prompts, strict=True):
        groups.setdefault(value, []).append(prompt)
    try:
        ordered = sorted(groups)
    except TypeError:
        ordered = list(groups)
    classes = {mapping.get(str(v), str(v)): groups[v] for v in ordered}
    return {"kind": "categorical", "classes": classes}
