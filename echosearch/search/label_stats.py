"""The labels of one space as the Engine answers about them: which labels it stores, their values
and class counts across the archive, the task catalog that filters and cards read, and a clip's
labels (stored, or computed for a new file). Scoring itself belongs to the labels package."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from echosearch.labels.calibration import binary_threshold
from echosearch.labels.encoding import VIEW_TASK, is_derived, positive_key, probability_key
from echosearch.search.context import OpenSpace
from echosearch.search.query_vectors import as_video_id
from echosearch.store import queries as q

#: Seconds a readable-label catalog is reused (probes may be trained meanwhile).
READABLE_TTL_S = 30


class LabelStats:
    """Label names, values, statistics and readable text for one space."""

    def __init__(self, archive: OpenSpace, lexicon: Callable[[], Any] | None = None):
        self.archive = archive
        self._lexicon = lexicon  # the model's query lexicon (which views image which finding)
        self._views_of_task: dict[str, frozenset[str]] | None = None
        self._readable: tuple | None = None  # (when, tasks, errors, probe names)
        self._titles: dict[str, str] | None = None

    def forget(self) -> None:
        """Drop what was read once (after a reload: new labels or probes may exist)."""
        self._readable = None
        self._titles = None

    # -------------------------------------------------------------- what the space stores

    def names(self) -> list[str]:
        """Stored label names of this space (tasks and their ``.positive``/``.probability`` forms)."""
        with self.archive.db.session() as s:
            return q.label_names(s, self.archive.space_id)

    def values(self, task: str) -> np.ndarray:
        """Every indexed clip's value of one numeric label (for distribution plots)."""
        with self.archive.db.session() as s:
            return q.label_values(s, task, self.archive.space_id)

    def categories(self, task: str) -> dict[str, int]:
        """Indexed clips per class of a categorical label, in class order (empty for a numeric label)."""
        with self.archive.db.session() as s:
            return q.label_category_counts(s, task, self.archive.space_id)

    def positive_share(self, task: str) -> tuple[int, int] | None:
        """(positive clips, clips with a decision) of a binary label; None when it has no threshold."""
        decisions = self.values(positive_key(task))
        return (int((decisions >= 0.5).sum()), len(decisions)) if len(decisions) else None

    def summary(self, task: str, bins: int = 10) -> dict[str, Any]:
        """One label across the archive, as numbers (the API's ``/labels/{task}/stats``): count, mean,
        quantiles and a histogram of its values; its classes for a categorical label; the positive
        share for a binary one with a threshold. An unknown label is a UsageError naming the labels."""
        from echosearch.errors import UsageError

        names = self.names()
        if task not in names:
            raise UsageError(f"no label {task!r} in this space (labels: {', '.join(names) or 'none'})")
        values = self.values(task).astype(np.float64)
        out: dict[str, Any] = {"task": task, "model": self.archive.model_name, "count": int(len(values))}
        if len(values):
            p = np.percentile(values, [5, 25, 50, 75, 95])
            counts, edges = np.histogram(values, bins=bins)
            out.update(
                mean=float(values.mean()),
                min=float(values.min()),
                max=float(values.max()),
                quantiles=dict(zip(("p05", "p25", "p50", "p75", "p95"), map(float, p), strict=True)),
                histogram={"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
            )
        classes = self.categories(task)
        out["categories"] = classes or None
        share = None if is_derived(task) else self.positive_share(task)
        out["positive"] = (
            {"positive": share[0], "of": share[1], "share": share[0] / share[1] if share[1] else None}
            if share
            else None
        )
        return out

    def filter_options(self) -> dict[str, Any]:
        """What a filter form can offer: the archive's views, manufacturers, study-date range and
        label tasks, plus the binary tasks usable as yes/no flags (see :meth:`flag_condition`)."""
        with self.archive.db.session() as s:
            facets = q.archive_facets(s)
        tasks = self.names()
        return {**facets, "tasks": tasks, "flags": [t for t in self._binary_tasks() if t in tasks]}

    # -------------------------------------------------------------- the task catalog

    def zero_shot_tasks(self) -> tuple[list, dict[str, float]]:
        """The tasks and thresholds the indexer labelled this space with (the model's own for a space
        indexed before spaces recorded them), so labels computed for a new clip match stored ones."""
        recorded = self.archive.space.recorded_tasks()
        if recorded is not None:
            return recorded
        from echosearch.labels.calibration import resolve_tasks

        return resolve_tasks(self.archive.encoder.bundle)

    def titles(self) -> dict[str, str]:
        """{task: display name} ("Ejection fraction"), read once."""
        if self._titles is None:
            try:
                self._titles = {t.name: t.title for t in self.zero_shot_tasks()[0]}
            except Exception:  # no model and no recorded tasks: tasks go by their names
                self._titles = {}
        return self._titles

    def catalog(self) -> tuple[list, set[str], dict[str, Any]]:
        """What label filters and cards need: the space's tasks (zero-shot and probes), the label
        names it stores, and its thresholds. Without a model and a record of the tasks, each stored
        label stands for itself (a task of unknown kind is taken as a number)."""
        from echosearch.labels.tasks import Task
        from echosearch.probes import probe_tasks

        stored = set(self.names())
        try:
            tasks, thresholds = self.zero_shot_tasks()
            tasks = list(tasks)
        except Exception:  # no model and no recorded tasks: the stored names are all we know
            tasks, thresholds = [], {}
        tasks += probe_tasks(self.archive.space)
        known = {t.name for t in tasks}
        derived = {n.rsplit(".", 1)[0] for n in stored if is_derived(n)}
        for name in sorted(({n for n in stored if not is_derived(n)} | derived) - known):
            tasks.append(Task(name, "binary" if name in derived else "regression"))
        return tasks, stored, dict(thresholds)

    def readable(self, labels: dict[str, Any]) -> list[str]:
        """A clip's labels as phrases ("Pacemaker: yes, 0.97", "EF ≈ 48% (model estimate, ±7)"),
        for cards and the CLI (:func:`echosearch.labels.naming.readable`)."""
        return [item.phrase for item in self.readable_items(labels)]

    def readable_items(self, labels: dict[str, Any]) -> list:
        """A clip's labels as :class:`~echosearch.labels.naming.ReadableLabel` items (phrase, title,
        value text, decision, probability, estimate), for cards and tables."""
        from echosearch.labels.naming import errors_of, readable_items
        from echosearch.probes import list_probes

        now = time.monotonic()
        if self._readable is None or now - self._readable[0] > READABLE_TTL_S:
            tasks, _stored, thresholds = self.catalog()
            probes = list_probes(self.archive.space)
            self._readable = (now, tasks, errors_of(tasks, thresholds, probes), {p.name for p in probes})
        _, tasks, errors, estimates = self._readable
        return readable_items(labels, tasks, errors, estimates, self.unseen(labels.get(VIEW_TASK)))

    def unseen(self, view: str | None) -> set[str]:
        """The tasks whose finding a clip of this view does not image (``seen_in`` of the finding
        the lexicon measures with the task; none for an unknown view or a finding without that list)."""
        if view is None or self._lexicon is None:
            return set()
        if self._views_of_task is None:
            lex = self._lexicon()
            out: dict[str, frozenset[str]] = {}
            for finding, real in lex.findings.items():
                seen_in = lex.rules[finding].seen_in if finding in lex.rules else frozenset()
                if real.task and seen_in:
                    out.setdefault(real.task, seen_in)
            self._views_of_task = out
        return {task for task, views in self._views_of_task.items() if view not in views}

    def flag_condition(self, task: str) -> q.LabelCondition:
        """The label condition for "has <task>": the stored yes/no decision when the index has one,
        else the score at the model's calibrated threshold (0.5 when it has none)."""
        names = self.names()
        if positive_key(task) in names:
            return q.LabelCondition(positive_key(task), ">=", 0.5)
        if probability_key(task) in names:
            return q.LabelCondition(probability_key(task), ">=", 0.5)
        try:
            threshold = binary_threshold(self.zero_shot_tasks()[1].get(task))
        except Exception:
            threshold = None
        return q.LabelCondition(task, ">=", 0.5 if threshold is None else threshold)

    def _binary_tasks(self) -> list[str]:
        try:
            return [t.name for t in self.zero_shot_tasks()[0] if t.kind == "binary"]
        except Exception:  # no model on this machine: no flags to offer, the rest still works
            return []

    # -------------------------------------------------------------- one clip

    def of_clip(self, target: Any, stored: Any) -> dict[str, Any]:
        """Zero-shot labels of a clip: stored ones for an indexed clip (``stored(video_id)``),
        computed for a new file."""
        video_id = as_video_id(target)
        if video_id is None:
            from echosearch.video import read_clip

            clip = read_clip(Path(target))
            with self.archive.db.session() as s:
                known = q.indexed_video_by_sha256(s, clip.meta.sha256)
                known_id = known.id if known is not None else None
            if known_id is None:
                return self.compute(clip)
            video_id = known_id
        return stored(video_id)

    def compute(self, clip: Any) -> dict[str, Any]:
        """A new clip's labels, scored the way the indexer scored this space's clips."""
        from echosearch.labels.encoding import as_values, result_rows
        from echosearch.labels.scoring import score_tasks
        from echosearch.video import preprocess_frames

        encoder = self.archive.encoder
        tasks, thresholds = self.zero_shot_tasks()
        if not tasks:
            return {}
        cfg = encoder.preprocess_cfg
        x = preprocess_frames(clip.frames, size=cfg["size"], mean=cfg["mean"], std=cfg["std"])
        frame_embs, clip_embs = encoder.encode_clips([x])
        results = score_tasks(
            tasks,
            frame_embs[0].numpy()[None],
            lambda texts: encoder.encode_text(texts).numpy(),
            thresholds=thresholds,
        )
        labels = as_values(result_rows(results, 0)[0])
        from echosearch.probes import list_probes

        vector = clip_embs.float().numpy()[:1]
        for probe in list_probes(self.archive.space):  # the space's probes, as stored clips got them
            labels.update(as_values(row[1:] for row in probe.label_rows([0], vector)))
        return labels
