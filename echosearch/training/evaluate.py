"""How good is a model on a labelled archive: retrieval, same-patient matching and zero-shot labels.

Clips are embedded directly with the :class:`~echosearch.models.Encoder` (no index needed), so a
model can be judged before anything is indexed. Ground truth comes from a site's labels CSV where
it has a column for the task (:class:`LabelsFile`), else from ``manifest.csv`` columns where a task
has one (:data:`TASK_COLUMNS`; a finding is unknown on a clip whose view cannot show it,
:func:`echosearch.synth.views.shows_finding`), else from the study report: a binary task is positive
when one of its prompts is a sentence of the report, a categorical task takes the class whose prompt
is, and a regression task reads the number its template leaves in the report.

Metrics (all on the archive's clips):

- video->report: each clip ranks every study report of the archive; its own study's report should
  come first. Mean rank percentile = mean rank / number of reports x 100 (EchoCLIP: top 1%).
- text->video: single-finding queries (:data:`FINDING_QUERIES`) rank all clips; R@K is the share of
  the top K that are relevant, out of the most that could be (``|relevant & topK| / min(K,
  |relevant|)``), so it is 1 only when the top K are all relevant (or hold every relevant clip).
- same-patient AUC: study embedding = normalised mean of its clip embeddings; cosine of every pair
  of studies, positives are pairs of one patient's studies (EchoCLIP: 0.86).
- zero-shot: AUC of each binary task's score, MAE of each regression, accuracy of each categorical.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from echosearch.batching import batches
from echosearch.errors import UsageError
from echosearch.synth.views import shows_finding
from echosearch.training.data import (
    ArchiveClip,
    default_cache_dir,
    load_archive,
    load_frames,
    normalize,
    split_sentences,
)

log = logging.getLogger(__name__)

EVAL_FRAMES = 16
RECALL_KS = (1, 5, 10)

#: Single-finding queries for text->video retrieval: (query, manifest column, relevant values).
FINDING_QUERIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("SEVERE DILATED LEFT VENTRICLE.", "lv_size", ("3",)),
    ("SEVERE DILATED RIGHT VENTRICLE.", "rv_size", ("3",)),
    ("SEVERE DILATED LEFT ATRIUM.", "la_size", ("3",)),
    ("A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE.", "pacer", ("1",)),
    ("A MITRACLIP DEVICE IS ATTACHED TO THE MITRAL LEAFLETS.", "mitraclip", ("1",)),
    ("A TRANSCATHETER AORTIC VALVE PROSTHESIS IS PRESENT.", "tavr", ("1",)),
    ("THERE IS A SEVERE PERICARDIAL EFFUSION.", "effusion", ("3",)),
    ("SEVERE REDUCED LEFT VENTRICULAR SYSTOLIC FUNCTION.", "lv_function", ("3",)),
)

#: Manifest column holding a task's ground truth (binary: value > 0 is positive; categorical: the
#: class index in the task's class order; regression: the value).
TASK_COLUMNS = {
    "pacemaker": "pacer",
    "mitraclip": "mitraclip",
    "tavr": "tavr",
    "pericardial_effusion": "effusion",
    "ejection_fraction": "ef",
    "lv_size": "lv_size",
    "lv_function": "lv_function",
    "view": "view",  # the view code (A4C, PLAX, ...): a categorical class by name, not by index
}


@dataclass
class Embedded:
    """An archive's clips and their embeddings (float32, L2-normalised)."""

    clips: list[ArchiveClip]
    frame_embs: np.ndarray  # [N, F, D]
    clip_embs: np.ndarray  # [N, D]


def embed_archive(encoder, archive: str | Path, frames: int = EVAL_FRAMES, progress: bool = True) -> Embedded:
    """Decode (cached) and embed every clip of an archive with the encoder."""
    clips = load_archive(archive)
    pre = encoder.preprocess_cfg
    cache = load_frames(clips, pre["size"], frames, default_cache_dir(archive), progress)
    frame_embs, clip_embs = [], []
    for batch_ids in batches(range(len(clips)), 32):
        batch = [normalize(cache.clip(i), pre["mean"], pre["std"]) for i in batch_ids]
        per_clip, embs = encoder.encode_clips(batch)
        # Pad short clips by repeating their last frame embedding, so tasks see an [N, F, D] array.
        frame_embs.extend(torch.cat([f, f[-1:].expand(frames - f.shape[0], -1)]) for f in per_clip)
        clip_embs.append(embs)
    return Embedded(clips, torch.stack(frame_embs).numpy(), torch.cat(clip_embs).numpy())


