"""Indexing from a DICOMweb server: the runner's own pipeline with QIDO-RS as discovery and WADO-RS
in front of the reader.

- plan: QIDO-RS lists the ultrasound instances (:func:`echosearch.pacs.dicomweb.list_instances`);
  one already indexed (its SOP Instance UID, from any source) or failed before is not fetched;
- read: each job runs :func:`fetch_and_read` in the distributor's workers: WADO-RS retrieves the
  instance to the spool (``DATA/spool/dicomweb/``), :func:`~echosearch.indexer.reader.read_one` reads
  it, and the copy is deleted (unless ``--keep``). The workers retrieve in parallel, at most
  ``max_in_flight`` jobs at once (so at most that many spooled files), while the main process embeds;
- write: the same mapper and writer; the clip is keyed by its instance URL (:mod:`echosearch.sources`).

A server that stops answering (or refuses the credentials) ends the run with one line and records
nothing against the clips; a rerun fetches what is still missing. After a run that completed, the
date is remembered, and the next run asks QIDO-RS only for studies from the day before that date on
(``--since`` chooses another date, ``--all`` asks for every study).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from echosearch.indexer.reader import ReaderConfig, ReadJob, ReadResult, read_one
from echosearch.indexer.runner import IndexOptions, Runner
from echosearch.indexer.writer import Writer
from echosearch.pacs.credentials import Credentials
from echosearch.pacs.dicomweb import InstanceError, SourceError, list_instances, make_client, retrieve_to
from echosearch.sources import dicomweb_base, parse_key
from echosearch.store.schema import SiteSetting, Video
from echosearch.store.types import stored_form

log = logging.getLogger(__name__)

SOURCE_UNAVAILABLE = "SourceUnavailable"
MAX_INSTANCE_BYTES = 4 << 30
LAST_RUN_MARGIN = dt.timedelta(days=1)  # a study acquired late on the day of the last run


@dataclass
class DicomwebOptions:
    """What ``echosearch index dicomweb+http(s)://...`` adds to :class:`IndexOptions`."""

    url: str
    since: dt.date | None = None
    studies: list[str] = field(default_factory=list)
    modality: str | None = None
    stills: bool = False
    keep: bool = False
    all: bool = False  # ignore the remembered date of the last run
    credentials: Credentials = field(default_factory=Credentials)


@dataclass(frozen=True)
class FetchConfig:
    """What a retrieval worker needs (picklable); the credentials never appear in its repr."""

    reader: ReaderConfig
    http_base: str
    credentials: Credentials
    keep: bool = False
    max_bytes: int = MAX_INSTANCE_BYTES


_clients: dict[tuple, object] = {}  # one client (and its connection pool) per worker process


def fetch_and_read(job: ReadJob, cfg: FetchConfig) -> ReadResult:
    """WADO-RS the job's instance to ``job.path``, then read it like a file; failures are returned."""
    ref = parse_key(job.source or "")
    key = (cfg.http_base, cfg.credentials)
    client = _clients.get(key) or _clients.setdefault(key, make_client(cfg.http_base, cfg.credentials))
    path = Path(job.path)
    try:
        size = retrieve_to(client, ref, path, cfg.max_bytes)
    except SourceError as exc:
        return ReadResult(job=job, error_kind=SOURCE_UNAVAILABLE, error=str(exc))
    except InstanceError as exc:
        return ReadResult(job=job, error_kind=exc.kind, error=str(exc))
    try:
        return read_one(dataclasses.replace(job, size=size), cfg.reader)
    finally:
        if not cfg.keep:
            path.unlink(missing_ok=True)


def last_run_setting(base: str) -> str:
    """The site setting that remembers the date of the last completed run against ``base``."""
    return "dicomweb_last_run:" + hashlib.sha256(base.encode()).hexdigest()[:40]


class DicomwebRunner(Runner):
    """A :class:`Runner` whose clips come from a DICOMweb server (see the module doc)."""

    def __init__(self, opts: IndexOptions, source: DicomwebOptions, distributor=None, encoder=None) -> None:
        self.source = source
        self.base = dicomweb_base(source.url)
        super().__init__(opts, distributor, encoder)
        self.spool = self.data_dir / "spool" / "dicomweb"
        self.client = make_client(self.base.removeprefix("dicomweb+"), source.credentials)

    def _since(self) -> dt.date | None:
        if self.source.since is not None or self.source.all or self.source.studies:
            return self.source.since
        with self.db.session() as s:
            row = s.get(SiteSetting, last_run_setting(self.base))
            return dt.date.fromisoformat(row.value) - LAST_RUN_MARGIN if row else None

    def _plan(self, writer: Writer) -> list[ReadJob]:
        src, summary = self.source, self.summary
        since = self._since()
        listing = list_instances(
            self.client, self.base, since=since, studies=src.studies, modality=src.modality, stills=src.stills
        )
        summary.found = len(listing.instances)
        indexed = self._indexed_sop_uids()
        self._load_known()
        jobs = []
        for ref in listing.instances:
            if stored_form(Video.sop_uid, ref.sop_uid) in indexed:  # compared as the column stores it
                summary.unchanged += 1
            elif ref.key in self._failed and not self.opts.retry_failed:
                summary.skipped_failed += 1
            else:
                spooled = self.spool / ref.study_uid / ref.series_uid / f"{ref.sop_uid}.dcm"
                jobs.append(ReadJob(str(spooled), 0, 0, source=ref.key))
        summary.source = {
            "url": self.base,
            "since": since.isoformat() if since else None,
            "listed": len(listing.instances),
            "fetched": len(jobs),
            "passed_over": listing.skipped,
        }
        log.info("%s: %d instances listed, %d to fetch", urlsplit(self.base).netloc, summary.found, len(jobs))
        return jobs

    def _reader(self, cfg: ReaderConfig) -> tuple:
        http = self.base.removeprefix("dicomweb+")
        return fetch_and_read, FetchConfig(cfg, http, self.source.credentials, keep=self.source.keep)

    def _check_source(self, result: ReadResult) -> None:
        if result.error_kind == SOURCE_UNAVAILABLE:
            raise SourceError(result.error)

    def _run(self):
        summary = super()._run()
        if not self.source.studies:  # a completed run over the whole server (not a few studies)
            with self.db.session() as s:
                s.merge(SiteSetting(name=last_run_setting(self.base), value=dt.date.today().isoformat()))
        return summary


def run_dicomweb_index(opts: IndexOptions, source: DicomwebOptions, distributor=None, encoder=None):
    """Index the ultrasound instances of a DICOMweb server into ``opts.data_dir``; the summary."""
    from echosearch.labels.calibration import load_thresholds
    from echosearch.labels.tasks import load_tasks

    dicomweb_base(source.url)  # a bad URL is a usage error before the data dir is touched
    if opts.tasks:
        load_tasks(opts.tasks)
    if opts.thresholds:
        load_thresholds(opts.thresholds)
    return DicomwebRunner(opts, source, distributor, encoder).run()
