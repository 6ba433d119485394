"""Runner: one ``echosearch index`` run, start to finish.

discover -> classify (unchanged / known failure / to read) -> readers (distributor) -> mapper (model,
batched across clips) -> writer (transactions every N clips); then reports; then the summary.
Before any of that it reconciles the data dir (:mod:`echosearch.indexer.reconcile`), so a run that follows a
kill -9 first repairs what the killed run left half-done and then simply carries on.

The model is loaded only when there is something to embed: a rerun over an unchanged archive does
no model work at all (not even loading it).
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import select, update

from echosearch.errors import UsageError
from echosearch.fsutil import sha256_file
from echosearch.index import Space, SpaceInfo, list_spaces, report_space_name
from echosearch.indexer.discover import discover
from echosearch.indexer.distributor import CrashedJob, Distributor, default_workers, make_distributor
from echosearch.indexer.mapper import LocalEmbedding, Mapper
from echosearch.indexer.reader import ReaderConfig, ReadJob, ReadResult, read_one
from echosearch.indexer.reconcile import check_report_space, check_video_space
from echosearch.indexer.relabel import relabel_space
from echosearch.indexer.reports_csv import index_reports, missing_report_ids, read_reports_csv
from echosearch.indexer.summary import IndexSummary, Progress
from echosearch.indexer.writer import Writer, mtime_of
from echosearch.labels.calibration import load_thresholds, resolve_tasks
from echosearch.labels.tasks import load_tasks
from echosearch.lock import WriterLock
from echosearch.models import Encoder, load_model, resolve_bundle
from echosearch.models.arch import is_arch
from echosearch.paths import make_private_dir, storable_path
from echosearch.privacy import site_key_for
from echosearch.sources import (
    SourceRoots,
    describe_path,
    is_remote,
    keyed_path,
    register_root,
    root_folder,
)
from echosearch.store import queries as q
from echosearch.store.db import Database, open_db
from echosearch.store.schema import STATUS_INDEXED, Failure, IndexRun, Video
from echosearch.store.types import stored_form
from echosearch.video import parse_sampling

log = logging.getLogger(__name__)


@dataclass
class IndexOptions:
    """The arguments of ``echosearch index`` (see the CLI help for each)."""

    paths: list[str]
    data_dir: str
    db: str | None = None  # the metadata database's URL (None: $ECHOSEARCH_DB, else SQLite in data_dir)
    model: str = "echosearch-demo"
    workers: int | None = None  # None: default_workers(); 0: read in this process
    batch_size: int | None = None  # frames per model forward pass (None: the encoder's default)
    frames: str = "uniform:16"
    reports: str | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    prune: bool = False
    retry_failed: bool = False
    mask: bool = True
    commit_every: int = 32
    progress: bool | None = None
    device: str = "auto"
    precision: str = "auto"
    tasks: str | None = None  # a task file overriding the bundle's own zero-shot tasks
    thresholds: str | None = None  # a site's thresholds file (what `calibrate --out` writes)
    engine: str = "local"  # "local" (processes here) or "ray" (see echosearch.indexer.ray_engine)
    ray_address: str | None = None  # None: a local Ray cluster; "auto"; "ray://HOST:10001"
    encoders: int = 1  # Ray encoder actors (one model each)
    gpus_per_encoder: float = 0.0
    cpus_per_encoder: int = 1
    index_memory: int | None = None  # bytes the vector index may take (None: keep the space's budget)


def space_name_for(bundle_name: str) -> str:
    """A bundle name as a space folder name (``arch:tiny`` -> ``arch-tiny``)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", bundle_name).strip("-.") or "model"


def model_ref(model: str, bundle_name: str) -> str:
    """What the space records as its model, so the Engine can load it again: the registry name, an
    ``arch:`` name, or the absolute folder of a bundle given by path."""
    if is_arch(model):
        return model
    p = Path(model).expanduser()
    return str(p.resolve()) if p.is_dir() else bundle_name


