"""The search Engine: every question the UI, the CLI and the Python API can ask of an indexed archive.

``Engine.open(data_dir)`` opens the metadata database, the video embedding space (one model) and,
when present, its report space. The model itself is loaded only when a query needs it (text, a new
clip, a custom prompt): study lookups and video->video by id work without it.

All scores are cosine similarities of unit vectors (EchoCLIP's retrieval score). Study vectors are
the normalised mean of their clips' vectors, the way EchoCLIP-R compares studies.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from echosearch.errors import EchosearchError, UsageError
from echosearch.index import Space, VectorIndex, list_spaces, report_space_name
from echosearch.index.faiss_index import IndexError_
from echosearch.labels.calibration import binary_threshold
from echosearch.labels.encoding import positive_key, probability_key
from echosearch.reports import SLOT
from echosearch.store import queries as q
from echosearch.store.db import Database, open_db, url_for_data_dir
from echosearch.store.schema import STATUS_INDEXED, Patient, Report, Study, Video

log = logging.getLogger(__name__)

REPORT_EXCERPT_CHARS = 240
#: Clips ranked by text similarity before label preferences re-rank them (at least 20 x k).
CANDIDATE_POOL = 200


# ---------------------------------------------------------------- results


@dataclass
class VideoHit:
    """One clip in a result list, with what a card or a JSON consumer needs."""

    video_id: int
    score: float | None  # None where the list is not a ranking (a study's clips)
    path: str
    study_uid: str | None = None
    study_date: str | None = None
    view: str | None = None
    manufacturer: str | None = None
    frames: int | None = None
    fps: float | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    thumbnail: str | None = None
    preview: str | None = None
    report_excerpt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StudyHit:
    """One study in a result list (nearest studies, same-patient candidates, a patient's timeline)."""

    study_uid: str
    score: float | None
    study_date: str | None = None
    n_videos: int = 0
    same_patient_on_record: bool | None = None
    labels: dict[str, Any] = field(default_factory=dict)  # mean of the clips' numeric labels
    report_excerpt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReportHit:
    """One report in a video->report result list."""

    report_id: int
    score: float
    study_uid: str | None
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    """A result list plus what the user should know about how the query was understood."""

    query: Any
    results: list[Any]
    notes: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0
    model: str | None = None
    interpretation: dict[str, Any] | None = None  # how a free-text query was understood

    def to_dict(self) -> dict[str, Any]:
        out = {
            "query": self.query,
            "model": self.model,
            "elapsed_ms": round(self.elapsed_ms, 2),
            "notes": self.notes,
            "suggestions": self.suggestions,
            "results": [r.to_dict() for r in self.results],
        }
        if self.interpretation is not None:
            out["interpretation"] = self.interpretation
        return out


@dataclass
class SamePatientScore:
    """How alike two studies are (cosine of study vectors), and what the records say."""

    study_a: str
    study_b: str
    score: float
    same_patient_on_record: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- the engine


class Engine:
    """Queries over one data dir and one embedding space. Cheap to query, costly to open: keep one."""

    def __init__(self, data_dir: Path, db: Database, space: Space, *, device: str, precision: str):
        self.data_dir = data_dir
        self.db = db
        self.space = space
        self.device, self.precision = device, precision
        self.index: VectorIndex = self._load_video_index()
        self.report_space: Space | None = None
        self.report_index: VectorIndex | None = None
        rname = report_space_name(space.name)
        if (Space.path_for(data_dir, rname) / "space.json").is_file():
            self.report_space = Space.open(data_dir, rname)
            self.report_index = self.report_space.load_index()
        with db.session() as s:
            row = q.get_space(s, space.name)
            self.space_id = row.id if row else None
        self._encoder = None
        self._lexicon = None
        self._plan_context: dict[str, Any] | None = None
        self._clinical: bool | None = None
        self._site_key: bytes | None = None
        self._studies: tuple[list[str], np.ndarray] | None = None
        self._local = threading.local()
        self._readable: tuple | None = None  # (when, tasks, errors, probe names) of readable_labels

    @classmethod
    def open(
        cls,
        data_dir: str | Path | None = None,
        *,
        space: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        writer: bool = False,
    ) -> Engine:
        """Open a data dir. ``space`` picks the model's space when the archive has several.
        ``writer``: for a command that writes (relabel), under the data dir's writer lock."""
        from echosearch.paths import data_dir as resolve_data_dir

        root = resolve_data_dir(data_dir)
        if not (root / "echosearch.db").is_file():
            raise UsageError(
                f"no echosearch index in {root} (run `echosearch index PATH --data {root}` first)"
            )
        videos = [sp for sp in list_spaces(root) if sp.info.kind == "video"]
        if not videos:
            raise UsageError(f"{root} has no embedding space yet (run `echosearch index` first)")
        if space is None:
            chosen = max(videos, key=lambda sp: sp.info.created_at)
        else:
            matches = [sp for sp in videos if space in (sp.name, sp.info.model_name)]
            if not matches:
                names = ", ".join(sp.name for sp in videos)
                raise UsageError(f"no space for model {space!r} in {root} (have: {names})")
            chosen = matches[0]
        db = open_db(url_for_data_dir(root), writer=writer)
        return cls(root, db, chosen, device=device, precision=precision)

    def close(self) -> None:
        self.db.close()

    # -------------------------------------------------------------- model

    @property
    def who(self) -> str | None:
        """The user the audit log names for queries made from this thread (UI sessions are threads)."""
        return getattr(self._local, "who", None)

    @who.setter
    def who(self, value: str | None) -> None:
        self._local.who = value

    @property
    def model_name(self) -> str:
        return self.space.info.model_name

    @property
    def encoder(self):
        """The space's model, loaded on first use (text queries, new clips, custom prompts)."""
        if self._encoder is None:
            from echosearch.models import load_model

            self._encoder = load_model(self.model_name, device=self.device, precision=self.precision)
            if self._encoder.dim != self.space.info.dim:
                raise UsageError(
                    f"model {self.model_name} gives {self._encoder.dim}-d vectors but space "
                    f"{self.space.name} holds {self.space.info.dim}-d ones"
                )
        return self._encoder

    @property
    def clinical(self) -> bool | None:
        """False for the demo model: screens using it must say it is not a clinical model.

        Read from the bundle's manifest, without loading the model (a study lookup or a stored
        label must not pay for a model load just to show the warning).
        """
        if self._clinical is None:
            from echosearch.models import resolve_bundle

            try:
                self._clinical = bool(resolve_bundle(self.model_name).clinical)
            except Exception:  # the model may be unavailable on this machine; the index still works
                return None
        return self._clinical

    def reload(self) -> None:
        """Pick up vectors written by an indexer since the engine was opened."""
        self.index = self._load_video_index()
        if self.report_space is not None:
            self.report_index = self.report_space.load_index()
        self._studies = None
        self._readable = None
        self._plan_context = None

    # -------------------------------------------------------------- query vectors

    def text_vector(self, text: str) -> tuple[np.ndarray, list[str]]:
        """The unit vector of a free-text query, and notes on how the tokenizer understood it."""
        text = (text or "").strip()
        if not text:
            raise UsageError("the query is empty")
        notes: list[str] = []
        explanation = self.encoder.tokenizer.explain(text)
        if explanation.phrases is not None:
            if explanation.matched_nothing:
                raise NoTemplateMatch(text, self.suggest(text))
            if explanation.unmatched:
                notes.append("ignored (matches no template phrase): " + "; ".join(explanation.unmatched))
        vec = self.encoder.encode_text([text]).numpy()[0]
        return vec, notes

    def clip_vector(self, target: Any) -> tuple[np.ndarray, int | None, str | None]:
        """A clip's unit vector from a video id, a file path or an EchoClip.

        Returns ``(vector, video_id or None, study_uid or None)`` so callers can exclude the clip
        itself and its study. A file that is already indexed (same content hash) is looked up, not
        re-encoded.
        """
        video_id = _as_video_id(target)
        if video_id is not None:
            if video_id not in self.index:
                raise UsageError(f"video {video_id} is not in the index")
            with self.db.session() as s:
                video = s.get(Video, video_id)
                study_uid = video.study.study_uid if video is not None and video.study else None
            return self.index.reconstruct([video_id])[0], video_id, study_uid
        from echosearch.video import EchoClip, preprocess_frames, read_clip

        prep = self.space.info.preprocessing or {}
        clip = (
            target
            if isinstance(target, EchoClip)
            else read_clip(
                Path(target),
                sampling=prep.get("sampling", "uniform:16"),
                mask_sector=prep.get("mask_sector", True),
            )
        )
        with self.db.session() as s:
            known = s.scalars(
                select(Video).where(Video.sha256 == clip.meta.sha256, Video.status == STATUS_INDEXED)
            ).first()
            if known is not None and known.id in self.index:
                study_uid = known.study.study_uid if known.study else None
                return self.index.reconstruct([known.id])[0], known.id, study_uid
        cfg = self.encoder.preprocess_cfg
        x = preprocess_frames(clip.frames, size=cfg["size"], mean=cfg["mean"], std=cfg["std"])
        _, clip_emb = self.encoder.encode_clips([x])
        return clip_emb.numpy()[0], None, clip.meta.study_instance_uid

    # -------------------------------------------------------------- searches

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
        """A weighted sum of text and clip vectors, minus negatives, normalised, then searched, with
        the filters and label preferences of the texts' interpretations. ``plans`` are
        interpretations given ready (e.g. edited by the user), searched like interpreted texts."""
        started = time.perf_counter()
        query_doc: dict[str, Any] = {
            "texts": [t for t, _ in texts] + [p.query for p, _ in plans],
            "negatives": list(negatives),
        }
        if literal:
            texts, negatives = _split_negatives(texts, negatives)
        notes: list[str] = []
        total = np.zeros(self.space.info.dim, dtype=np.float32)
        exclude: list[int] = []
        conditions: list[Any] = []
        preferences: list[Any] = []
        interpretations: list[Any] = []
        try:
            for text, weight in texts:
                if literal:
                    vec, text_notes = self.text_vector(text)
                    total += weight * vec
                    notes += text_notes
                else:
                    plans = [*plans, (self.interpret(text), weight)]
            for plan, weight in plans:
                interpretations.append(plan)
                vec, text_notes = self._plan_vector(plan)
                conditions += plan.filters
                preferences += plan.preferences
                total += weight * vec
                notes += text_notes
            for target, weight in clips:
                vec, vid, _ = self.clip_vector(target)
                total += weight * vec
                if vid is not None:
                    exclude.append(vid)
            for text in negatives:
                vec, text_notes = self.text_vector(text)
                total -= negative_weight * vec
                notes += text_notes
        except NoTemplateMatch as miss:
            result = SearchResult(
                query_doc, [], [*notes, *miss.notes, str(miss)], miss.suggestions, model=self.model_name
            )
            if interpretations:
                result.interpretation = interpretations[0].to_dict()
            result.elapsed_ms = 1000 * (time.perf_counter() - started)
            self._audit("search_text", query_doc)
            return result
        if not np.any(total) and not conditions and not preferences:
            raise UsageError("give at least one text or clip to search for")
        if clips and len(exclude):
            filters = _with_excluded_videos(filters, exclude)
        filters = self._with_conditions(filters, conditions, notes)
        prefs = self._resolve_preferences(preferences)
        hits = self._search_ranked(total, k, filters, prefs)
        result = SearchResult(query_doc, hits, notes, model=self.model_name)
        if interpretations:
            result.interpretation = interpretations[0].to_dict()
            if not hits:
                result.notes.append(_empty_reason(interpretations[0], filters))
                result.suggestions = self.suggest(" ".join(t for t, _ in texts))
        result.elapsed_ms = 1000 * (time.perf_counter() - started)
        self._audit("search_text" if not clips else "search_combined", query_doc)
        return result

    # -------------------------------------------------------------- query understanding

    @property
    def lexicon(self):
        """The model's query lexicon (configs/lexicon/): what clinicians' words mean to it."""
        if self._lexicon is None:
            from echosearch.query.lexicon import lexicon_for

            self._lexicon = lexicon_for(self.model_name, self.encoder.tokenizer)
        return self._lexicon

    def search_interpretation(self, plan, k: int = 10, filters: q.VideoFilter | None = None) -> SearchResult:
        """Search with a given interpretation (one the user edited: phrases, filters, preferences)."""
        return self.search_combined(plans=[(plan, 1.0)], k=k, filters=filters)

    def interpret(self, text: str):
        """How a free-text query is read for this space's model (an ``Interpretation``)."""
        from echosearch.query import interpret

        text = (text or "").strip()
        if not text:
            raise UsageError("the query is empty")
        plan = interpret(text, self.lexicon, self.encoder.tokenizer)
        titles = self._context()["titles"]
        for cond in [*plan.filters, *plan.preferences]:
            cond.display = titles.get(cond.task or "")
        return plan

    def _plan_vector(self, plan) -> tuple[np.ndarray, list[str]]:
        """The query vector of an interpretation: its weighted phrases minus its negatives."""
        notes = []
        if plan.corrections:
            notes.append("read " + ", ".join(f"'{a}' as '{b}'" for a, b in plan.corrections.items()))
        if plan.unmatched:
            notes.append("not understood: " + ", ".join(plan.unmatched))
        notes += plan.notes
        dim = self.space.info.dim
        if not plan.phrases and not plan.negatives:
            if plan.filters or plan.preferences:
                return np.zeros(dim, dtype=np.float32), notes
            if getattr(self.encoder.tokenizer, "phrases", None) is not None:
                miss = NoTemplateMatch(plan.query, self.suggest(plan.query))
                miss.notes = notes
                raise miss
            notes.append("no clinical term recognised: searched as typed")
            return self.encoder.encode_text([plan.query]).numpy()[0], notes
        texts = [p.text for p in plan.phrases] + [p.text for p in plan.negatives]
        weights = np.array([p.weight for p in plan.phrases] + [-p.weight for p in plan.negatives], np.float32)
        vectors = self.encoder.encode_text(texts).numpy()
        vec = weights @ vectors
        norm = float(np.linalg.norm(vec))
        return (vec / norm if norm > 0 else vec).astype(np.float32), notes

    def _context(self) -> dict[str, Any]:
        """What running a plan needs to know of the space, read once (the task file, the stored
        label names and views are scans a query must not repeat); :meth:`reload` reads it again.
        ``sources``: {task: (LabelSource, class names)}; ``titles``: display names; ``views``."""
        if self._plan_context is None:
            try:
                tasks, thresholds = self.zero_shot_tasks()
            except Exception:  # no model and no recorded tasks: no label can be used
                tasks, thresholds = [], {}
            self._plan_context = {
                "sources": self._label_sources(tasks, thresholds),
                "titles": {t.name: t.title for t in tasks},
                "views": None,  # read on the first view condition
            }
        return self._plan_context

    def _label_sources(self, tasks: list, thresholds: dict) -> dict[str, Any]:
        """{task: (LabelSource, class names)} for the tasks this space stores labels of."""
        from echosearch.query.rank import LabelSource, class_grades

        stored = set(self.label_tasks()) if tasks else set()
        out = {}
        for task in tasks:
            if task.name not in stored:
                continue
            classes = list(task.classes) if task.kind == "categorical" else []
            decision = positive_key(task.name) if positive_key(task.name) in stored else None
            threshold = binary_threshold(thresholds.get(task.name)) if task.kind == "binary" else None
            source = LabelSource(
                task.kind,
                decision,
                threshold if threshold is not None else 0.0,
                class_grades(classes, self.lexicon),
            )
            out[task.name] = (source, classes)
        return out

    def _with_conditions(self, filters: q.VideoFilter | None, conditions: list, notes: list[str]):
        """The user's filters plus the interpretation's hard conditions the space can answer."""
        from dataclasses import replace

        from echosearch.query.rank import sql_condition

        if not conditions:
            return filters
        f = replace(filters) if filters is not None else q.VideoFilter()
        context = self._context()
        for cond in conditions:
            if cond.kind == "view":
                if context["views"] is None:
                    context["views"] = set(self.filter_options()["views"])
                if not context["views"]:
                    notes.append(f"{cond.describe()}: not applied, this index stores no views")
                elif cond.exclude:
                    f.exclude_views = [*f.exclude_views, *cond.views]
                else:
                    f.views = [*f.views, *cond.views]
                continue
            source, classes = context["sources"].get(cond.task, (None, []))
            parts = sql_condition(cond, source, classes) if source is not None else []
            if not parts:
                notes.append(f"{cond.describe()}: not applied, this index stores no such label")
            f.labels = [*f.labels, *parts]
        return f

    def _resolve_preferences(self, preferences: list) -> list[tuple[Any, Any, list[str]]]:
        """(condition, its label source, class names) for each preference the space can answer."""
        sources = self._context()["sources"]
        out = []
        for cond in preferences:
            if cond.task in sources and cond.weight > 0:
                source, classes = sources[cond.task]
                out.append((cond, source, classes))
        return out

    def _search_ranked(
        self, vec: np.ndarray, k: int, filters: q.VideoFilter | None, prefs: list
    ) -> list[VideoHit]:
        """Search by the text vector alone, or, with label preferences, rank a candidate pool (the
        nearest clips by text plus the clips each preferred label picks) by similarity + preferences."""
        from dataclasses import replace

        from echosearch.query.rank import combined_scores, signal, sql_condition

        if not prefs:
            return self._search_videos(vec, k, filters)
        if k < 1:
            raise UsageError("k must be at least 1")
        pool = max(CANDIDATE_POOL, 20 * k)
        base = replace(filters) if filters is not None else q.VideoFilter()
        if self.space_id is not None and base.label_space_id is None:
            base.label_space_id = self.space_id
        with self.db.session() as s:
            allowed = q.filter_video_ids(s, base)
            if allowed is not None and allowed.size == 0:
                return []
            candidates = [self.index.search(vec[None, :].astype(np.float32), pool, ids=allowed)[0].ids]
            for cond, source, classes in prefs:
                parts = sql_condition(cond, source, classes)
                if parts:
                    picked = q.filter_video_ids(s, replace(base, labels=[*base.labels, *parts]))
                    candidates.append(picked[: 5 * pool])
            ids = np.unique(np.concatenate(candidates).astype(np.int64))
            ids = ids[self.index.live(ids)]
            if ids.size == 0:
                return []
            labels = q.labels_for(s, ids.tolist(), self.space_id)
        similarity = self.index.reconstruct(ids) @ vec.astype(np.float32)
        signals = np.array([[signal(c, src, labels[int(i)]) for c, src, _ in prefs] for i in ids], np.float32)
        weights = np.array([c.weight for c, _, _ in prefs], np.float32)
        scores = combined_scores(similarity, signals, weights)
        order = np.argsort(-scores, kind="stable")[:k]
        return self._video_hits([(int(ids[i]), float(scores[i])) for i in order])

    def search_clip(
        self,
        target: Any,
        k: int = 10,
        filters: q.VideoFilter | None = None,
        exclude_same_study: bool = True,
        exclude_self: bool = True,
    ) -> SearchResult:
        """Video -> video: the clips most like a given one (a video id, a file, or an EchoClip)."""
        started = time.perf_counter()
        vec, video_id, study_uid = self.clip_vector(target)
        excluded = [video_id] if video_id is not None and exclude_self else []
        filters = _with_excluded_videos(filters, excluded)
        if exclude_same_study and study_uid:
            filters.exclude_study_uids = [*filters.exclude_study_uids, study_uid]
        hits = self._search_videos(vec, k, filters)
        query_doc = {"clip": str(target) if video_id is None else video_id, "study_uid": study_uid}
        result = SearchResult(query_doc, hits, model=self.model_name)
        if exclude_same_study and study_uid:
            result.notes.append("clips of the query's own study are left out")
        result.elapsed_ms = 1000 * (time.perf_counter() - started)
        self._audit("search_clip", query_doc)
        return result

    def search_study(self, uid_or_accession: str, k: int = 10) -> SearchResult:
        """Study -> studies: nearest studies by study vector, the study itself left out."""
        started = time.perf_counter()
        study = self.find_study(uid_or_accession)
        uids, matrix = self._study_matrix()
        if study.study_uid not in uids:
            raise UsageError(f"study {study.study_uid} has no indexed clips")
        vec = matrix[uids.index(study.study_uid)]
        hits = self._nearest_studies(vec, k, exclude={study.study_uid}, reference=study)
        result = SearchResult({"study": study.study_uid}, hits, model=self.model_name)
        result.elapsed_ms = 1000 * (time.perf_counter() - started)
        self._audit("search_study", {"study": study.study_uid})
        return result

    def same_patient(self, study_a: str, study_b: str) -> SamePatientScore:
        """EchoCLIP-R's use: how likely two studies show one patient (cosine of study vectors)."""
        a, b = self.find_study(study_a), self.find_study(study_b)
        uids, matrix = self._study_matrix()
        for st in (a, b):
            if st.study_uid not in uids:
                raise UsageError(f"study {st.study_uid} has no indexed clips")
        score = float(matrix[uids.index(a.study_uid)] @ matrix[uids.index(b.study_uid)])
        on_record = None if a.patient_id is None or b.patient_id is None else a.patient_id == b.patient_id
        self._audit("same_patient", {"a": a.study_uid, "b": b.study_uid})
        return SamePatientScore(a.study_uid, b.study_uid, score, on_record)

    def patient_candidates(self, target: Any, k: int = 10) -> SearchResult:
        """The studies most likely to belong to the same patient as a study (UID/accession) or clip."""
        started = time.perf_counter()
        try:
            study = self.find_study(str(target))
            uids, matrix = self._study_matrix()
            vec = matrix[uids.index(study.study_uid)]
        except (UsageError, ValueError):
            vec, _, uid = self.clip_vector(target)
            study = self.find_study(uid) if uid else None
        exclude = {study.study_uid} if study is not None else set()
        hits = self._nearest_studies(vec, k, exclude=exclude, reference=study)
        result = SearchResult({"patient_candidates": str(target)}, hits, model=self.model_name)
        result.elapsed_ms = 1000 * (time.perf_counter() - started)
        self._audit("patient_candidates", {"target": str(target)})
        return result

    def nearest_reports(self, target: Any, k: int = 5) -> SearchResult:
        """Video -> report: the report texts nearest a clip (needs reports indexed with --reports)."""
        started = time.perf_counter()
        if self.report_index is None or self.report_index.ntotal == 0:
            raise UsageError("no reports are indexed (index with `--reports reports.csv`)")
        vec, _, _ = self.clip_vector(target)
        hits = self.report_index.search(vec[None, :], k)[0]
        with self.db.session() as s:
            reports = q.reports_by_ids(s, hits.ids.tolist())
            results = [
                ReportHit(
                    rid,
                    score,
                    reports[rid].study.study_uid if rid in reports else None,
                    reports[rid].text if rid in reports else "",
                )
                for rid, score in hits.pairs()
                if rid in reports
            ]
        result = SearchResult({"clip": str(target)}, results, model=self.model_name)
        result.elapsed_ms = 1000 * (time.perf_counter() - started)
        return result

    def score_prompt(self, prompt: str, k: int = 20, filters: q.VideoFilter | None = None) -> SearchResult:
        """Score every clip of the archive for a new finding: the mean over each clip's frames of
        the cosine to the prompt (the binary zero-shot score), from the per-frame store."""
        from echosearch.labels.scoring import binary_scores

        started = time.perf_counter()
        vec, notes = self.text_vector(prompt)
        with self.db.session() as s:
            allowed = q.filter_video_ids(s, filters)
        best_ids: list[np.ndarray] = []
        best_scores: list[np.ndarray] = []
        for batch in self.space.frames().iter_all():
            video_means = batch.per_video(batch.frames.astype(np.float32))
            scores = binary_scores(video_means[:, None, :], vec[None, :])
            ids_b = batch.ids
            if allowed is not None:
                keep = np.isin(ids_b, allowed)
                ids_b, scores = ids_b[keep], scores[keep]
            best_ids.append(ids_b)
            best_scores.append(scores)
        if best_ids:
            all_ids, all_scores = np.concatenate(best_ids), np.concatenate(best_scores)
            live = np.isin(all_ids, self.index.ids())
            all_ids, all_scores = all_ids[live], all_scores[live]
            order = np.argsort(-all_scores, kind="stable")[:k]
            pairs = [(int(all_ids[i]), float(all_scores[i])) for i in order]
        else:
            pairs = []
        result = SearchResult({"prompt": prompt}, self._video_hits(pairs), notes, model=self.model_name)
        result.elapsed_ms = 1000 * (time.perf_counter() - started)
        self._audit("score_prompt", {"prompt": prompt})
        return result

    # -------------------------------------------------------------- suggestions

    def suggest(self, query: str, n: int = 5) -> list[str]:
        """The template phrases nearest a free-text query (for template-tokenizer models).

        Ranked by shared words first (a clinician's words are usually in the phrase), then by
        character similarity, so "dilated lv" finds "<#> DILATED LEFT VENTRICLE." style phrases.
        """
        lexicon = [_example(p) for p in self.lexicon.phrases()]
        phrases = [*lexicon, *(_example(p) for p in getattr(self.encoder.tokenizer, "phrases", None) or [])]
        # Nothing alike: a few phrases of different findings, so the user still sees what works.
        return (
            suggest_phrases(query, phrases, n)
            or list(dict.fromkeys(lexicon))[:: max(1, len(lexicon) // n)][:n]
        )

    # -------------------------------------------------------------- lookups

    def find_study(self, uid_or_accession: str) -> Study:
        """A study by Study Instance UID, or by accession number (hashed with the site key)."""
        key = self._keyed(uid_or_accession)
        with self.db.session() as s:
            study = q.find_study(s, uid_or_accession) or (q.find_study(s, key) if key else None)
            if study is None:
                raise UsageError(f"no study with UID or accession {uid_or_accession!r}")
            s.expunge(study)
            return study

    def studies_for_mrn(self, mrn: str) -> list[StudyHit]:
        """A patient's studies by MRN (hashed the same way as at indexing), oldest first."""
        key = self._keyed(mrn)
        with self.db.session() as s:
            patient = s.scalars(select(Patient).where(Patient.key == key)).first() if key else None
            if patient is None:
                raise UsageError("no patient with that MRN in the index")
            studies = q.studies_of_patient(s, patient.id)
            return [self._study_hit(s, st, None) for st in studies]

    def patient_timeline(self, uid_or_accession: str) -> list[StudyHit]:
        """The same patient's studies (including this one), oldest first, with mean labels."""
        study = self.find_study(uid_or_accession)
        with self.db.session() as s:
            if study.patient_id is None:
                return [self._study_hit(s, s.get(Study, study.id), None)]
            return [self._study_hit(s, st, None) for st in q.studies_of_patient(s, study.patient_id)]

    def study_videos(self, uid_or_accession: str) -> list[VideoHit]:
        """The indexed clips of a study."""
        study = self.find_study(uid_or_accession)
        with self.db.session() as s:
            ids = [v.id for v in q.videos_of_study(s, study.id)]
        return self._video_hits([(i, None) for i in ids])

    def video(self, video_id: int) -> VideoHit:
        hits = self._video_hits([(int(video_id), None)])
        if not hits:
            raise UsageError(f"no video {video_id}")
        return hits[0]

    def clip_labels(self, target: Any) -> dict[str, Any]:
        """Zero-shot labels of a clip: stored ones for an indexed clip, computed for a new file."""
        video_id = _as_video_id(target)
        if video_id is None:
            from echosearch.video import read_clip

            clip = read_clip(Path(target))
            with self.db.session() as s:
                known = s.scalars(
                    select(Video.id).where(Video.sha256 == clip.meta.sha256, Video.status == STATUS_INDEXED)
                ).first()
            if known is None:
                return self._compute_labels(clip)
            video_id = known
        return self.video(video_id).labels

    def _compute_labels(self, clip: Any) -> dict[str, Any]:
        from echosearch.labels.encoding import as_values, result_rows
        from echosearch.labels.scoring import score_tasks
        from echosearch.video import preprocess_frames

        encoder = self.encoder
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
        for probe in list_probes(self.space):  # the space's probes, as stored clips got them
            labels.update(as_values(row[1:] for row in probe.label_rows([0], vector)))
        return labels

    def label_values(self, task: str) -> np.ndarray:
        """Every indexed clip's value of one numeric label (for distribution plots)."""
        from echosearch.store.schema import Label

        with self.db.session() as s:
            stmt = select(Label.value).join(Video, Video.id == Label.video_id)
            stmt = stmt.where(Label.task == task, Video.status == STATUS_INDEXED, Label.value.is_not(None))
            if self.space_id is not None:
                stmt = stmt.where(Label.space_id == self.space_id)
            return np.asarray(s.scalars(stmt).all(), dtype=np.float32)

    def label_categories(self, task: str) -> dict[str, int]:
        """Indexed clips per class of a categorical label, in class order (empty for a numeric label)."""
        from echosearch.store.schema import Label

        with self.db.session() as s:
            stmt = select(Label.category, func.min(Label.value), func.count()).join(
                Video, Video.id == Label.video_id
            )
            stmt = stmt.where(Label.task == task, Video.status == STATUS_INDEXED, Label.category.is_not(None))
            if self.space_id is not None:
                stmt = stmt.where(Label.space_id == self.space_id)
            rows = s.execute(stmt.group_by(Label.category)).all()
        return {name: int(n) for name, _index, n in sorted(rows, key=lambda r: (r[1] is None, r[1]))}

    def positive_share(self, task: str) -> tuple[int, int] | None:
        """(positive clips, clips with a decision) of a binary label; None when it has no threshold."""
        decisions = self.label_values(positive_key(task))
        return (int((decisions >= 0.5).sum()), len(decisions)) if len(decisions) else None

    def label_tasks(self) -> list[str]:
        from echosearch.store.schema import Label

        with self.db.session() as s:
            stmt = select(Label.task).distinct()
            if self.space_id is not None:
                stmt = stmt.where(Label.space_id == self.space_id)
            return sorted(s.scalars(stmt).all())

    def filter_options(self) -> dict[str, Any]:
        """What a filter form can offer: the archive's views, manufacturers, study-date range and
        label tasks, plus the binary tasks usable as yes/no flags (see :meth:`flag_condition`)."""
        with self.db.session() as s:
            indexed = Video.status == STATUS_INDEXED
            views = sorted(v for v in s.scalars(select(Video.view).where(indexed).distinct()) if v)
            makers = sorted(m for m in s.scalars(select(Video.manufacturer).where(indexed).distinct()) if m)
            lo, hi = s.execute(select(func.min(Study.study_date), func.max(Study.study_date))).one()
        tasks = self.label_tasks()
        return {
            "views": views,
            "manufacturers": makers,
            "date_min": lo,
            "date_max": hi,
            "tasks": tasks,
            "flags": [t for t in self._binary_tasks() if t in tasks],
        }

    def zero_shot_tasks(self) -> tuple[list, dict[str, float]]:
        """The tasks and thresholds the indexer labelled this space with (the model's own for a space
        indexed before spaces recorded them), so labels computed for a new clip match stored ones."""
        recorded = self.space.recorded_tasks()
        if recorded is not None:
            return recorded
        from echosearch.labels.calibration import resolve_tasks

        return resolve_tasks(self.encoder.bundle)

    def label_catalog(self) -> tuple[list, set[str], dict[str, Any]]:
        """What label filters and cards need: the space's tasks (zero-shot and probes), the label
        names it stores, and its thresholds. Without a model and a record of the tasks, each stored
        label stands for itself (a task of unknown kind is taken as a number)."""
        from echosearch.labels.tasks import Task
        from echosearch.probes import probe_tasks

        stored = set(self.label_tasks())
        try:
            tasks, thresholds = self.zero_shot_tasks()
            tasks = list(tasks)
        except Exception:  # no model and no recorded tasks: the stored names are all we know
            tasks, thresholds = [], {}
        tasks += probe_tasks(self.space)
        known = {t.name for t in tasks}
        derived = {n.rsplit(".", 1)[0] for n in stored if "." in n}
        for name in sorted(({n for n in stored if "." not in n} | derived) - known):
            tasks.append(Task(name, "binary" if name in derived else "regression"))
        return tasks, stored, dict(thresholds)

    def readable_labels(self, labels: dict[str, Any]) -> list[str]:
        """A clip's labels as phrases ("Pacemaker: yes, 0.97", "EF ≈ 48% (model estimate, ±7)"),
        for cards and the CLI (:func:`echosearch.labels.readable`)."""
        from echosearch.labels.naming import errors_of, readable
        from echosearch.probes import list_probes

        now = time.monotonic()
        if self._readable is None or now - self._readable[0] > 30:  # probes may be trained meanwhile
            tasks, _stored, thresholds = self.label_catalog()
            probes = list_probes(self.space)
            self._readable = (now, tasks, errors_of(tasks, thresholds, probes), {p.name for p in probes})
        _, tasks, errors, estimates = self._readable
        return readable(labels, tasks, errors, estimates)

    def _binary_tasks(self) -> list[str]:
        try:
            return [t.name for t in self.zero_shot_tasks()[0] if t.kind == "binary"]
        except Exception:  # no model on this machine: no flags to offer, the rest still works
            return []

    def flag_condition(self, task: str) -> q.LabelCondition:
        """The label condition for "has <task>": the stored yes/no decision when the index has one,
        else the score at the model's calibrated threshold (0.5 when it has none)."""
        if positive_key(task) in self.label_tasks():
            return q.LabelCondition(positive_key(task), ">=", 0.5)
        if probability_key(task) in self.label_tasks():
            return q.LabelCondition(probability_key(task), ">=", 0.5)
        try:
            threshold = binary_threshold(self.zero_shot_tasks()[1].get(task))
        except Exception:
            threshold = None
        return q.LabelCondition(task, ">=", 0.5 if threshold is None else threshold)

    def stats(self) -> dict[str, Any]:
        """Counts per table, spaces with their index type and size on disk."""
        from echosearch.store.schema import Failure, IndexRun

        with self.db.session() as s:
            counts = q.table_counts(s)
            failures = dict(s.execute(select(Failure.kind, func.count()).group_by(Failure.kind)).all())
            runs = s.scalars(select(IndexRun).order_by(IndexRun.id.desc()).limit(5)).all()
            last_runs = [
                {
                    "id": r.id,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "status": r.status,
                    "counts": r.counts,
                }
                for r in runs
            ]
        spaces = []
        for sp in list_spaces(self.data_dir):
            index = sp.load_index()
            spaces.append(
                {
                    "name": sp.name,
                    "kind": sp.info.kind,
                    "model": sp.info.model_name,
                    "model_version": sp.info.model_version,
                    "dim": sp.info.dim,
                    "index": index.describe(),
                    "disk_bytes": sp.disk_bytes(),
                }
            )
        db_path = self.data_dir / "echosearch.db"
        return {
            "data_dir": str(self.data_dir),
            "model": self.model_name,
            "counts": counts,
            "failures_by_kind": failures,
            "spaces": spaces,
            "db_bytes": db_path.stat().st_size if db_path.is_file() else None,
            "last_runs": last_runs,
        }

    # -------------------------------------------------------------- internals

    def _load_video_index(self) -> VectorIndex:
        """The space's FAISS index; a missing file while the database has indexed clips is an error
        (searches would otherwise answer "no results" as if the archive were empty)."""
        if not self.space.index_path.is_file():
            with self.db.session() as s:
                indexed = q.indexed_video_ids(s).size
            if indexed:
                raise IndexError_(
                    f"{self.space.index_path} is missing but {indexed} clips are indexed: run "
                    "`echosearch verify --repair` (it rebuilds the index from the frame store)"
                )
        return self.space.load_index()

    def _keyed(self, value: str) -> str | None:
        from echosearch.privacy import keyed_hash, site_key_for

        if self._site_key is None:  # a missing or swapped key is an error, never a silent "no match"
            self._site_key = site_key_for(self.data_dir, self.db, create=False)
            if self._site_key is None:
                return None
        return keyed_hash(value, self._site_key)

    def _search_videos(self, vec: np.ndarray, k: int, filters: q.VideoFilter | None) -> list[VideoHit]:
        if k < 1:
            raise UsageError("k must be at least 1")
        if filters is not None and self.space_id is not None and filters.label_space_id is None:
            filters.label_space_id = self.space_id
        with self.db.session() as s:
            allowed = q.filter_video_ids(s, filters)
        if allowed is not None and allowed.size == 0:
            return []
        hits = self.index.search(vec[None, :].astype(np.float32), k, ids=allowed)[0]
        return self._video_hits(hits.pairs())

    def _video_hits(self, pairs: list[tuple[int, float | None]]) -> list[VideoHit]:
        if not pairs:
            return []
        ids = [i for i, _ in pairs]
        with self.db.session() as s:
            videos = q.videos_by_ids(s, ids)
            labels = q.labels_for(s, ids, self.space_id)
            excerpts = self._report_excerpts(s, {v.study_id for v in videos.values() if v.study_id})
            hits = []
            for vid, score in pairs:
                v = videos.get(vid)
                if v is None:
                    continue
                study = v.study
                hits.append(
                    VideoHit(
                        video_id=vid,
                        score=None if score is None else float(score),
                        path=v.path,
                        study_uid=study.study_uid if study else None,
                        study_date=study.study_date.isoformat() if study and study.study_date else None,
                        view=v.view,
                        manufacturer=v.manufacturer,
                        frames=v.frames,
                        fps=v.fps,
                        labels=labels.get(vid, {}),
                        thumbnail=self._abs(v.thumbnail_path),
                        preview=self._abs(v.preview_path),
                        report_excerpt=excerpts.get(v.study_id),
                    )
                )
        return hits

    def _abs(self, rel: str | None) -> str | None:
        return str(self.data_dir / rel) if rel else None

    @staticmethod
    def _report_excerpts(s, study_ids: set[int]) -> dict[int, str]:
        if not study_ids:
            return {}
        rows = s.scalars(select(Report).where(Report.study_id.in_(sorted(study_ids)))).all()
        return {r.study_id: _excerpt(r.text) for r in rows}

    def _study_matrix(self) -> tuple[list[str], np.ndarray]:
        """Every study's vector: normalised mean of its indexed clips' vectors (cached)."""
        if self._studies is None:
            with self.db.session() as s:
                rows = s.execute(
                    select(Video.id, Study.study_uid)
                    .join(Study, Video.study_id == Study.id)
                    .where(Video.status == STATUS_INDEXED)
                    .order_by(Study.study_uid, Video.id)
                ).all()
            rows = [(vid, uid) for vid, uid in rows if vid in self.index]
            if not rows:
                self._studies = ([], np.zeros((0, self.space.info.dim), np.float32))
                return self._studies
            vectors = self.index.reconstruct([vid for vid, _ in rows])
            uids = sorted({uid for _, uid in rows})
            pos = {uid: i for i, uid in enumerate(uids)}
            group = np.array([pos[uid] for _, uid in rows])
            sums = np.zeros((len(uids), vectors.shape[1]), np.float32)
            np.add.at(sums, group, vectors)
            sums /= np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)
            self._studies = (uids, sums)
        return self._studies

    def _nearest_studies(
        self, vec: np.ndarray, k: int, exclude: set[str], reference: Study | None
    ) -> list[StudyHit]:
        uids, matrix = self._study_matrix()
        if not uids:
            return []
        scores = matrix @ vec.astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        picked = [i for i in order if uids[i] not in exclude][:k]
        with self.db.session() as s:
            studies = {
                st.study_uid: st
                for st in s.scalars(select(Study).where(Study.study_uid.in_([uids[i] for i in picked])))
            }
            return [self._study_hit(s, studies[uids[i]], float(scores[i]), reference) for i in picked]

    def _study_hit(self, s, study: Study, score: float | None, reference: Study | None = None) -> StudyHit:
        videos = q.videos_of_study(s, study.id)
        labels = q.labels_for(s, [v.id for v in videos], self.space_id)
        same = None
        if reference is not None and reference.patient_id is not None and study.patient_id is not None:
            same = reference.patient_id == study.patient_id
        return StudyHit(
            study_uid=study.study_uid,
            score=score,
            study_date=study.study_date.isoformat() if study.study_date else None,
            n_videos=len(videos),
            same_patient_on_record=same,
            labels=_mean_labels(labels.values()),
            report_excerpt=self._report_excerpts(s, {study.id}).get(study.id),
        )

    def _audit(self, action: str, query: dict[str, Any]) -> None:
        """Append to the audit log: query text bounded, identifiers replaced by keyed hashes
        (:func:`echosearch.privacy.redact_query`)."""
        from echosearch.privacy import redact_query, site_key_for

        try:
            if self._site_key is None:
                self._site_key = site_key_for(self.data_dir, self.db, create=False)
            key = self._site_key
        except EchosearchError:  # a missing key must not break a search; identifiers still go
            key = None
        query = redact_query(query, key)
        try:
            with self.db.session() as s:
                q.audit(s, action=action, query=query, who=self.who)
        except Exception as exc:  # auditing must never break a search, but it must be visible
            log.warning("could not write the audit log: %s", exc)


# ---------------------------------------------------------------- helpers


class NoTemplateMatch(UsageError):
    """A free-text query of which the template tokenizer understood nothing."""

    def __init__(self, text: str, suggestions: list[str]):
        self.suggestions = suggestions
        self.notes: list[str] = []
        hint = f" Try: {suggestions[0]!r}" if suggestions else ""
        super().__init__(f"the query {text!r} matches no phrase of the model's reporting template.{hint}")


_NOT_RE = re.compile(r"\b(?:not|no|without)\s+", re.IGNORECASE)
_ABBREVIATIONS = {
    "lv": "left ventricle ventricular",
    "rv": "right ventricle ventricular",
    "la": "left atrium atrial",
    "ra": "right atrium atrial",
    "ef": "ejection fraction",
    "a4c": "apical four chamber",
    "plax": "parasternal long axis",
    "tavr": "transcatheter aortic valve",
    "pacer": "pacer pacemaker lead",
}


def suggest_phrases(query: str, phrases: Sequence[str], n: int = 5) -> list[str]:
    """Rank template phrases for a free-text query: shared words first (after expanding common
    abbreviations such as LV, EF, A4C), then character similarity."""
    words = _words(_expand_abbreviations(query))
    if not words or not phrases:
        return []
    text = " ".join(sorted(words))

    def rank(phrase: str) -> tuple[float, float]:
        pwords = _words(phrase)
        overlap = len(words & pwords) / len(words)
        return overlap, difflib.SequenceMatcher(None, text, " ".join(sorted(pwords))).ratio()

    unique = list(dict.fromkeys(p.strip() for p in phrases))
    scored = sorted(((rank(p), p) for p in unique), key=lambda item: item[0], reverse=True)
    return [p for (overlap, ratio), p in scored[:n] if overlap > 0 or ratio > 0.3]


def _example(phrase: str) -> str:
    """A vocabulary phrase with its slots filled by a typical value, so a suggestion can be searched
    as it is: a number before % or a unit, a severity word elsewhere."""
    out = phrase.strip()
    while SLOT in out:
        after = out.split(SLOT, 1)[1][:4]
        value = "35" if after[:1] in ("%", "M", "C") or after.startswith(" BPM") else "MODERATE"
        out = out.replace(SLOT, value, 1)
    return out


def _empty_reason(plan, filters: q.VideoFilter | None) -> str:
    """Why a query found nothing: the words, or the filters."""
    if not plan.understood:
        return "nothing in the query was understood" + (
            f" ({', '.join(plan.unmatched)})" if plan.unmatched else ""
        )
    if filters is not None and not filters.is_empty():
        return "no clip passes the filters; loosen them"
    return "no clip matches"


def _split_negatives(
    texts: Sequence[tuple[str, float]], negatives: Sequence[str]
) -> tuple[list[tuple[str, float]], list[str]]:
    """Split "A4C, not pacer" into a positive text and a negative one."""
    out_texts: list[tuple[str, float]] = []
    out_neg = list(negatives)
    for text, weight in texts:
        parts = [p.strip() for p in re.split(r"[,;]", text) if p.strip()]
        positives = []
        for part in parts:
            m = _NOT_RE.match(part)
            if m:
                out_neg.append(part[m.end() :])
            else:
                positives.append(part)
        if positives and len(positives) < len(parts):
            out_texts.append((", ".join(positives), weight))
        elif positives:
            out_texts.append((text, weight))
    return out_texts, out_neg


def _with_excluded_videos(filters: q.VideoFilter | None, ids: Sequence[int]) -> q.VideoFilter:
    from dataclasses import replace

    base = replace(filters) if filters is not None else q.VideoFilter()
    base.exclude_video_ids = [*base.exclude_video_ids, *ids]
    return base


def _as_video_id(target: Any) -> int | None:
    if isinstance(target, (int, np.integer)):
        return int(target)
    if isinstance(target, str) and target.strip().isdigit() and not Path(target).exists():
        return int(target)
    return None


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 1}


def _expand_abbreviations(text: str) -> str:
    return " ".join(_ABBREVIATIONS.get(w.lower(), w) for w in re.findall(r"[A-Za-z0-9]+", text))


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REPORT_EXCERPT_CHARS else text[: REPORT_EXCERPT_CHARS - 1] + "…"


def _mean_labels(per_video: Any) -> dict[str, Any]:
    sums: dict[str, list[float]] = {}
    for labels in per_video:
        for task, value in labels.items():
            if isinstance(value, (int, float)) and value is not None:
                sums.setdefault(task, []).append(float(value))
    return {task: float(np.mean(vals)) for task, vals in sums.items()}


_WHERE_RE = re.compile(r"^\s*([A-Za-z_][\w\-. ]*?)\s*(<=|>=|!=|==|=|<|>|~)\s*(.+?)\s*$")


def parse_where(conditions: Sequence[str], engine: Engine | None = None) -> q.VideoFilter:
    """Build a filter from ``--where`` conditions, e.g. ``"ef < 40"``, ``"pacemaker = yes"``,
    ``"pacemaker > 0.9"`` (a probability where the index has one), ``"lv_size >= moderate"``,
    ``"view = A4C"``, ``"date >= 2021-01-01"``, ``"manufacturer = GE"``, ``"study = UID"``,
    ``"mrn = 12345"`` (hashed with the site key). Anything else is a label, named by its task name or
    an alias (:mod:`echosearch.labels`). With an ``engine`` an unknown label is a :class:`UsageError`
    listing the index's labels; without one, a label condition is taken as written (``task op number``).
    """
    import datetime as dt

    f = q.VideoFilter()
    labels: list[q.LabelCondition] = []
    catalog = engine.label_catalog() if engine is not None else None
    for text in conditions:
        m = _WHERE_RE.match(text)
        if not m:
            raise UsageError(f"cannot read condition {text!r} (expected e.g. 'ef < 40' or 'view = A4C')")
        key, op, value = m.group(1).strip().lower(), m.group(2), m.group(3).strip().strip("'\"")
        if key in ("date", "study_date"):
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                raise UsageError(f"bad date {value!r} (use YYYY-MM-DD)") from None
            if op in (">", ">="):
                f.date_from = day
            elif op in ("<", "<="):
                f.date_to = day
            else:
                f.date_from = f.date_to = day
        elif key == "view":
            f.views = [*f.views, *[v.strip() for v in value.split("|")]]
        elif key == "manufacturer":
            f.manufacturers = [*f.manufacturers, value]
        elif key in ("study", "study_uid"):
            f.study_uids = [*f.study_uids, value]
        elif key in ("mrn", "patient"):
            key_hash = engine._keyed(value) if engine is not None else None
            f.patient_key = key_hash or "no-such-patient"
        elif catalog is not None:
            from echosearch.labels.naming import conditions_for

            tasks, stored, thresholds = catalog
            labels.extend(conditions_for(m.group(1).strip(), op, value, tasks, stored, thresholds))
        else:
            labels.append(q.LabelCondition.parse(f"{m.group(1).strip()} {op} {value}"))
    f.labels = labels
    return f
