"""The Engine: one facade over an opened archive for the UI, the CLI, the API and Python callers.

It owns no search logic. Each question goes to the part whose one job it is, and every search's
timing and audit row goes through :class:`~echosearch.search.audit.Audit`:

- :class:`~echosearch.search.context.OpenSpace`: the database, the space's vectors, its model;
- :class:`~echosearch.search.query_vectors.QueryVectors`: text and clips -> query vectors;
- :class:`~echosearch.search.videos.VideoSearch`: searches whose answers are clips;
- :class:`~echosearch.search.studies.StudySearch`: studies, patients and reports;
- :class:`~echosearch.search.label_stats.LabelStats`: the space's labels and their statistics;
- :class:`~echosearch.search.hits.Hits`: result rows from stored rows.

The model is loaded only when a query needs it (text, a new clip, a custom prompt): study lookups
and video->video by id work without it. All scores are cosine similarities of unit vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from echosearch.errors import UsageError
from echosearch.index import Space, VectorIndex, list_spaces
from echosearch.index.faiss_index import VectorIndexError
from echosearch.index.header import read_header
from echosearch.search.audit import Audit
from echosearch.search.context import OpenSpace
from echosearch.search.hits import Hits
from echosearch.search.label_stats import LabelStats
from echosearch.search.query_vectors import QueryVectors
from echosearch.search.results import SamePatientScore, SearchResult, StudyHit, VideoHit
from echosearch.search.studies import StudySearch
from echosearch.search.videos import VideoSearch
from echosearch.store import queries as q
from echosearch.store.db import has_database, open_db
from echosearch.store.schema import Study, Video


class Engine:
    """Queries over one data dir and one embedding space. Cheap to query, costly to open: keep one,
    and close it (``with Engine.open(...) as engine:``)."""

    def __init__(self, archive: OpenSpace):
        self.archive = archive
        self.audit = Audit(archive)
        self.labels = LabelStats(archive, lambda: self.vectors.lexicon)
        self.vectors = QueryVectors(archive, self.labels.titles)
        self.hits = Hits(archive)
        self.videos = VideoSearch(archive, self.vectors, self.labels, self.hits)
        self.studies = StudySearch(archive, self.vectors, self.hits)
        self._clinical: bool | None = None

    @classmethod
    def open(
        cls,
        data_dir: str | Path | None = None,
        *,
        space: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        writer: bool = False,
        db: str | None = None,
    ) -> Engine:
        """Open a data dir. ``space`` picks the model's space when the archive has several.
        ``writer``: for a command that writes (relabel), under the data dir's writer lock.
        ``db``: its metadata database's URL (default: ``$ECHOSEARCH_DB``, else SQLite in the data dir)."""
        from echosearch.paths import data_dir as resolve_data_dir

        root = resolve_data_dir(data_dir)
        if not has_database(root, db):
            raise UsageError(
                f"no echosearch index in {root} (run `echosearch index PATH --data {root}` first)"
            )
        videos = [sp for sp in list_spaces(root) if sp.info.kind == "video"]
        if not videos:
            raise UsageError(f"{root} has no embedding space yet (run `echosearch index` first)")
        if space is None:
            chosen = default_space(videos)
        else:
            matches = [sp for sp in videos if space in (sp.name, sp.info.model_name)]
            if not matches:
                names = ", ".join(sp.name for sp in videos)
                raise UsageError(f"no space for model {space!r} in {root} (have: {names})")
            chosen = matches[0]
        database = open_db(root, writer=writer, db=db)
        try:
            return cls(OpenSpace(root, database, chosen, device=device, precision=precision))
        except BaseException:
            database.close()
            raise

    def close(self) -> None:
        self.audit.close()  # rows still queued by a server are written first
        self.archive.db.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reload(self) -> None:
        """Pick up vectors and labels written by an indexer since the engine was opened."""
        self.archive.reload_vectors()
        self.studies.forget()
        self.labels.forget()
        self.videos.forget()

    # -------------------------------------------------------------- what the archive is

    @property
    def data_dir(self) -> Path:
        return self.archive.data_dir

    @property
    def db(self):
        return self.archive.db

    @property
    def space(self):
        return self.archive.space

    @property
    def space_id(self) -> int | None:
        return self.archive.space_id

    @property
    def index(self):
        return self.archive.index

    @property
    def report_space(self):
        return self.archive.report_space

    @property
    def report_index(self):
        return self.archive.report_index

    @property
    def model_name(self) -> str:
        return self.archive.model_name

    @property
    def encoder(self):
        """The space's model, loaded on first use (text queries, new clips, custom prompts)."""
        return self.archive.encoder

    @property
    def model_loaded(self) -> bool:
        """Whether the model is loaded already (the UI loads it in the background after a page shows)."""
        return self.archive.encoder_loaded

    @property
    def lexicon(self):
        """The model's query lexicon (configs/lexicon/): what clinicians' words mean to it."""
        return self.vectors.lexicon

    @property
    def who(self) -> str | None:
        """The user the audit log names for queries made from this thread (UI sessions are threads)."""
        return self.audit.who

    @who.setter
    def who(self, value: str | None) -> None:
        self.audit.who = value

    @property
    def clinical(self) -> bool | None:
        """False for the demo model: screens using it must say it is not a clinical model. Read from
        the bundle's manifest without loading the model (a lookup must not pay for a model load)."""
        from echosearch.models import resolve_bundle

        if self._clinical is None:
            try:
                self._clinical = bool(resolve_bundle(self.model_name, verify=False).clinical)
            except Exception:  # the model may be unavailable on this machine; the index still works
                return None
        return self._clinical

    def keyed(self, value: str) -> str | None:
        """An identifier (MRN, accession) hashed with the site key, as the index stores it."""
        return self.archive.keyed(value)

    # -------------------------------------------------------------- query vectors

    def text_vector(self, text: str) -> tuple[np.ndarray, list[str]]:
        return self.vectors.text_vector(text)

    def clip_vector(self, target: Any) -> tuple[np.ndarray, int | None, str | None]:
        return self.vectors.clip_vector(target)

    def interpret(self, text: str):
        """How a free-text query is read for this space's model (an ``Interpretation``)."""
        return self.videos.interpret(text)

    def suggest(self, query: str, n: int = 5) -> list[str]:
        return self.vectors.suggest(query, n)

    # -------------------------------------------------------------- searches (timed and audited)

    def search_text(
        self,
        query: str,
        k: int = 10,
        filters: q.VideoFilter | None = None,
        negatives: Sequence[str] = (),
        literal: bool = False,
    ) -> SearchResult:
        """Text -> video. Free clinical text is interpreted first (:meth:`interpret`): the model reads
        the vocabulary's phrases for what was asked, stated numbers and exclusions become filters and
        the labels that measure a finding best join the ranking. ``literal`` sends the text to the
        tokenizer as typed (the behaviour before query understanding)."""
        return self.search_combined(
            texts=[(query, 1.0)], negatives=negatives, k=k, filters=filters, literal=literal
        )

    def search_combined(
        self,
        texts: Sequence[tuple[str, float]] = (),
        clips: Sequence[tuple[Any, float]] = (),
        negatives: Sequence[str] = (),
        k: int = 10,
        filters: q.VideoFilter | None = None,
        negative_weight: float = 0.5,
        literal: bool = False,
        plans: Sequence[tuple[Any, float]] = (),
    ) -> SearchResult:
        """A weighted sum of text and clip vectors, minus negatives (:meth:`VideoSearch.combined`)."""
        return self.audit.answered(
            "search_combined" if clips else "search_text",
            lambda: self.videos.combined(
                texts, clips, negatives, k, filters, negative_weight, literal, plans
            ),
        )

    def search_interpretation(self, plan, k: int = 10, filters: q.VideoFilter | None = None) -> SearchResult:
        """Search with a given interpretation (one the user edited: phrases, filters, preferences)."""
        return self.search_combined(plans=[(plan, 1.0)], k=k, filters=filters)

    def search_clip(
        self,
        target: Any,
        k: int = 10,
        filters: q.VideoFilter | None = None,
        exclude_same_study: bool = True,
        exclude_self: bool = True,
    ) -> SearchResult:
        """Video -> video: the clips most like a given one (a video id, a file, or an EchoClip)."""
        return self.audit.answered(
            "search_clip", lambda: self.videos.similar(target, k, filters, exclude_same_study, exclude_self)
        )

    def score_prompt(self, prompt: str, k: int = 20, filters: q.VideoFilter | None = None) -> SearchResult:
        """Every clip scored for a new finding's prompt, from the per-frame store."""
        return self.audit.answered("score_prompt", lambda: self.videos.score_prompt(prompt, k, filters))

    def search_study(self, uid_or_accession: str, k: int = 10) -> SearchResult:
        """Study -> studies: nearest studies by study vector, the study itself left out."""
        return self.audit.answered("search_study", lambda: self.studies.similar(uid_or_accession, k))

    def same_patient(self, study_a: str, study_b: str) -> SamePatientScore:
        """EchoCLIP-R's use: how likely two studies show one patient (cosine of study vectors)."""
        return self.audit.answered(
            "same_patient",
            lambda: self.studies.same_patient(study_a, study_b),
            query=lambda r: {"a": r.study_a, "b": r.study_b},
        )

    def patient_candidates(self, target: Any, k: int = 10) -> SearchResult:
        """The studies most likely to belong to the same patient as a study (UID/accession) or clip."""
        return self.audit.answered("patient_candidates", lambda: self.studies.patient_candidates(target, k))

    def nearest_reports(self, target: Any, k: int = 5) -> SearchResult:
        """Video -> report: the report texts nearest a clip (needs reports indexed with --reports)."""
        return self.audit.answered("nearest_reports", lambda: self.studies.nearest_reports(target, k))

    # -------------------------------------------------------------- lookups

    def find_study(self, uid_or_accession: str) -> Study:
        return self.studies.find(uid_or_accession)

    def studies_for_mrn(self, mrn: str) -> list[StudyHit]:
        return self.studies.for_mrn(mrn)

    def patient_timeline(self, uid_or_accession: str) -> list[StudyHit]:
        return self.studies.timeline(uid_or_accession)

    def study_videos(self, uid_or_accession: str) -> list[VideoHit]:
        return self.studies.videos(uid_or_accession)

    def video(self, video_id: int) -> VideoHit:
        hits = self.hits.videos([(int(video_id), None)])
        if not hits:
            raise UsageError(f"no video {video_id}")
        return hits[0]

    def reports(self, study_uids: Sequence[str]) -> dict[str, str]:
        """{study UID: full report text} of the given studies that have a report (cards show an
        excerpt; this is the whole text, on demand)."""
        return self.studies.reports(list(study_uids))

    def cine(self, video_id: int):
        """The clip's cine loop for a viewer (:class:`echosearch.cine.Cine`: an MP4 of every masked
        frame at the clip's frame rate), made on first use and kept under ``DATA/cine/``."""
        from echosearch.cine import make_cine, make_pacs_cine

        key = self._key(video_id)
        source = self.archive.source_file(key)
        if source is None:  # indexed from a PACS: fetched back over DICOMweb for the loop
            return make_pacs_cine(self.data_dir, int(video_id), key)
        return make_cine(self.data_dir, int(video_id), source)

    def source_file(self, video_id: int) -> str | None:
        """The file on disk an indexed clip was read from (through its registered source root,
        :mod:`echosearch.sources`); None for a clip that came over DICOMweb or C-STORE."""
        return self.archive.source_file(self._key(video_id))

    def _key(self, video_id: int) -> str:
        """The stored key (``videos.path``) of a clip."""
        with self.db.session() as s:
            video = s.get(Video, int(video_id))
            if video is None:
                raise UsageError(f"no video {video_id}")
            return video.path

    # -------------------------------------------------------------- labels

    def clip_labels(self, target: Any) -> dict[str, Any]:
        """Zero-shot labels of a clip: stored ones for an indexed clip, computed for a new file."""
        return self.labels.of_clip(target, lambda video_id: self.video(video_id).labels)

    def label_values(self, task: str) -> np.ndarray:
        return self.labels.values(task)

    def label_categories(self, task: str) -> dict[str, int]:
        return self.labels.categories(task)

    def positive_share(self, task: str) -> tuple[int, int] | None:
        return self.labels.positive_share(task)

    def label_tasks(self) -> list[str]:
        return self.labels.names()

    def label_summary(self, task: str) -> dict[str, Any]:
        """A label across the archive: count, mean, quantiles, histogram, classes, positive share."""
        return self.labels.summary(task)

    def filter_options(self) -> dict[str, Any]:
        return self.labels.filter_options()

    def zero_shot_tasks(self) -> tuple[list, dict[str, float]]:
        return self.labels.zero_shot_tasks()

    def label_catalog(self) -> tuple[list, set[str], dict[str, Any]]:
        return self.labels.catalog()

    def readable_labels(self, labels: dict[str, Any]) -> list[str]:
        return self.labels.readable(labels)

    def readable_label_items(self, labels: dict[str, Any]) -> list:
        """:meth:`readable_labels` as items (title, value text, decision, probability, estimate)."""
        return self.labels.readable_items(labels)

    def label_titles(self) -> dict[str, str]:
        """{task: display name} ("Ejection fraction") of the space's tasks."""
        return self.labels.titles()

    def flag_condition(self, task: str) -> q.LabelCondition:
        return self.labels.flag_condition(task)

    # -------------------------------------------------------------- the archive

    def stats(self, *, load_indexes: bool = False) -> dict[str, Any]:
        """Counts per table, failures by kind, the latest runs, spaces with index type and size.

        Cheap at any size: the database's counts, sizes on disk, this engine's own indexes (loaded
        already) described in full, and every other space's kind, vector count and dim read from its
        index file's header (:mod:`echosearch.index.header`), not by loading its vectors.
        ``load_indexes=True`` loads the other spaces' indexes too, for their ANN parameters (``nlist``,
        ``nprobe``): all their vectors in memory, one space at a time."""
        with self.db.session() as s:
            counts = q.table_counts(s)
            failures = q.failures_by_kind(s)
            last_runs = q.last_runs(s)
        loaded = {self.archive.space.name: self.archive.index}
        if self.archive.report_space is not None and self.archive.report_index is not None:
            loaded[self.archive.report_space.name] = self.archive.report_index
        spaces = [
            {
                "name": sp.name,
                "kind": sp.info.kind,
                "model": sp.info.model_name,
                "model_version": sp.info.model_version,
                "dim": sp.info.dim,
                "index": _describe_index(sp, loaded.get(sp.name), load=load_indexes),
                "disk_bytes": sp.disk_bytes(),
            }
            for sp in list_spaces(self.data_dir)
        ]
        url = self.archive.db.engine.url
        db_path = Path(url.database or "") if url.get_backend_name() == "sqlite" else None
        return {
            "data_dir": str(self.data_dir),
            "model": self.model_name,
            "counts": counts,
            "failures_by_kind": failures,
            "spaces": spaces,
            "db_bytes": db_path.stat().st_size if db_path and db_path.is_file() else None,
            "last_runs": last_runs,
        }


def default_space(videos: list) -> Any:
    """The space a search uses when none is named: the registry's default model's (the one a site
    chose, or the best demo model), else the latest indexed (a site's own single model)."""
    from echosearch.models.registry import default_model

    try:
        preferred = default_model()
    except Exception:  # noqa: BLE001 - an unreadable registry must not stop a search
        preferred = None
    named = [sp for sp in videos if preferred in (sp.name, sp.info.model_name)]
    return max(named or videos, key=lambda sp: sp.info.created_at)


def _describe_index(space: Space, index: VectorIndex | None, *, load: bool) -> dict[str, Any]:
    """``VectorIndex.describe()`` of a space's index: of ``index`` when it is loaded, else of the
    index file's header (kind, ntotal, dim) unless ``load``; a file that cannot be read is reported
    (``error``), not raised: one damaged space must not hide the others' figures."""
    if index is not None:
        return index.describe()
    try:
        if load or not space.index_path.is_file():  # no file yet: an empty index, nothing to read
            return space.load_index().describe()
        return read_header(space.index_path).describe()
    except (OSError, ValueError, VectorIndexError) as exc:
        return {"kind": None, "ntotal": None, "dim": space.info.dim, "error": str(exc)}