class Runner:
    """Holds the open data dir, the model (lazily) and the writer for one run."""

    def __init__(
        self, opts: IndexOptions, distributor: Distributor | None = None, encoder: Encoder | None = None
    ) -> None:
        """``encoder``: an already loaded model of ``opts.model`` (a long-lived service or a benchmark
        reuses its own instead of loading it again)."""
        parse_sampling(opts.frames)  # a bad --frames is a usage error before any work
        self.opts = opts
        self.data_dir = Path(opts.data_dir).expanduser()
        make_private_dir(self.data_dir)
        self.db: Database = open_db(self.data_dir, writer=True, db=opts.db)
        self.site_key = site_key_for(self.data_dir, self.db)
        self.bundle = resolve_bundle(opts.model)
        self.model_ref = model_ref(opts.model, self.bundle.name)
        self.summary = IndexSummary(model=self.model_ref, space=space_name_for(self.bundle.name))
        if opts.engine not in ("local", "ray"):
            raise UsageError(f"unknown engine {opts.engine!r} (local or ray)")
        if distributor is None and opts.engine == "ray":
            from echosearch.indexer.ray_engine import RayDistributor, import_ray

            import_ray()  # no Ray installed: say so before any work
            distributor = RayDistributor(opts.ray_address)
        workers = default_workers() if opts.workers is None else opts.workers
        self.distributor = distributor or make_distributor(workers)
        self._encoder: Encoder | None = encoder
        self.roots = SourceRoots({})  # the registered source roots (echosearch.sources), set by the run

    # ------------------------------------------------------------ model and spaces

    @property
    def model_loaded(self) -> bool:
        """Whether this run needed the model at all (an unchanged archive does not)."""
        return self._encoder is not None

    @property
    def batch_frames(self) -> int:
        """Frames gathered (across clips) before one model call."""
        from echosearch.models.encoder import CPU_BATCH

        return self.opts.batch_size or (self._encoder.batch_size if self._encoder else CPU_BATCH)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_model(
                self.opts.model,
                device=self.opts.device,
                precision=self.opts.precision,
                batch_size=self.opts.batch_size,
            )
        return self._encoder

    def _open_space(self, name: str, kind: str) -> tuple[Space, int]:
        dim = int(self.bundle.model_cfg["embed_dim"])
        prep = dict(self.bundle.preprocess_cfg)
        prep = {k: prep[k] for k in ("size", "mean", "std") if k in prep}
        if kind == "video":
            prep.update(sampling=self.opts.frames, mask_sector=self.opts.mask)
        info = SpaceInfo(
            name=name,
            model_name=self.model_ref,
            dim=dim,
            model_version=self.bundle.version,
            kind=kind,
            preprocessing=prep,
        )
        space = Space.create(self.data_dir, info)
        if kind == "video" and self.opts.index_memory is not None:
            space.set_index_memory(self.opts.index_memory)
        with self.db.session() as s:
            row = q.upsert_space(
                s,
                name,
                model_name=self.model_ref,
                dim=dim,
                model_version=self.bundle.version,
                preprocessing=prep,
                kind=kind,
            )
            return space, row.id

    # ------------------------------------------------------------ the run

    def run(self) -> IndexSummary:
        """The whole run, holding the data dir's writer lock (see :mod:`echosearch.lock`)."""
        with WriterLock(self.data_dir):
            try:
                return self._run()
            finally:
                self.db.close()

    def _run(self) -> IndexSummary:
        start = time.perf_counter()
        opts, summary = self.opts, self.summary
        space, space_id = self._open_space(summary.space, "video")
        n_video_spaces = sum(sp.info.kind == "video" for sp in list_spaces(self.data_dir))
        with self.db.session() as s:
            s.execute(update(IndexRun).where(IndexRun.status == "running").values(status="interrupted"))
            for given in opts.paths:  # each local folder (a file's folder) becomes a source root
                if not is_remote(given):
                    register_root(s, root_folder(given))
            self.roots = SourceRoots(q.source_roots(s))
            args = {k: v for k, v in asdict(opts).items() if k != "progress"}
            # paths may name MRN folders: the run records roots by id, what is below them keyed
            args["paths"] = [describe_path(p, self.roots, self.site_key) for p in opts.paths]
            if opts.reports:
                args["reports"] = keyed_path(opts.reports, self.site_key)
            args["db"] = self.db.url  # never the password
            run_id = q.start_run(s, args).id
        check = check_video_space(self.db, space, multi=n_video_spaces > 1, repair=True, deep=False)
        summary.reconciled = {k: v for k, v in check.repaired.items() if v}
        writer = Writer(self.db, space, space_id, commit_every=opts.commit_every)
        status = "ok"
        try:
            self._labels_follow_tasks(space, space_id)
            jobs = self._plan(writer)
            if jobs:  # readers start importing their libraries now; the model loads on the first clip
                self.distributor.start()
            self._index(jobs, writer)
            writer.close()
            if jobs:  # the site's few-shot probes label the new clips too (from their stored vectors)
                from echosearch.probes import apply_all

                apply_all(self.db, space, space_id, space.load_index())
            self._reports()
        except BaseException:
            status = "interrupted"
            raise
        finally:
            self.distributor.close()
            summary.seconds = time.perf_counter() - start
            with self.db.session() as s:
                q.finish_run(s, run_id, summary.to_dict(), status=status)
        return summary

    def _load_known(self) -> tuple[dict[str, tuple], dict[str, set[str | None]]]:
        """What the database knows of every clip key: {key: (id, status, size, mtime, sha256)}, and the
        content hashes each key failed with ({key: {sha256}}); kept on the runner for the reads."""
        with self.db.session() as s:
            cols = select(Video.path, Video.id, Video.status, Video.size, Video.mtime, Video.sha256)
            known = {p: (vid, st, size, mtime, sha) for p, vid, st, size, mtime, sha in s.execute(cols).all()}
            failed: dict[str, set[str | None]] = {}
            for path, sha in s.execute(select(Failure.path, Failure.sha256)).all():
                failed.setdefault(path, set()).add(sha)
        self._known, self._failed = known, failed
        return known, failed

    def _indexed_sop_uids(self) -> set[str]:
        """SOP Instance UIDs already indexed (a PACS instance is not fetched or read again)."""
        with self.db.session() as s:
            return set(s.scalars(select(Video.sop_uid).where(Video.status == STATUS_INDEXED)))

    def _key(self, path: str | os.PathLike, resolved: bool = False) -> str:
        """The stored key of a local file (:mod:`echosearch.sources`). A file reached through a
        symlink that leads out of every root has the folder it really lives in registered first."""
        key = self.roots.key_for(path, resolved=resolved)
        if key is None:
            folder = Path(path).parent if resolved else Path(os.path.abspath(path)).parent
            with self.db.session() as s:
                register_root(s, folder)
                self.roots = SourceRoots(q.source_roots(s))
            key = self.roots.key_for(path, resolved=resolved)
        return key or storable_path(path)

    def _gone(self, key: str) -> bool:
        """Whether an indexed clip's file is gone (a remote key is no file: never gone here)."""
        path = self.roots.path_for(key)
        return path is not None and not os.path.exists(path)

    def _plan(self, writer: Writer) -> list[ReadJob]:
        """Discover, prune, and decide per candidate: unchanged, known failure, or to be read."""
        opts, summary = self.opts, self.summary
        found = discover(opts.paths, include=opts.include, exclude=opts.exclude)
        summary.found = len(found.candidates)
        summary.unreadable_paths = len(found.unreadable)
        keys = [self._key(c.path, resolved=True) for c in found.candidates]  # roots first, then rows
        for path, why in found.unreadable:  # recorded like a file that failed to read: seen in stats
            key = self._key(path)
            log.warning("cannot look into %s: %s", key, why)
            writer.record_path_failure(key, why)
        known, failed = self._load_known()
        in_space = writer.frames
        gone = [
            vid
            for key, (vid, status, *_rest) in known.items()
            if status == STATUS_INDEXED and self._gone(key)
        ]
        summary.missing = len(gone)
        if opts.prune and gone:
            summary.pruned = writer.prune(gone)
        jobs = []
        for c, path in zip(found.candidates, keys, strict=True):
            row = known.get(path)
            indexed_here = row is not None and row[1] == STATUS_INDEXED and row[0] in in_space
            if indexed_here and row[2] == c.size and row[3] == mtime_of(c.mtime_ns):
                summary.unchanged += 1
                continue
            if path in failed and not opts.retry_failed:
                try:
                    sha = sha256_file(c.path)
                except OSError:
                    sha = None
                if sha in failed[path]:
                    summary.skipped_failed += 1
                    continue
            known_sha = row[4] if indexed_here else None
            jobs.append(ReadJob(str(c.path), c.size, c.mtime_ns, known_sha256=known_sha, source=path))
        return jobs

    def _index(self, jobs: list[ReadJob], writer: Writer) -> None:
        if not jobs:
            return
        opts, summary = self.opts, self.summary
        read_fn, cfg = self._reader(
            ReaderConfig(
                data_dir=str(self.data_dir.resolve()),
                sampling=opts.frames,
                size=int(self.bundle.preprocess_cfg["size"]),
                mask_sector=opts.mask,
                site_key=self.site_key,
            )
        )
        with self.db.session() as s:
            rows = s.execute(
                select(Video.sha256, Video.sop_uid, Video.path).where(Video.status == STATUS_INDEXED)
            )
            seen_sha = {sha: p for sha, _sop, p in rows if sha}
            rows = s.execute(select(Video.sop_uid, Video.path).where(Video.status == STATUS_INDEXED))
            seen_sop = {sop: p for sop, p in rows if sop}
        embedding = None  # the encoders start on the first clip to embed (readers keep reading meanwhile)
        pending: list[ReadResult] = []
        progress = Progress(len(jobs), opts.progress)

        def write(batches) -> None:  # noqa: ANN001
            for items in batches:
                summary.embedded += len(items)
                summary.frames += sum(it.frame_embs.shape[0] for it in items)
                writer.add(items)

        def flush() -> None:
            nonlocal embedding
            embedding = embedding or self._embedding(writer.space)
            embedding.submit(list(pending))
            pending.clear()
            write(embedding.ready())

        try:
            for result in self.distributor.map_unordered(read_fn, jobs, cfg):
                if isinstance(result, CrashedJob):
                    result = ReadResult(job=result.job, error_kind="WorkerCrashed", error=result.reason)
                path = result.job.key
                if result.error_kind:
                    self._check_source(result)
                    writer.record_failure(result)
                    summary.failed += 1
                    reasons = summary.failed_by_reason
                    reasons[result.error_kind] = reasons.get(result.error_kind, 0) + 1
                    progress.update(failure=result.error_kind)
                    continue
                if result.unchanged_content:
                    writer.touch(result)
                    summary.touched += 1
                    progress.update()
                    continue
                sop = stored_form(Video.sop_uid, result.meta.sop_instance_uid)  # as seen_sop holds them
                if seen_sha.get(result.sha256, path) != path or seen_sop.get(sop, path) != path:
                    summary.duplicates += 1
                    row = self._known.get(path)
                    if row is not None and row[1] == STATUS_INDEXED:  # its old content is gone
                        summary.pruned += writer.prune([row[0]])
                    log.info("%s duplicates %s", path, seen_sha.get(result.sha256) or seen_sop.get(sop))
                    progress.update()
                    continue
                seen_sha[result.sha256], seen_sop[sop] = path, path
                row = self._known.get(path)
                if row is not None and row[1] == STATUS_INDEXED:
                    summary.updated += 1
                else:
                    summary.new += 1
                if path in self._failed:
                    with self.db.session() as s:
                        q.clear_failures(s, path)
                pending.append(result)
                if sum(r.num_frames for r in pending) >= self.batch_frames:
                    flush()
                progress.update(frames=result.num_frames)
            if pending:
                flush()
            if embedding is not None:
                write(embedding.ready(wait_all=True))
        finally:
            progress.close()
            if embedding is not None:
                embedding.close()
            if hasattr(self.distributor, "nodes"):  # the Ray engine: where the work ran
                self.summary.nodes = {"read": dict(self.distributor.nodes)}
                if embedding is not None and hasattr(embedding, "nodes"):
                    self.summary.nodes["embedded"] = dict(embedding.nodes)

    # ------------------------------------------------------------ hooks of other sources

    def _reader(self, cfg: ReaderConfig) -> tuple:
        """The function the distributor runs per job, and its config: files on disk are read as they
        are; a remote source (:mod:`echosearch.indexer.dicomweb`) retrieves each job first."""
        return read_one, cfg

    def _check_source(self, result: ReadResult) -> None:
        """Called with every failed job before it is recorded: a source that stopped answering ends
        the run here (raising), since that is no fault of the clip and must not be recorded as one."""

    @cached_property
    def zero_shot(self) -> tuple[list, dict]:
        """The tasks and thresholds this run labels with (see :func:`resolve_tasks`)."""
        return resolve_tasks(self.bundle, self.opts.tasks, self.opts.thresholds)

    def _labels_follow_tasks(self, space: Space, space_id: int) -> None:
        """Relabel the clips indexed earlier when the tasks or thresholds changed since (a new
        ``--tasks``/``--thresholds``, a recalibrated bundle), so every clip of the space carries labels
        of the same tasks; from the frame store, no video is read again."""
        recorded = space.recorded_tasks()
        if recorded is None or recorded == self.zero_shot:
            return
        tasks, thresholds = self.zero_shot
        done = relabel_space(self.db, space, space_id, self.encoder, tasks, thresholds, self.opts.progress)
        self.summary.relabelled = done.clips
        log.info("tasks or thresholds changed: relabelled %d clips from the frame store", done.clips)

    def _embedding(self, space: Space):  # noqa: ANN202
        """The encoders of this run's engine: the model here, or a pool of Ray actors."""
        tasks, thresholds = self.zero_shot
        space.record_tasks(tasks, thresholds)
        opts = self.opts
        if opts.engine != "ray":
            return LocalEmbedding(Mapper(self.encoder, tasks, thresholds))
        from echosearch.indexer.ray_engine import EncoderSpec, RayEmbedding

        spec = EncoderSpec(
            model=self.model_ref, device="cuda" if opts.gpus_per_encoder else opts.device,
            precision=opts.precision, batch_size=opts.batch_size, tasks=tasks, thresholds=thresholds,
            threads=opts.cpus_per_encoder,
        )  # fmt: skip
        return RayEmbedding(spec, opts.encoders, opts.gpus_per_encoder)

    def _reports(self) -> None:
        """Reports from ``--reports``, plus any report that lost its vector in an interrupted run."""
        space, _ = self._open_space(report_space_name(self.summary.space), "report")
        check_report_space(self.db, space, repair=True, deep=False)
        rows = read_reports_csv(Path(self.opts.reports)) if self.opts.reports else []
        if not rows and not missing_report_ids(self.db, space):
            return
        counts = index_reports(rows, self.db, self.site_key, space, lambda t: self.encoder.encode_text(t))
        self.summary.reports = asdict(counts)


def run_index(
    opts: IndexOptions, distributor: Distributor | None = None, encoder: Encoder | None = None
) -> IndexSummary:
    """Index ``opts.paths`` into ``opts.data_dir`` (see :class:`IndexOptions`); returns the summary.
    ``encoder``: the model of ``opts.model`` already loaded (the API server's), reused."""
    if not opts.paths:
        raise UsageError("give at least one file or folder to index")
    missing = [p for p in opts.paths if not os.path.exists(p)]
    if missing:  # a typo must not look like a successful run that found nothing
        raise UsageError(f"no such file or folder: {storable_path(missing[0])}")
    if opts.tasks:  # a broken task or thresholds file fails now, not once readers have started
        load_tasks(opts.tasks)
    if opts.thresholds:
        load_thresholds(opts.thresholds)
    return Runner(opts, distributor, encoder).run()
