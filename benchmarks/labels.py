"""Labels a clinician reads, on a held-out archive: views, calibrated probabilities, few-shot probes.

Three tables, from one synthetic archive (all eight views, varied reports, seed 404: neither a
training nor the calibration archive) indexed with a real model (default ``echosearch-demo``):

1. **Views**: the view the indexer stored for each clip (``videos.view``, from the model's view task)
   against the manifest's, accuracy overall and per view (target >= 0.95).
2. **Calibrated probabilities**: for each binary task, the stored probability against the truth,
   scored on clips whose view can show the finding (``synth.views.shows_finding``): AUC, Brier score
   and the expected calibration error (ECE, 10 equal-width bins: the gap between the mean
   probability and the share of positives, weighted by the bin's clips).
3. **Few-shot probe vs zero-shot prompt**: held-out AUC after 10, 20 and 50 labelled clips per class.

For the probes, a synthetic archive (its manifest is the ground truth) is indexed with a real model (default
``echosearch-demo``). For each finding, ``n`` positive and ``n`` negative clips are drawn at random
(whole patients held out: a patient's clips are all labelled or all held out, so a probe cannot
recognise the patient instead of the finding); a probe (:func:`echosearch.probes.fit_probe`, the
code ``echosearch probe train`` runs) is fitted on their stored clip vectors and scored on every
held-out clip, next to the zero-shot prompt's score of the same clips. Mean (min-max) over repeats.

Findings: RV dilation (``rv_size`` >= 1; no yes/no task of the model names it — since demo 0.6.0 a
graded ``rv_size`` task does — so its zero-shot prompt here is the demo vocabulary's "DILATED RIGHT
VENTRICLE" sentences against the normal-size one), MitraClip (the model's own ``mitraclip`` task,
as indexed) and an LV apical thrombus (``lv_thrombus``): drawn by the synthesiser but never written in a
report, so no demo model was trained to name it — the finding a site would teach with a probe. Its
zero-shot prompt is EchoCLIP-R's thrombus sentence against its no-thrombus one; a template model's
vocabulary that has no such phrase cannot be asked at all (zero-shot AUC 0.5 by construction, shown
as "no phrase").

    .venv/bin/python benchmarks/labels.py                         # 120 patients, 5 repeats
    .venv/bin/python benchmarks/labels.py --work /tmp/lbl          # keep (and reuse) the index
    .venv/bin/python benchmarks/labels.py --model echosearch-demo-bpe --work /tmp/lbl-bpe
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np

from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.labels.scoring import score_tasks
from echosearch.labels.tasks import Task
from echosearch.probes import auc, fit_probe, labelled_vectors
from echosearch.search import Engine
from echosearch.synth import synthesize_archive
from echosearch.synth.views import shows_finding

#: the manifest column of each binary task of the demo models' task file
BINARY_TRUTH = {
    "pacemaker": "pacer",
    "mitraclip": "mitraclip",
    "tavr": "tavr",
    "pericardial_effusion": "effusion",
}

RV_TASK = Task(
    "rv_dilation",
    "binary",
    prompts=tuple(f"{g} DILATED RIGHT VENTRICLE. " for g in ("MILD", "MODERATE", "SEVERE")),
    negative_prompts=("NORMAL RIGHT VENTRICULAR CAVITY SIZE. ",),
)
THROMBUS_TASK = Task(
    "lv_thrombus",
    "binary",
    prompts=("THERE IS EVIDENCE OF A LEFT VENTRICULAR APICAL MURAL THROMBUS. ",),
    negative_prompts=("NO LEFT VENTRICULAR THROMBUS IS SEEN. ",),
)


def _index(work: Path, patients: int, model: str) -> tuple[Path, Path]:
    archive, data = work / "archive", work / "data"
    if not (data / "echosearch.db").is_file():
        synthesize_archive(archive, patients=patients, seed=404, studies=(1, 2), clips_per_study=(2, 2),
                           frames=(16, 20))  # fmt: skip
        run_index(IndexOptions(paths=[str(archive)], data_dir=str(data), model=model, progress=False))
    return archive, data


def _sayable(engine: Engine, task: Task) -> bool:
    """Whether the model's tokenizer reads every prompt of the task (a template vocabulary may not)."""
    read = [engine.encoder.tokenizer.explain(p) for p in task.prompts + task.negative_prompts]
    return all(not r.unmatched and not r.matched_nothing for r in read)


