"""Training, evaluation and calibration on a tiny real synthetic archive with a tiny demo-shaped model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from echosearch.errors import UsageError
from echosearch.labels.tasks import load_tasks
from echosearch.models import load_model, open_bundle
from echosearch.models.bundle import Manifest, write_manifest
from echosearch.models.registry import get_entry
from echosearch.paths import package_data
from echosearch.synth import synthesize_archive
from echosearch.tokenizers import TemplateTokenizer
from echosearch.training.calibrate import calibrate
from echosearch.training.data import PairSampler, load_archive, load_frames, split_sentences, study_order
from echosearch.training.evaluate import LabelsFile, auc, evaluate, task_labels, write_report
from echosearch.training.train import (
    TrainConfig,
    _warn_unread_text,
    demo_tasks_path,
    lr_lambda,
    param_groups,
    prepare_start,
    train,
    train_step,
    use_autocast,
    view_sentences,
)

TINY_PX = 32
TINY_DIM = 32
#: The demo architecture with a toy text tower and embedding (the image tower is cheap at 32 px).
TINY = {"embed_dim": TINY_DIM, "text_cfg": {"width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHOSEARCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """3 patients x 2 studies x 2 clips (A4C + PLAX, template reports: the draw of the archives
    before demo 0.5.0), a few frames each: real DICOM files."""
    out = tmp_path_factory.mktemp("archive") / "tiny"
    synthesize_archive(out, patients=3, seed=7, studies=(2, 2), clips_per_study=(2, 2), frames=(4, 6),
                       formats=("dicom-explicit",), views="A4C,PLAX", report_style="template")  # fmt: skip
    return out


def _cfg(archive: Path, tmp: Path, name: str, **kw) -> TrainConfig:
    defaults = dict(
        epochs=4,
        batch_size=4,
        lr=1e-3,
        seed=3,
        frames=4,
        image_size=TINY_PX,
        progress=False,
        arch_overrides=TINY,
    )
    defaults.update(kw)
    return TrainConfig(archive=archive, out=tmp / name, work_dir=tmp / f"{name}.work", **defaults)


@pytest.fixture(scope="module")
def trained(archive, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("trained")
    train(_cfg(archive, tmp, "bundle"))
    return tmp / "bundle"


def test_fine_tuned_bundle_names_its_init_model_and_keeps_its_licence(archive, trained, tmp_path):
    """Weights derived from a model carry its licence; the manifest names it, not a local folder."""
    init = tmp_path / "init"
    shutil.copytree(trained, init)
    manifest = json.loads((init / "manifest.json").read_text())
    manifest.update(name="site-model", version="2.1.0", license="CC-BY-NC-4.0 (test)")
    write_manifest(init, Manifest.from_dict(manifest))
    train(_cfg(archive, tmp_path, "tuned", init=str(init), epochs=1, arch_overrides=None))
    tuned = open_bundle(tmp_path / "tuned").manifest
    assert tuned.license == "CC-BY-NC-4.0 (test)"
    assert tuned.source["init"] == "site-model 2.1.0" and str(tmp_path) not in json.dumps(tuned.to_dict())
    assert "site-model 2.1.0" in tuned.description and tuned.clinical is False


def test_loss_decreases_on_a_repeated_batch(archive, tmp_path):
    cfg = _cfg(archive, tmp_path, "b")
    start = prepare_start(cfg)
    clips = load_archive(archive)
    cache = load_frames(clips, TINY_PX, 4, tmp_path / "frames", progress=False)
    sampler = PairSampler(clips, cache, start.tokenizer, (0.5,) * 3, (0.25,) * 3, sentence_keep=1.0)
    images, tokens = sampler.batch(list(range(4)), torch.Generator().manual_seed(0))
    model = start.model
    opt = torch.optim.AdamW(param_groups(model, 0.0), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(100, 1))
    loss_fn = open_clip.loss.ClipLoss()
    losses = [train_step(model, loss_fn, opt, sched, images, tokens, torch.device("cpu")) for _ in range(8)]
    assert losses[-1] < losses[0] * 0.8, losses


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(archive, trained, tmp_path):
    first = train(_cfg(archive, tmp_path, "resumed", max_minutes=0.0))  # stops after its first step
    assert first.steps == 1 and first.planned_steps == 4
    second = train(_cfg(archive, tmp_path, "resumed", resume=True, force=True))
    assert second.resumed_from == 1 and second.steps == 4
    a = load_model(trained, device="cpu", precision="fp32").model.state_dict()
    b = load_model(tmp_path / "resumed", device="cpu", precision="fp32").model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_rerun_without_resume_refuses_to_overwrite(archive, trained, tmp_path):
    with pytest.raises(UsageError, match="already exists"):
        train(_cfg(archive, trained.parent, "bundle"))


def test_training_on_several_archives_uses_all_their_studies(archive, tmp_path, cli):
    other = tmp_path / "other"
    synthesize_archive(other, patients=2, seed=8, studies=(2, 2), clips_per_study=(2, 2), frames=(4, 5),
                       formats=("dicom-explicit",), views="A4C,PLAX", report_style="template")  # fmt: skip
    train(_cfg([archive, other], tmp_path, "both", max_steps=1))
    source = open_bundle(tmp_path / "both").manifest.source
    assert source["archive"] == "tiny+other"
    assert source["archive_clips"] == len(load_archive(archive)) + len(load_archive(other))
    assert source["archive_studies"] == 6 + 4
    with pytest.raises(UsageError, match="given twice"):
        train(_cfg([archive, archive], tmp_path, "twice", max_steps=1))
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        'tasks:\n  pacer:\n    kind: binary\n    prompts: ["EVALUATION OF PACEMAKER LEAD POSITION. "]\n'
    )
    result = cli("train", "--archive", str(archive), "--archive", str(other), "--out", str(tmp_path / "cli"),
                 "--epochs", "1", "--batch-size", "4", "--version", "9.9.9", "--tasks", str(tasks), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 2
    bundle = open_bundle(tmp_path / "cli")
    assert bundle.manifest.version == "9.9.9"
    assert bundle.load_tasks() == load_tasks(tasks)
    tasks.write_text("tasks:\n  pacer:\n    kind: binary\n")
    result = cli("train", "--archive", str(archive), "--out", str(tmp_path / "bad"), "--tasks", str(tasks))
    assert result.returncode != 0 and "task 'pacer': 'prompts' must be" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "bad").exists()


def test_trained_bundle_loads_encodes_and_carries_tokenizer_and_tasks(trained):
    bundle = open_bundle(trained)
    assert bundle.clinical is False
    assert bundle.manifest.source["steps"] == 4 and bundle.manifest.source["init"] == "arch:echosearch-demo"
    assert bundle.tokenizer_spec["kind"] == "template"
    enc = load_model(trained, device="cpu", precision="fp32")
    assert enc.preprocess_cfg["size"] == TINY_PX
    text = enc.encode_text(["SEVERE DILATED LEFT VENTRICLE.", "NO PERICARDIAL EFFUSION IS SEEN."])
    frames = enc.encode_frames(torch.randn(3, 3, TINY_PX, TINY_PX))
    assert text.shape == (2, TINY_DIM) and frames.shape == (3, TINY_DIM)
    assert torch.allclose(text.norm(dim=1), torch.ones(2), atol=1e-4)
    assert {t.name for t in bundle.load_tasks()} >= {"pacemaker", "mitraclip", "tavr", "ejection_fraction"}


def test_eval_reports_every_metric_and_writes_plots(trained, archive, tmp_path):
    enc = load_model(trained, device="cpu", precision="fp32")
    metrics = evaluate(enc, archive, frames=8, progress=False)  # 8 > the clips' 4-6 frames: padding path
    v2r = metrics["video_to_report"]
    assert v2r["candidates"] == 6 and 1 <= v2r["mean_rank"] <= 6
    assert {"R@1", "R@5", "R@10"} <= set(v2r) and 0 < v2r["mean_rank_percentile"] <= 100
    assert metrics["text_to_video"]["queries"], "no finding query had relevant clips"
    assert 0 <= metrics["same_patient"]["auc"] <= 1 and metrics["same_patient"]["same_pairs"] == 3
    zs = metrics["zero_shot"]
    assert zs["ejection_fraction"]["mae"] >= 0 and 0 <= zs["lv_size"]["accuracy"] <= 1
    assert {r["metric"] for r in metrics["targets"]} >= {"same_patient.auc", "zero_shot.tavr.auc"}
    report = write_report(metrics, tmp_path / "report")
    text = report.read_text()
    assert "Same-patient AUC" in text and "Not a clinical model" in text
    for png in ("roc.png", "ef_scatter.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["clips"] == 12


def test_calibrate_into_the_bundle_writes_thresholds_that_the_bundle_then_carries(trained, archive, tmp_path):
    """``--into-bundle`` (making a model to ship): the bundle's own thresholds file, manifest re-hashed."""
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    enc = load_model(copy, device="cpu", precision="fp32")
    raw = evaluate(enc, archive, frames=4, progress=False)["zero_shot"]
    result = calibrate(enc, archive, frames=4, progress=False, into_bundle=True)
    assert result["thresholds"], result
    assert result["path"] == str(copy / "thresholds.json")
    assert not enc.bundle.site_thresholds_path.exists()
    reopened = open_bundle(copy)  # checksums verified: the manifest was rewritten with the new file
    assert json.dumps(reopened.thresholds, sort_keys=True) == json.dumps(result["thresholds"], sort_keys=True)
    metrics = evaluate(load_model(copy, device="cpu", precision="fp32"), archive, frames=4, progress=False)
    # binary tasks get a threshold and a Platt sigmoid, regression tasks their error on the archive
    binary = [n for n, v in result["thresholds"].items() if "threshold" in v]
    entry = result["thresholds"][binary[0]]
    assert metrics["zero_shot"][binary[0]]["threshold"] == pytest.approx(entry["threshold"])
    assert {"slope", "intercept"} <= set(entry)
    assert all(v["mae"] >= 0 for v in result["thresholds"].values() if "mae" in v)
    # categorical tasks get class offsets; on the archive they were fitted on, accuracy cannot drop
    categorical = [n for n, v in result["thresholds"].items() if not {"threshold", "mae"} & set(v)]
    assert categorical
    for name in categorical:
        assert metrics["zero_shot"][name]["offsets"] == pytest.approx(result["thresholds"][name])
        assert metrics["zero_shot"][name]["accuracy"] >= raw[name]["accuracy"]