# ------------------------------------------------------------------------------------------ metrics


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half; NaN without both classes."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks of ties
    start = 0
    for end in range(1, len(s) + 1):
        if end == len(s) or sorted_s[end] != sorted_s[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates over all thresholds (highest first), starting at (0, 0)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    tp = np.r_[0, np.cumsum(y[order])]
    fp = np.r_[0, np.cumsum(~y[order])]
    return fp / max(1, fp[-1]), tp / max(1, tp[-1])


def video_to_report(encoder, emb: Embedded) -> dict[str, float]:
    """Each clip ranks all study reports; where does its own study's report land?"""
    studies = list(dict.fromkeys(c.study_uid for c in emb.clips))
    index = {s: i for i, s in enumerate(studies)}
    reports = {c.study_uid: c.report for c in emb.clips}
    text = encoder.encode_text([reports[s] for s in studies]).numpy()
    sims = emb.clip_embs @ text.T
    truth = np.array([index[c.study_uid] for c in emb.clips])
    own = sims[np.arange(len(truth)), truth]
    ranks = 1 + (sims > own[:, None]).sum(axis=1)
    out = {
        "candidates": len(studies),
        "mean_rank": float(ranks.mean()),
        "median_rank": float(np.median(ranks)),
        "mean_rank_percentile": float(100 * ranks.mean() / len(studies)),
    }
    out.update({f"R@{k}": float((ranks <= k).mean()) for k in RECALL_KS})
    return out


def text_to_video(encoder, emb: Embedded) -> dict[str, Any]:
    """Single-finding queries over all clips: R@K (see module doc), mean rank percentile, AUC."""
    per_query = []
    n = len(emb.clips)
    for query, column, values in FINDING_QUERIES:
        if column not in emb.clips[0].row:
            continue
        relevant = np.array([c.row[column] in values for c in emb.clips])
        if not relevant.any() or relevant.all():
            continue
        scores = emb.clip_embs @ encoder.encode_text([query]).numpy()[0]
        order = np.argsort(-scores, kind="stable")
        ranks = np.empty(n, dtype=np.int64)
        ranks[order] = np.arange(1, n + 1)
        row = {"query": query, "relevant": int(relevant.sum())}
        for k in RECALL_KS:
            row[f"R@{k}"] = float(relevant[order[:k]].sum() / min(k, relevant.sum()))
        row["mean_rank_percentile"] = float(100 * ranks[relevant].mean() / n)
        row["auc"] = auc(scores, relevant)
        per_query.append(row)
    summary = {
        key: float(np.mean([q[key] for q in per_query])) if per_query else float("nan")
        for key in [f"R@{k}" for k in RECALL_KS] + ["mean_rank_percentile", "auc"]
    }
    return {**summary, "queries": per_query}


def same_patient(emb: Embedded) -> dict[str, float]:
    """AUC of study-embedding cosine for same- vs different-patient pairs of studies."""
    studies = list(dict.fromkeys(c.study_uid for c in emb.clips))
    idx = {s: i for i, s in enumerate(studies)}
    sums = np.zeros((len(studies), emb.clip_embs.shape[1]))
    patient = {}
    for c, e in zip(emb.clips, emb.clip_embs, strict=True):
        sums[idx[c.study_uid]] += e
        patient[c.study_uid] = c.patient_id
    study_embs = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    sims = study_embs @ study_embs.T
    iu = np.triu_indices(len(studies), k=1)
    pids = np.array([patient[s] for s in studies])
    same = (pids[:, None] == pids[None, :])[iu]
    return {"auc": auc(sims[iu], same), "same_pairs": int(same.sum()), "pairs": int(same.size)}


# ------------------------------------------------------------------------------------------ labels


def _report_label(task, report: str) -> float | None:
    sents = {s.strip() for s in split_sentences(report)}
    if task.kind == "binary":
        return float(any(p.strip() in sents for p in task.prompts))
    if task.kind == "categorical":
        for i, prompts in enumerate(task.classes.values()):
            if any(p.strip() in sents for p in prompts):
                return float(i)
        return None
    for template in task.templates:
        head, _, tail = template.strip().partition("<#>")
        m = re.search(re.escape(head) + r"(\d+(?:\.\d+)?)" + re.escape(tail), report)
        if m:
            return float(m.group(1))
    return None


class LabelsFile:
    """A site's ground truth: a CSV with a ``path`` (relative to the archive, or absolute),
    ``sop_uid`` or ``study_uid`` column and one column per task, named by the task's name or one of
    its aliases (any case). Binary cells are yes/no, true/false or numbers (> 0 is yes); categorical
    cells a class name or its index; regression cells numbers; an empty cell is unknown.

    Why: ground truth used to come from seven manifest columns of the synthetic archive, so a site
    could neither calibrate nor evaluate a label of its own. The synthetic ``manifest.csv`` is one
    such file (its ``pacer``/``ef``/``effusion`` columns are aliases of the demo tasks). A clip's
    row: its ``study_uid`` row, overridden by its ``sop_uid`` row, overridden by its ``path`` row.
    """

    KEYS = ("path", "sop_uid", "study_uid")

    def __init__(self, path: str | Path):
        import csv

        from echosearch.errors import UsageError

        self.path = Path(path)
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                self.columns = list(reader.fieldnames or [])
                rows = list(reader)
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not set(self.KEYS) & set(self.columns):
            raise UsageError(f"{path}: needs a path, sop_uid or study_uid column to find the clips")
        self.by: dict[str, dict[str, dict[str, str]]] = {k: {} for k in self.KEYS}
        for row in rows:
            for key in self.KEYS:
                ident = (row.get(key) or "").strip()
                if ident:
                    self.by[key][Path(ident).as_posix() if key == "path" else ident] = row
                    break

    def column_for(self, task) -> str | None:
        """The column holding ``task`` (its name or an alias, compared as filters compare them)."""
        from echosearch.labels.tasks import label_key

        names = {label_key(n) for n in (task.name, *getattr(task, "aliases", ()))}
        return next((c for c in self.columns if label_key(c) in names and c not in self.KEYS), None)

    def row_of(self, clip: ArchiveClip, root: Path | None) -> dict[str, str]:
        rel = clip.path.relative_to(root).as_posix() if root and clip.path.is_relative_to(root) else None
        return self.row_for(
            clip.study_uid, clip.row.get("sop_uid", ""), [rel or "", clip.path.resolve().as_posix()]
        )

    def row_for(self, study_uid: str | None, sop_uid: str | None, paths: Sequence[str]) -> dict[str, str]:
        """The row of a clip known by its study UID, SOP Instance UID and the ways to spell its
        path (first match wins), merged as the class doc says."""
        row: dict[str, str] = {}
        row.update(self.by["study_uid"].get(study_uid or "", {}))
        row.update(self.by["sop_uid"].get(sop_uid or "", {}))
        row.update(next((self.by["path"][p] for p in paths if p in self.by["path"]), {}))
        return row

    def labels(self, task, clips: Sequence[ArchiveClip], root: Path | None) -> np.ndarray | None:
        """The task's ground truth per clip (NaN where unknown); None when the file has no column."""
        return self.values(task, [self.row_of(c, root) for c in clips], [c.path.name for c in clips])

    def values(self, task, rows: Sequence[dict[str, str]], names: Sequence[str]) -> np.ndarray | None:
        """The task's ground truth in each of ``rows`` (NaN where unknown; ``names`` for errors)."""
        from echosearch.errors import UsageError

        column = self.column_for(task)
        if column is None:
            return None
        out = []
        for row, name in zip(rows, names, strict=True):
            raw = (row.get(column) or "").strip()
            try:
                out.append(_parse_truth(task, raw))
            except ValueError:
                raise UsageError(f"{self.path}: column {column!r}: {raw!r} is not a {task.kind} label "
                                 f"of task {task.name} (clip {name})") from None  # fmt: skip
        return np.asarray(out, dtype=np.float64)


def _parse_truth(task, raw: str) -> float:
    if raw == "":
        return np.nan
    word = raw.lower()
    if task.kind == "binary":
        if word in ("yes", "y", "true", "present", "positive"):
            return 1.0
        if word in ("no", "n", "false", "absent", "negative"):
            return 0.0
        return float(float(word) > 0)
    if task.kind == "categorical":
        from echosearch.labels.tasks import label_key

        names = [label_key(c) for c in task.class_names]
        if label_key(raw) in names:
            return float(names.index(label_key(raw)))
        index = float(word)
        if not index.is_integer() or not 0 <= index < len(names):
            raise ValueError(raw)
        return index
    return float(word)


def task_labels(
    task, clips: Sequence[ArchiveClip], labels: LabelsFile | None = None, root: Path | None = None
) -> np.ndarray:
    """Ground truth of one task per clip (NaN where unknown): from a site's ``labels`` file where it
    has a column for the task, else the sources of the module doc. ``root`` is the archive folder
    (a labels file's paths are relative to it)."""
    if labels is not None:
        site = labels.labels(task, clips, root)
        if site is not None:
            return site
    column = TASK_COLUMNS.get(task.name)
    out = []
    for c in clips:
        raw = c.row.get(column, "") if column else ""
        if raw != "" and not shows_finding(c.row.get("view"), column):
            out.append(np.nan)  # the clip's view cannot show it: unknown, as to a sonographer
            continue
        if raw != "" and task.kind == "categorical" and raw in task.classes:
            out.append(float(list(task.classes).index(raw)))
        elif raw != "":
            value = float(raw)
            out.append(float(value > 0) if task.kind == "binary" else value)
        else:
            label = _report_label(task, c.report)
            out.append(np.nan if label is None else label)
    return np.asarray(out, dtype=np.float64)


def zero_shot(
    encoder,
    emb: Embedded,
    tasks,
    thresholds: dict[str, float] | None = None,
    labels: LabelsFile | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    from echosearch.labels.scoring import score_tasks

    results = score_tasks(tasks, emb.frame_embs, encoder.encode_text, thresholds)
    out: dict[str, Any] = {}
    for task in tasks:
        y = task_labels(task, emb.clips, labels, root)
        known = ~np.isnan(y)
        pred = np.asarray(results[task.name], dtype=np.float64)
        entry: dict[str, Any] = {"kind": task.kind, "n": int(known.sum())}
        if task.kind == "binary":
            entry["auc"] = auc(pred[known], y[known])
            entry["positives"] = int(y[known].sum())
            if task.name in results.decisions:
                dec = results.decisions[task.name][known]
                truth = y[known].astype(bool)
                tp = int((dec & truth).sum())
                entry["threshold"] = results.thresholds[task.name]
                entry["f1"] = float(2 * tp / max(1, dec.sum() + truth.sum()))
        elif task.kind == "regression":
            entry["mae"] = float(np.abs(pred[known] - y[known]).mean()) if known.any() else float("nan")
        else:
            entry["accuracy"] = float((pred[known] == y[known]).mean()) if known.any() else float("nan")
            entry["classes"] = list(results.classes[task.name])
            entry["recall"] = {  # per class: calibration offsets may trade a hard class for accuracy
                name: float((pred[known][y[known] == i] == i).mean())
                for i, name in enumerate(entry["classes"])
                if (y[known] == i).any()
            }
            if task.name in results.offsets:
                entry["offsets"] = results.offsets[task.name]
        entry["_pred"], entry["_truth"] = pred[known], y[known]
        out[task.name] = entry
    return out


# ------------------------------------------------------------------------------------------ report

#: The issue's targets on a held-out synthetic archive: (metric path, comparison, value).
TARGETS = (
    ("video_to_report.mean_rank_percentile", "<=", 5.0),
    ("text_to_video.R@10", ">=", 0.5),
    ("zero_shot.pacemaker.auc", ">=", 0.95),
    ("zero_shot.mitraclip.auc", ">=", 0.95),
    ("zero_shot.tavr.auc", ">=", 0.95),
    ("zero_shot.ejection_fraction.mae", "<=", 10.0),
    ("same_patient.auc", ">=", 0.85),
    ("zero_shot.view.accuracy", ">=", 0.95),  # issue 17; n/a for a model without a view task
)


def _lookup(metrics: dict[str, Any], path: str) -> float | None:
    node: Any = metrics
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node)


def check_targets(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for path, op, target in TARGETS:
        value = _lookup(metrics, path)
        met = value is not None and (value <= target if op == "<=" else value >= target)
        rows.append({"metric": path, "target": f"{op} {target:g}", "value": value, "met": bool(met)})
    return rows


def evaluate(
    encoder,
    archive: str | Path,
    frames: int = EVAL_FRAMES,
    progress: bool = True,
    tasks_file: str | Path | None = None,
    thresholds_file: str | Path | None = None,
    labels_file: str | Path | None = None,
) -> dict[str, Any]:
    """Every metric of the module doc, as one JSON-able dict (``_pred``/``_truth`` arrays for plots).

    ``tasks_file``/``thresholds_file`` judge another task file than the bundle's (see
    :func:`echosearch.labels.calibration.resolve_tasks` for which thresholds apply then); ``labels_file`` is
    a site's ground truth (:class:`LabelsFile`).
    """
    from echosearch.labels.calibration import resolve_tasks

    tasks, thresholds = resolve_tasks(encoder.bundle, tasks_file, thresholds_file)
    labels = LabelsFile(labels_file) if labels_file else None
    emb = embed_archive(encoder, archive, frames, progress)
    metrics: dict[str, Any] = {
        "model": encoder.name,
        "version": encoder.version,
        "clinical": encoder.bundle.clinical,
        "archive": str(archive),
        "clips": len(emb.clips),
        "studies": len({c.study_uid for c in emb.clips}),
        "patients": len({c.patient_id for c in emb.clips}),
        "frames_per_clip": frames,
        "tasks": str(tasks_file) if tasks_file else "bundle",
        "video_to_report": video_to_report(encoder, emb),
        "text_to_video": text_to_video(encoder, emb),
        "same_patient": same_patient(emb),
        "labels": str(labels_file) if labels_file else "archive",
        "zero_shot": zero_shot(encoder, emb, tasks, thresholds, labels, Path(archive)) if tasks else {},
    }
    metrics["targets"] = check_targets(metrics)
    return metrics


def public(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without the per-clip arrays (what ``--json`` prints and metrics.json holds)."""
    out = dict(metrics)
    out["zero_shot"] = {
        k: {a: b for a, b in v.items() if not a.startswith("_")} for k, v in metrics["zero_shot"].items()
    }
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return "n/a" if np.isnan(v) else f"{v:.3f}"
    return str(v)


def write_report(metrics: dict[str, Any], out_dir: str | Path) -> Path:
    """``report.md`` + ``metrics.json`` + ``roc.png`` (binary tasks) + ``ef_scatter.png`` into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(metrics, out)
    pub = public(metrics)
    (out / "metrics.json").write_text(json.dumps(pub, indent=2, default=float) + "\n")
    v2r, t2v, sp = metrics["video_to_report"], metrics["text_to_video"], metrics["same_patient"]
    lines = [
        f"# Evaluation of `{metrics['model']}` {metrics['version']}",
        "",
        f"Archive `{Path(metrics['archive']).name}`: {metrics['clips']} clips, {metrics['studies']} studies, "
        f"{metrics['patients']} patients; {metrics['frames_per_clip']} frames per clip."
        + ("" if metrics["clinical"] else " **Not a clinical model.**")
        + ("" if metrics.get("tasks", "bundle") == "bundle" else f" Zero-shot tasks: `{metrics['tasks']}`."),
        "",
        "## Targets",
        "",
        "| metric | target | value | met |",
        "|---|---|---|---|",
        *(
            f"| {r['metric']} | {r['target']} | {_fmt(r['value'])} | {'yes' if r['met'] else 'no'} |"
            for r in metrics["targets"]
        ),  # fmt: skip
        "",
        "## Retrieval",
        "",
        "| task | candidates | mean rank percentile | R@1 | R@5 | R@10 |",
        "|---|---|---|---|---|---|",
        f"| video -> report | {v2r['candidates']} | {_fmt(v2r['mean_rank_percentile'])} | {_fmt(v2r['R@1'])} "
        f"| {_fmt(v2r['R@5'])} | {_fmt(v2r['R@10'])} |",
        f"| text -> video (mean of queries) | {metrics['clips']} | {_fmt(t2v['mean_rank_percentile'])} "
        f"| {_fmt(t2v['R@1'])} | {_fmt(t2v['R@5'])} | {_fmt(t2v['R@10'])} |",
        "",
        "| query | relevant clips | R@10 | mean rank percentile | AUC |",
        "|---|---|---|---|---|",
        *(
            f"| {q['query']} | {q['relevant']} | {_fmt(q['R@10'])} | {_fmt(q['mean_rank_percentile'])} "
            f"| {_fmt(q['auc'])} |"
            for q in t2v["queries"]
        ),  # fmt: skip
        "",
        f"Same-patient AUC (study embeddings, {sp['same_pairs']} same-patient of {sp['pairs']} pairs): "
        f"**{_fmt(sp['auc'])}**",
        "",
        "## Zero-shot",
        "",
        "| task | kind | n | metric | value |",
        "|---|---|---|---|---|",
    ]
    for name, e in pub["zero_shot"].items():
        key = {"binary": "auc", "regression": "mae", "categorical": "accuracy"}[e["kind"]]
        extra = f" (threshold {e['threshold']:.4f}, F1 {e['f1']:.3f})" if "threshold" in e else ""
        if "recall" in e:
            recall = ", ".join(f"{c} {r:.2f}" for c, r in e["recall"].items())
            extra = f" (recall: {recall}{'; calibrated class offsets' if 'offsets' in e else ''})"
        lines.append(f"| {name} | {e['kind']} | {e['n']} | {key.upper()} | {_fmt(e[key])}{extra} |")
    lines += ["", *(f"![{p.stem}]({p.name})" for p in plots), ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def _plots(metrics: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    binary = {k: v for k, v in metrics["zero_shot"].items() if v["kind"] == "binary" and v["_truth"].size}
    if binary:
        fig, ax = plt.subplots(figsize=(5, 5))
        for name, e in binary.items():
            fpr, tpr = roc_curve(e["_pred"], e["_truth"])
            ax.plot(fpr, tpr, label=f"{name} (AUC {_fmt(e['auc'])})")
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        ax.set(
            xlabel="false positive rate",
            ylabel="true positive rate",
            title=f"Zero-shot ROC: {metrics['model']}",
        )
        ax.legend(loc="lower right", fontsize=8)
        written.append(out / "roc.png")
        fig.savefig(written[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
    for name, e in metrics["zero_shot"].items():
        if e["kind"] != "regression" or not e["_truth"].size:
            continue
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(e["_truth"], e["_pred"], s=10, alpha=0.6)
        lo = float(min(e["_truth"].min(), e["_pred"].min()))
        hi = float(max(e["_truth"].max(), e["_pred"].max()))
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax.set(xlabel="true", ylabel="predicted", title=f"{name}: MAE {_fmt(e['mae'])}")
        fname = "ef_scatter.png" if name == "ejection_fraction" else f"{name}_scatter.png"
        written.append(out / fname)
        fig.savefig(written[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
    return written


def require_tasks(encoder, tasks_file: str | Path | None = None) -> list:
    from echosearch.labels.tasks import load_tasks

    tasks = load_tasks(tasks_file) if tasks_file else encoder.bundle.load_tasks()
    if not tasks:
        raise UsageError(f"model {encoder.name!r} has no zero-shot task file (pass --tasks FILE)")
    return tasks