def _zero_shot(engine: Engine, ids: list[int]) -> dict[str, np.ndarray]:
    """Zero-shot scores of the clips: RV dilation and LV thrombus from the frame store (NaN where the
    vocabulary cannot say the prompt), MitraClip as indexed."""
    frames = engine.space.frames()
    by_len: dict[int, list[int]] = {}
    for i, vid in enumerate(ids):
        by_len.setdefault(len(frames.get(vid)), []).append(i)
    tasks = [t for t in (RV_TASK, THROMBUS_TASK) if _sayable(engine, t)]
    out = {t.name: np.full(len(ids), np.nan, np.float32) for t in (RV_TASK, THROMBUS_TASK)}
    for rows in by_len.values():
        stacked = np.stack([np.asarray(frames.get(ids[i]), np.float32) for i in rows])
        scores = score_tasks(tasks, stacked, lambda t: engine.encoder.encode_text(t).numpy())
        for t in tasks:
            out[t.name][rows] = scores[t.name]
    from echosearch.store import queries as q

    with engine.db.session() as s:
        labels = q.labels_for(s, ids, engine.space_id)
    out["mitraclip"] = np.array([labels[v].get("mitraclip", np.nan) for v in ids])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default="echosearch-demo")
    ap.add_argument("--work", default=None, help="Keep the archive and index here (reused when present).")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive, data = _index(Path(args.work or tmp), args.patients, args.model)
        with open(archive / "manifest.csv", newline="") as fh:
            manifest = list(csv.DictReader(fh))
        rows = [("path", r["path"], r["path"]) for r in manifest]  # a path relative to the archive
        with Engine.open(data) as engine:
            ids, x, paths, missing = labelled_vectors(engine, rows)
            zs = _zero_shot(engine, ids)
        by_path = {r["path"]: r for r in manifest}
        matched = [by_path[p] for p in paths]
        truth = {  # finding -> (manifest column, is positive)
            "rv_dilation": ("rv_size", np.array([int(r["rv_size"]) >= 1 for r in matched], int)),
            "mitraclip": (
                "mitraclip",
                np.array([r["mitraclip"] in ("1", "True", "true") for r in matched], int),
            ),
            "lv_thrombus": ("lv_thrombus", np.array([r.get("lv_thrombus") == "1" for r in matched], int)),
        }
        patient = np.array([r["patient_id"] for r in matched])
        print(f"model {args.model}; {len(ids)} clips of {len(set(patient))} patients ({missing} unmatched)")
        with Engine.open(data) as engine:
            _views_table(engine, ids, matched)
            _calibration_table(engine, ids, matched)
    print(f"\n### Few-shot probe vs zero-shot prompt ({args.repeats} repeats, held-out patients only, "
          "clips whose view shows the finding)\n")  # fmt: skip
    print("| finding | positives / clips | labelled per class | probe AUC | zero-shot AUC (same clips) |")
    print("|---|---|---|---|---|")
    for name, (column, y_all) in truth.items():
        seen = np.array([shows_finding(r["view"], column) for r in matched])
        y, xs, pat, z = y_all[seen], x[seen], patient[seen], zs[name][seen]
        for n in (10, 20, 50):
            probe_aucs, zs_aucs = [], []
            for rep in range(args.repeats):
                result = _one(xs, y, pat, z, n, np.random.default_rng(1000 * n + rep), name)
                if result:
                    probe_aucs.append(result[0])
                    zs_aucs.append(result[1])

            def cell(v):
                if v and np.isnan(v).all():
                    return "no phrase (0.500)"
                return f"{np.mean(v):.3f} ({min(v):.3f}-{max(v):.3f})" if v else "n/a (too few)"

            print(f"| {name} | {int(y.sum())} / {len(y)} | {n} | {cell(probe_aucs)} | {cell(zs_aucs)} |")