def test_calibrate_leaves_a_read_only_bundle_untouched_and_its_site_file_is_used(trained, archive, tmp_path):
    """By default calibrate writes the model's site thresholds file (in the cache dir), never the
    bundle (package data of an installed echosearch, a pulled copy); loading the model then reads
    it over the bundle's own thresholds, and any copy of the same model does too."""
    bundle = tmp_path / "installed" / "bundle"
    shutil.copytree(trained, bundle)
    files = sorted(bundle.rglob("*"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    for p in [*files, bundle]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        enc = load_model(bundle, device="cpu", precision="fp32")
        shipped = dict(enc.bundle.thresholds)
        result = calibrate(enc, archive, frames=4, progress=False)
    finally:
        for p in [bundle, *files]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert sorted(bundle.rglob("*")) == files
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    site = Path(result["path"])
    assert site.parent == Path(os.environ["ECHOSEARCH_CACHE"]) / "thresholds" and site.is_file()
    binary = next(n for n, v in result["thresholds"].items() if "threshold" in v)
    assert result["thresholds"][binary] != shipped.get(binary)
    for folder in (bundle, trained):  # the same model, wherever it lies, carries this site's thresholds
        reopened = load_model(folder, device="cpu", precision="fp32")
        assert reopened.bundle.thresholds == {**shipped, **result["thresholds"]}
        metrics = evaluate(reopened, archive, frames=4, progress=False)["zero_shot"]
        assert metrics[binary]["threshold"] == pytest.approx(result["thresholds"][binary]["threshold"])
    again = calibrate(load_model(trained, device="cpu", precision="fp32"), archive, frames=4, progress=False)
    assert again["path"] == str(site)  # recalibrating updates the same file


def test_calibrate_to_a_site_file_leaves_the_bundle_alone(trained, archive, tmp_path):
    before = (trained / "manifest.json").read_text()
    enc = load_model(trained, device="cpu", precision="fp32")
    out = tmp_path / "site-thresholds.yaml"
    result = calibrate(enc, archive, out=out, frames=4, progress=False)
    assert (trained / "manifest.json").read_text() == before
    assert out.is_file() and result["path"] == str(out)


def test_auc_matches_hand_computed_values():
    assert auc([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == 1.0
    assert auc([0.4, 0.3, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert auc([0.5, 0.5], [0, 1]) == 0.5
    assert auc([0.1, 0.3, 0.2, 0.4], [0, 0, 1, 1]) == 0.75
    assert np.isnan(auc([0.1, 0.2], [1, 1]))


def test_labels_from_report_text_agree_with_the_manifest(archive):
    """Where a manifest has no column for a task, labels come from the report: both must agree."""
    tasks = {t.name: t for t in load_tasks(demo_tasks_path())}
    clips = load_archive(archive)
    for name in ("pacemaker", "ejection_fraction", "lv_size"):
        from_manifest = task_labels(tasks[name], clips)
        for c in clips:
            c.row = {k: v for k, v in c.row.items() if k not in ("pacer", "ef", "lv_size")}
        from_reports = task_labels(tasks[name], clips)
        np.testing.assert_array_equal(from_manifest, from_reports)
        clips = load_archive(archive)


def test_the_synthetic_manifest_is_just_one_labels_file(archive):
    """Read as a site's labels CSV (columns named by task names or aliases), the manifest gives the
    ground truth its hard-coded columns gave."""
    tasks = load_tasks(demo_tasks_path())
    clips = load_archive(archive)
    labels = LabelsFile(archive / "manifest.csv")
    for task in tasks:
        assert labels.column_for(task) is not None, task.name
        np.testing.assert_array_equal(task_labels(task, clips, labels, archive), task_labels(task, clips))


def test_a_site_labels_file_keys_clips_by_path_sop_or_study_and_any_label(archive, tmp_path):
    from echosearch.labels.tasks import Task

    clips = load_archive(archive)
    first, second = clips[0], clips[-1]
    site = tmp_path / "site.csv"
    site.write_text(
        "study_uid,sop_uid,path,RV dilated,lv_size\n"
        f"{first.study_uid},,,yes,\n"  # every clip of the first study
        f",{second.row['sop_uid']},,no,Severe\n"
        f",,{first.path.relative_to(archive).as_posix()},no,\n"  # a clip's own row wins over its study's
    )
    labels = LabelsFile(site)
    rv = Task("rv_dilated", "binary", prompts=("X. ",))
    y = task_labels(rv, clips, labels, archive)
    same_study = [i for i, c in enumerate(clips) if c.study_uid == first.study_uid and c is not first]
    assert y[0] == 0 and all(y[i] == 1 for i in same_study) and y[-1] == 0
    assert np.isnan(
        y[[i for i, c in enumerate(clips) if c.study_uid not in (first.study_uid, second.study_uid)]]
    ).all()
    lv = {t.name: t for t in load_tasks(demo_tasks_path())}["lv_size"]
    assert task_labels(lv, clips, labels, archive)[-1] == 3.0  # a class name, any case
    site.write_text(f"path,rv_dilated\n{first.path.relative_to(archive).as_posix()},maybe\n")
    with pytest.raises(UsageError, match="'maybe' is not a binary label"):
        task_labels(rv, clips, LabelsFile(site), archive)


def test_demo_negative_prompts_are_the_absent_sentences_of_exactly_the_negative_reports(archive):
    """A negative prompt must mean "not this finding": every report has either it or a positive prompt."""
    tasks = [t for t in load_tasks(demo_tasks_path()) if t.negative_prompts]
    assert {t.name for t in tasks} >= {"pacemaker", "mitraclip", "tavr"}
    clips = load_archive(archive)
    for task in tasks:
        positive = task_labels(task, clips) > 0
        negative = [any(p.strip() in c.report for p in task.negative_prompts) for c in clips]
        assert positive.any() and not positive.all()
        assert negative == (~positive).tolist(), task.name


def test_sentence_subsets_tokenize_like_the_text_they_stand_for(archive, tmp_path):
    cfg = _cfg(archive, tmp_path, "b")
    tok = prepare_start(cfg).tokenizer
    clips = load_archive(archive)
    cache = load_frames(clips, TINY_PX, 4, tmp_path / "frames", progress=False)
    sampler = PairSampler(clips, cache, tok, (0.5,) * 3, (0.25,) * 3, sentence_keep=0.5)
    sents = split_sentences(clips[0].report)
    assert torch.equal(sampler.full[0], tok.encode_batch([" ".join(sents)])[0])
    ids = [i for s in sampler.sentence_ids[0][:3] for i in s]
    assert tok.encode(" ".join(sents[:3]))[1 : 1 + len(ids)] == ids


def test_schedule_and_order_are_deterministic():
    f = lr_lambda(100, 10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)
    assert (study_order(50, 3, 1) == study_order(50, 3, 1)).all()
    assert not (study_order(50, 3, 1) == study_order(50, 4, 1)).all()


def test_demo_registry_entry_points_at_the_shipped_bundle_folder():
    assert get_entry("echosearch-demo").bundle_dir.name == "echosearch-demo"


def test_shipped_demo_bundle_is_small_non_clinical_and_loads():
    entry = get_entry("echosearch-demo")
    if not (entry.bundle_dir / "manifest.json").is_file():
        pytest.skip("the demo bundle is not built in this checkout")
    bundle = open_bundle(entry.bundle_dir)
    assert bundle.clinical is False
    assert sum(p.stat().st_size for p in entry.bundle_dir.iterdir()) <= 25 * 2**20
    enc = load_model("echosearch-demo", device="cpu", precision="fp32")
    assert (
        enc.encode_text(["A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE."]).shape[0] == 1
    )
    assert bundle.load_tasks() == load_tasks(demo_tasks_path())  # ships the task file it was evaluated with


def test_cli_eval_json_and_bad_archive(cli, trained, archive, tmp_path):
    res = cli("eval", "--archive", str(archive), "--model", str(trained), "--json", "--frames", "4")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["clips"] == 12 and "pacemaker" in doc["zero_shot"]
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli("eval", "--archive", str(empty), "--model", str(trained))
    assert res.returncode == 1 and "manifest.csv" in res.stderr and "Traceback" not in res.stderr


def test_cli_calibrate_and_eval_a_site_task_file(cli, trained, archive, tmp_path):
    """A site's task file is calibrated into its own thresholds file, then judged with it; the
    bundle's thresholds file is left as it was."""
    site = tmp_path / "site.yaml"
    site.write_text(
        "tasks:\n  pacer:\n    kind: binary\n"
        '    prompts: ["A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE. "]\n'
    )
    bundle_thresholds = (
        (trained / "thresholds.json").read_bytes() if (trained / "thresholds.json").exists() else None
    )
    common = ("--archive", str(archive), "--model", str(trained), "--frames", "4", "--tasks", str(site))
    res = cli("calibrate", *common)
    assert res.returncode != 0 and "pass --out FILE" in res.stderr and "Traceback" not in res.stderr
    res = cli("calibrate", *common, "--into-bundle")
    assert res.returncode == 2 and "not with --out or --tasks" in res.stderr
    out = tmp_path / "site-thresholds.json"
    res = cli("calibrate", *common, "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    calibrated = json.loads(out.read_text())
    assert set(calibrated) == {"pacer"} == set(json.loads(res.stdout)["thresholds"])
    res = cli("eval", *common, "--thresholds", str(out), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc["zero_shot"]) == {"pacer"} and doc["tasks"] == str(site)
    assert doc["zero_shot"]["pacer"]["threshold"] == pytest.approx(calibrated["pacer"]["threshold"])
    now = (trained / "thresholds.json").read_bytes() if (trained / "thresholds.json").exists() else None
    assert now == bundle_thresholds


def test_autocast_is_bf16_on_cuda_and_opt_in_on_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not use_autocast("auto", cpu) and use_autocast("auto", cuda)
    assert use_autocast("bf16", cpu) and not use_autocast("none", cuda)
    with pytest.raises(UsageError):
        use_autocast("fp8", cpu)


def test_augmentation_is_deterministic_for_a_generator_and_changes_frames():
    from echosearch.training.data import augment_frames

    frames = torch.randint(
        0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    a = augment_frames(frames, torch.Generator().manual_seed(5))
    b = augment_frames(frames, torch.Generator().manual_seed(5))
    assert a.dtype == torch.uint8 and a.shape == frames.shape
    assert torch.equal(a, b) and not torch.equal(a, frames)


def test_each_clips_view_sentence_precedes_the_report_when_the_archive_has_more_views(archive, tmp_path):
    """A report describes the study; a clip's view is learnt only from text of the clip itself."""
    views = tmp_path / "views"
    synthesize_archive(views, patients=2, seed=5, studies=(1, 1), clips_per_study=(3, 3), frames=(2, 3),
                       formats=("dicom-explicit",), views="all", report_style="varied")  # fmt: skip
    assert view_sentences(_cfg(archive, tmp_path, "a"), load_archive(archive)) is None  # A4C/PLAX: as before
    cfg = _cfg(views, tmp_path, "v")
    tok = prepare_start(cfg).tokenizer
    clips = load_archive(views)
    phrases = view_sentences(cfg, clips)
    assert phrases and view_sentences(_cfg(views, tmp_path, "n", view_text=False), clips) is None
    cache = load_frames(clips, TINY_PX, 2, tmp_path / "frames", progress=False)
    sampler = PairSampler(
        clips, cache, tok, (0.5,) * 3, (0.25,) * 3, sentence_keep=1.0, view_sentences=phrases
    )
    _, tokens = sampler.batch(list(range(sampler.n_studies)), torch.Generator().manual_seed(0))
    for study, row in enumerate(tokens.tolist()):
        own = [clips[i] for i in sampler.study_clips[study]]
        expected = [tok.encode(f"{phrases[c.row['view']]} {c.report}") for c in own]
        assert row in expected
        assert tok.decode(row)[1] in {p.strip() for p in phrases.values()}


def test_training_warns_when_the_vocabulary_drops_report_text(tmp_path, caplog):
    """0.4.0's 74-phrase vocabulary (the demo vocabulary's first 74 phrases) cannot read varied
    reports' new wordings ("LVEF IS"); the demo vocabulary, which the shipped bundle carries, can."""
    out = tmp_path / "varied"
    synthesize_archive(out, patients=4, seed=9, studies=(1, 1), clips_per_study=(1, 1), frames=(2, 2),
                       formats=("avi",), report_style="varied")  # fmt: skip
    clips = load_archive(out)
    new = TemplateTokenizer.from_files(None, package_data() / "demo_vocab" / "template_vocab.txt")
    new_lines = (package_data() / "demo_vocab" / "template_vocab.txt").read_text().splitlines()
    shipped = TemplateTokenizer.from_files(
        None, package_data() / "models" / "echosearch-demo" / "template_vocab.txt"
    )
    old_vocab = tmp_path / "vocab_0.4.0.txt"
    old_vocab.write_text("\n".join(new_lines[:74]) + "\n")
    old = TemplateTokenizer.from_files(None, old_vocab)
    assert _warn_unread_text(new, clips) == 0 and _warn_unread_text(shipped, clips) == 0
    with caplog.at_level("WARNING"):
        assert _warn_unread_text(old, clips) > 0
    assert "does not read" in caplog.text


def test_init_image_starts_the_image_tower_from_a_bundle_and_the_text_tower_fresh(
    archive, trained, tmp_path, cli
):
    """--init-image copies every visual.* weight; the text tower (a grown vocabulary) stays new."""
    theirs = load_model(trained, device="cpu", precision="fp32").model.state_dict()
    fresh = prepare_start(_cfg(archive, tmp_path, "fresh", seed=11)).model.state_dict()
    start = prepare_start(_cfg(archive, tmp_path, "img", seed=11, init_image=str(trained)))
    ours = start.model.state_dict()
    visual = [k for k in ours if k.startswith("visual.")]
    assert visual and all(torch.equal(ours[k], theirs[k]) for k in visual)
    assert all(torch.equal(ours[k], fresh[k]) for k in ours if not k.startswith("visual."))
    assert start.init_image_label == "bundle 0.1.0"
    result = cli("train", "--archive", str(archive), "--out", str(tmp_path / "cli"), "--epochs", "1",
                 "--batch-size", "4", "--init-image", str(trained), "--json")  # fmt: skip
    assert result.returncode != 0 and "image tower shapes differ at visual." in result.stderr
    assert "Traceback" not in result.stderr  # the CLI's demo model is 112 px / 256 wide, the bundle tiny
    train(_cfg(archive, tmp_path, "made", init_image=str(trained), max_steps=1))
    manifest = open_bundle(tmp_path / "made").manifest
    assert (
        manifest.source["init"] == "arch:echosearch-demo" and manifest.source["init_image"] == "bundle 0.1.0"
    )
    assert "image tower from bundle 0.1.0" in manifest.description


def test_clip_bpe_demo_model_ships_no_tokenizer_file_and_encodes_whole_varied_reports(tmp_path):
    """The BPE demo model: CLIP's tokenizer, a context that holds a varied report, the demo tasks."""
    from echosearch.tokenizers import ClipBPETokenizer

    varied = tmp_path / "varied"
    synthesize_archive(varied, patients=2, seed=9, studies=(2, 2), clips_per_study=(2, 2), frames=(4, 5),
                       formats=("dicom-explicit",), views=("A4C", "A2C", "PSAX-AV"), report_style="varied")  # fmt: skip
    cfg = _cfg(varied, tmp_path, "bpe", tokenizer="clip-bpe", context_length=192, max_steps=1)
    start = prepare_start(cfg)
    assert (
        isinstance(start.tokenizer, ClipBPETokenizer) and start.model_cfg["text_cfg"]["vocab_size"] == 49408
    )
    assert not any(start.tokenizer.explain(c.report).truncated for c in load_archive(varied))
    train(cfg)
    bundle = open_bundle(tmp_path / "bpe")
    assert bundle.tokenizer_spec == {"kind": "clip-bpe"} and bundle.context_length == 192
    assert not (tmp_path / "bpe" / "template_vocab.txt").exists()
    assert bundle.load_tasks() == load_tasks(demo_tasks_path())
    enc = load_model(tmp_path / "bpe", device="cpu", precision="fp32")
    assert enc.encode_text(["APICAL TWO CHAMBER VIEW.", "lvef is 35%"]).shape == (2, TINY_DIM)
    with pytest.raises(UsageError, match="--tokenizer applies to arch:echosearch-demo"):
        prepare_start(_cfg(varied, tmp_path, "x", init=str(tmp_path / "bpe"), tokenizer="clip-bpe"))


def test_init_text_carries_every_old_token_onto_a_grown_vocabulary(archive, trained, tmp_path):
    """A model of a shorter vocabulary (the 0.4.0 case: phrases added before the value tokens) reads
    old text identically after --init-text, though every value, BOS and EOS id moved."""
    from safetensors.torch import load_file, save_file

    from echosearch.tokenizers import read_vocabulary

    old = tmp_path / "old"
    shutil.copytree(trained, old)
    phrases = read_vocabulary(old / "template_vocab.txt")
    keep = len(phrases) - 5
    (old / "template_vocab.txt").write_text("".join(p + "\n" for p in phrases[:keep]))
    tok = load_model(trained, device="cpu", precision="fp32").tokenizer
    state = load_file(old / "open_clip_model.safetensors")
    emb = state["token_embedding.weight"]
    rows = torch.cat([emb[: tok._template_size - 5], emb[tok._template_size :]])  # drop the last 5 phrases
    state["token_embedding.weight"] = rows.contiguous()
    save_file(state, old / "open_clip_model.safetensors")
    config = json.loads((old / "open_clip_config.json").read_text())
    config["model_cfg"]["text_cfg"]["vocab_size"] = rows.shape[0]
    (old / "open_clip_config.json").write_text(json.dumps(config))
    manifest = json.loads((old / "manifest.json").read_text())
    manifest.update(name="old", version="0.4.0")
    write_manifest(old, Manifest.from_dict(manifest))
    texts = ["THE LEFT VENTRICULAR EJECTION FRACTION IS 35%. " + phrases[0], phrases[keep - 1]]
    before = load_model(old, device="cpu", precision="fp32").encode_text(texts)
    start = prepare_start(_cfg(archive, tmp_path, "grown", init_text=str(old)))
    assert start.init_text_label == "old 0.4.0"
    with torch.no_grad():
        after = start.model.eval().encode_text(start.tokenizer.encode_batch(texts), normalize=True)
    assert torch.allclose(before, after, atol=1e-5)
    with pytest.raises(UsageError, match="both models must use a template tokenizer"):
        prepare_start(_cfg(archive, tmp_path, "bpe", tokenizer="clip-bpe", init_text=str(old)))
