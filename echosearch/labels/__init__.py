"""Zero-shot labels: one package, one job per module.

Who owns what:

- :mod:`~echosearch.labels.tasks`: the :class:`Task` and task files (parse, validate, load, save),
  EchoCLIP's prompt file converted to tasks, the names and aliases a task answers to;
- :mod:`~echosearch.labels.scoring`: a task's prompts against frame embeddings (binary, regression,
  categorical), prompt encoding, :func:`score_tasks` for many tasks and videos at once;
- :mod:`~echosearch.labels.calibration`: F1 thresholds, Platt probabilities, class offsets, the
  thresholds files that carry them and which thresholds hold for which tasks;
- :mod:`~echosearch.labels.encoding`: the label rows an index stores per clip and their keys
  (``TASK``, ``TASK.positive``, ``TASK.probability``), for the indexer, ``relabel``, probes and the
  labels of a new clip;
- :mod:`~echosearch.labels.naming`: labels as people type and read them (``EF < 40``,
  ``pacemaker = yes``; "Pacemaker: yes, 0.97");
- :mod:`~echosearch.labels.files` and :mod:`~echosearch.labels.arrays`: the YAML/JSON reading and
  the numpy/torch inputs the modules above share.

The names below are re-exported for the Python API; the project's own code imports each name from
its owning module.
"""

from echosearch.labels.calibration import (
    CalibrationError,
    accuracy_offsets,
    f1_threshold,
    load_thresholds,
    platt_scaling,
    resolve_tasks,
    save_thresholds,
)
from echosearch.labels.encoding import positive_key, probability_key, result_rows
from echosearch.labels.naming import conditions_for, readable
from echosearch.labels.scoring import ScoreResults, score_tasks
from echosearch.labels.tasks import Task, load_tasks, save_tasks, tasks_from_echoclip_prompts

__all__ = [
    "CalibrationError",
    "ScoreResults",
    "Task",
    "accuracy_offsets",
    "conditions_for",
    "f1_threshold",
    "load_tasks",
    "load_thresholds",
    "platt_scaling",
    "positive_key",
    "probability_key",
    "readable",
    "resolve_tasks",
    "result_rows",
    "save_tasks",
    "save_thresholds",
    "score_tasks",
    "tasks_from_echoclip_prompts",
]