def _views_table(engine: Engine, ids: list[int], manifest_rows: list[dict]) -> None:
    """Stored view (what the indexer wrote from the view task) against the manifest's view."""
    from echosearch.store import queries as q

    with engine.db.session() as s:
        stored = {vid: card.view for vid, card in q.video_cards(s, ids).items()}
    per: dict[str, list[bool]] = {}
    for vid, row in zip(ids, manifest_rows, strict=True):
        per.setdefault(row["view"], []).append(stored.get(vid) == row["view"])
    hits = [h for v in per.values() for h in v]
    print("\n### Views stored by the indexer (target accuracy >= 0.95)\n")
    print("| view | clips | accuracy |\n|---|---|---|")
    for view, h in sorted(per.items()):
        print(f"| {view} | {len(h)} | {np.mean(h):.3f} |")
    print(f"| **all** | {len(hits)} | **{np.mean(hits):.3f}** |")


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE: sum over equal-width probability bins of (clips in bin / clips) * |mean p - share positive|."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(np.sum(which == b) / len(p) * abs(p[which == b].mean() - y[which == b].mean())
                     for b in range(bins) if np.any(which == b)))  # fmt: skip


def _calibration_table(engine: Engine, ids: list[int], manifest_rows: list[dict]) -> None:
    """Each binary task's stored calibrated probability against the truth, where the view shows it."""
    from echosearch.labels.encoding import probability_key
    from echosearch.store import queries as q

    with engine.db.session() as s:
        labels = q.labels_for(s, ids, engine.space_id)
    print("\n### Calibrated probabilities of binary tasks (clips whose view shows the finding)\n")
    print("| task | clips | positives | AUC | Brier | ECE |\n|---|---|---|---|---|---|")
    for task, column in BINARY_TRUTH.items():
        pairs = [(labels.get(vid, {}).get(probability_key(task)), row[column] in ("1", "True", "true"))
                 for vid, row in zip(ids, manifest_rows, strict=True) if shows_finding(row["view"], column)]  # fmt: skip
        pairs = [(p, y) for p, y in pairs if p is not None]
        if not pairs:
            print(f"| {task} | 0 | - | n/a (no stored probability) | | |")
            continue
        p, y = (np.array(v, float) for v in zip(*pairs, strict=True))
        print(f"| {task} | {len(p)} | {int(y.sum())} | {auc(p, y):.3f} | {np.mean((p - y) ** 2):.3f} | "
              f"{expected_calibration_error(p, y):.3f} |")  # fmt: skip


def _one(x, y, patient, zero_shot, n, rng, name) -> tuple[float, float] | None:
    """Label n positive + n negative clips of randomly ordered patients; score the other patients."""
    order = rng.permutation(np.unique(patient))
    chosen: list[int] = []
    pos = neg = 0
    train_patients = set()
    for p in order:
        if pos >= n and neg >= n:
            break
        train_patients.add(p)
        for i in np.flatnonzero(patient == p):
            if y[i] and pos < n:
                chosen.append(i)
                pos += 1
            elif not y[i] and neg < n:
                chosen.append(i)
                neg += 1
    test = np.flatnonzero(~np.isin(patient, list(train_patients)))
    if pos < n or neg < n or y[test].sum() < 5 or (1 - y[test]).sum() < 5:
        return None
    probe = fit_probe(name, "binary", x[chosen], y[chosen])
    said = np.nan if np.isnan(zero_shot[test]).any() else auc(zero_shot[test], y[test])
    return auc(probe.scores(x[test]), y[test]), said


if __name__ == "__main__":
    main()
