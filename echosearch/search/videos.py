"""Searches whose answers are clips: text (interpreted), combined text + clips, clip -> clips, and a
new prompt scored over the frame store. An interpretation's label preferences re-rank a candidate
pool by similarity plus label signals (:mod:`echosearch.query.rank`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from echosearch.errors import UsageError
from echosearch.labels.calibration import binary_threshold
from echosearch.labels.encoding import VIEW_TASK, grade_key, positive_key, probability_key
from echosearch.search.context import OpenSpace
from echosearch.search.hits import Hits
from echosearch.search.label_stats import LabelStats
from echosearch.search.query_vectors import NoTemplateMatch, QueryVectors, split_negatives
from echosearch.search.results import SearchResult, VideoHit
from echosearch.store import queries as q

#: Clips ranked by text similarity before label preferences re-rank them (at least 20 x k).
CANDIDATE_POOL = 200


class VideoSearch:
    """Text, clip and prompt searches over one space's clips."""

    def __init__(self, archive: OpenSpace, vectors: QueryVectors, labels: LabelStats, hits: Hits):
        self.archive = archive
        self.vectors = vectors
        self.labels = labels
        self.hits = hits
        self._plan_context: dict[str, Any] | None = None

    def forget(self) -> None:
        """Drop the plan context read once (after a reload)."""
        self._plan_context = None

    def combined(
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
        query_doc: dict[str, Any] = {
            "texts": [t for t, _ in texts] + [p.query for p, _ in plans],
            "negatives": list(negatives),
        }
        model = self.archive.model_name
        user_filters = filters  # before the query's own conditions join them: an empty result says which
        if literal:
            texts, negatives = split_negatives(texts, negatives)
        notes: list[str] = []
        total = np.zeros(self.archive.space.info.dim, dtype=np.float32)
        exclude: list[int] = []
        conditions: list[Any] = []
        preferences: list[Any] = []
        interpretations: list[Any] = []
        try:
            for text, weight in texts:
                if literal:
                    vec, text_notes = self.vectors.text_vector(text)
                    total += weight * vec
                    notes += text_notes
                else:
                    plans = [*plans, (self.interpret(text), weight)]
            for plan, weight in plans:
                interpretations.append(plan)
                vec, text_notes = self.vectors.plan_vector(plan)
                conditions += plan.filters
                preferences += plan.preferences
                total += weight * vec
                notes += text_notes
            for target, weight in clips:
                vec, vid, _ = self.vectors.clip_vector(target)
                total += weight * vec
                if vid is not None:
                    exclude.append(vid)
            for text in negatives:
                vec, text_notes = self.vectors.text_vector(text)
                total -= negative_weight * vec
                notes += text_notes
        except NoTemplateMatch as miss:
            notes = [*notes, *miss.notes]
            if interpretations:  # one reason, and the suggestions apart (not repeated in the reason)
                notes = [n for n in notes if not n.startswith("not understood: ")]
                notes.append(empty_reason(interpretations[0], user_filters))
            else:
                notes.append(str(miss))
            result = SearchResult(query_doc, [], notes, miss.suggestions, model=model)
            if interpretations:
                result.interpretation = interpretations[0].to_dict()
            return result
        if not np.any(total) and not conditions and not preferences:
            raise UsageError("give at least one text or clip to search for")
        if clips and len(exclude):
            filters = with_excluded_videos(filters, exclude)
        filters = self._with_conditions(filters, conditions, notes)
        prefs = self._resolve_preferences(preferences)
        hits = self._ranked(total, k, filters, prefs, by_study=bool(interpretations) and not clips)
        result = SearchResult(query_doc, hits, notes, model=model)
        if interpretations:
            result.interpretation = interpretations[0].to_dict()
            if not hits:
                result.notes.append(empty_reason(interpretations[0], user_filters))
                result.suggestions = self.vectors.suggest(" ".join(t for t, _ in texts))
        return result

    def similar(
        self,
        target: Any,
        k: int = 10,
        filters: q.VideoFilter | None = None,
        exclude_same_study: bool = True,
        exclude_self: bool = True,
    ) -> SearchResult:
        """Video -> video: the clips most like a given one (a video id, a file, or an EchoClip)."""
        vec, video_id, study_uid = self.vectors.clip_vector(target)
        excluded = [video_id] if video_id is not None and exclude_self else []
        filters = with_excluded_videos(filters, excluded)
        if exclude_same_study and study_uid:
            filters.exclude_study_uids = [*filters.exclude_study_uids, study_uid]
        hits = self.nearest(vec, k, filters)
        query_doc = {"clip": str(target) if video_id is None else video_id, "study_uid": study_uid}
        result = SearchResult(query_doc, hits, model=self.archive.model_name)
        if exclude_same_study and study_uid:
            result.notes.append("clips of the query's own study are left out")
        return result

    def score_prompt(self, prompt: str, k: int = 20, filters: q.VideoFilter | None = None) -> SearchResult:
        """Score every clip of the archive for a new finding: the mean over each clip's frames of
        the cosine to the prompt (the binary zero-shot score), from the per-frame store."""
        from echosearch.labels.scoring import binary_scores

        archive = self.archive
        vec, notes = self.vectors.text_vector(prompt)
        with archive.db.session() as s:
            allowed = q.filter_video_ids(s, filters)
        best_ids: list[np.ndarray] = []
        best_scores: list[np.ndarray] = []
        for batch in archive.space.frames().iter_all():
            video_means = batch.per_video(batch.frames.astype(np.float32))
            scores = binary_scores(video_means[:, None, :], vec[None, :])
            ids_b = batch.ids
            if allowed is not None:
                keep = np.isin(ids_b, allowed)
                ids_b, scores = ids_b[keep], scores[keep]
            best_ids.append(ids_b)
            best_scores.append(scores)
        pairs: list[tuple[int, float | None]] = []
        if best_ids:
            all_ids, all_scores = np.concatenate(best_ids), np.concatenate(best_scores)
            live = archive.index.live(all_ids)
            all_ids, all_scores = all_ids[live], all_scores[live]
            order = np.argsort(-all_scores, kind="stable")[:k]
            pairs = [(int(all_ids[i]), float(all_scores[i])) for i in order]
        return SearchResult({"prompt": prompt}, self.hits.videos(pairs), notes, model=archive.model_name)

    def nearest(self, vec: np.ndarray, k: int, filters: q.VideoFilter | None) -> list[VideoHit]:
        """The k clips nearest a vector among those the filters allow."""
        if k < 1:
            raise UsageError("k must be at least 1")
        archive = self.archive
        if filters is not None and archive.space_id is not None and filters.label_space_id is None:
            filters.label_space_id = archive.space_id
        with archive.db.session() as s:
            allowed, excluded = _allowed_and_excluded(s, filters)
        if allowed is not None and allowed.size == 0:
            return []
        hits = archive.index.search(vec[None, :].astype(np.float32), k, ids=allowed, exclude=excluded)[0]
        return self.hits.videos(hits.pairs())

    # -------------------------------------------------------------- running a plan

    def _context(self) -> dict[str, Any]:
        """What running a plan needs to know of the space, read once (the task file, the stored
        label names and views are scans a query must not repeat); a reload reads it again.
        ``sources``: {task: (LabelSource, class names)}; ``views``: the stored views."""
        if self._plan_context is None:
            try:
                tasks, thresholds = self.labels.zero_shot_tasks()
            except Exception:  # no model and no recorded tasks: no label can be used
                tasks, thresholds = [], {}
            self._plan_context = {"sources": self._label_sources(tasks, thresholds), "views": None}
        return self._plan_context

    def _label_sources(self, tasks: list, thresholds: dict) -> dict[str, Any]:
        """{task: (LabelSource, class names)} for the tasks this space stores labels of."""
        from echosearch.query.rank import LabelSource, class_grades

        stored = set(self.labels.names()) if tasks else set()
        out = {}
        for task in tasks:
            if task.name not in stored:
                continue
            classes = list(task.classes) if task.kind == "categorical" else []
            decision = positive_key(task.name) if positive_key(task.name) in stored else None
            probability = probability_key(task.name) if probability_key(task.name) in stored else None
            threshold = binary_threshold(thresholds.get(task.name)) if task.kind == "binary" else None
            source = LabelSource(
                task.kind,
                decision,
                probability,
                threshold if threshold is not None else 0.0,
                class_grades(classes, self.vectors.lexicon),
                grade=grade_key(task.name) if grade_key(task.name) in stored else None,
                classes=classes,
            )
            if task.kind == "binary":
                with self.archive.db.session() as s:
                    by_view = q.label_values_by_view(s, task.name, self.archive.space_id)
                if by_view:
                    by_view["*"] = np.sort(np.concatenate(list(by_view.values())))
                    source.by_view = by_view
            out[task.name] = (source, classes)
        return out

    def _with_conditions(self, filters: q.VideoFilter | None, conditions: list, notes: list[str]):
        """The user's filters plus the interpretation's hard conditions the space can answer."""
        from echosearch.query.rank import sql_condition

        if not conditions:
            return filters
        f = replace(filters) if filters is not None else q.VideoFilter()
        context = self._context()
        for cond in conditions:
            if cond.kind == "view":
                if context["views"] is None:
                    context["views"] = set(self.labels.filter_options()["views"])
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

    def interpret(self, text: str):
        """How a free-text query is read for this space: the model's interpretation, less a grade
        read off the phrases where the space stores the finding's grade (that one is used instead,
        so the reading shown and edited is the one that ranks)."""
        plan = self.vectors.interpret(text)
        sources = self._context()["sources"]
        plan.preferences = [
            c
            for c in plan.preferences
            if c.kind != "text_grade" or not self._stores_grade_of(c.finding, sources)
        ]
        return plan

    def _resolve_preferences(self, preferences: list) -> list[tuple[Any, Any, list[str]]]:
        """(condition, its label source, class names) for each preference the space can answer. A
        grade read by the text tower stands in only where the space stores no grade of the finding
        (a stored grade is calibrated; measured better where both exist)."""
        from echosearch.query.rank import text_grade_source

        sources = self._context()["sources"]
        out = []
        for cond in preferences:
            if cond.weight <= 0:
                continue
            if cond.kind == "text_grade":
                if not self._stores_grade_of(cond.finding, sources):
                    vectors = [self.vectors.encode_texts(p) for p in cond.grade_phrases.values()]
                    source = text_grade_source(cond, vectors)
                    out.append((cond, source, source.classes))
            elif cond.task in sources:
                source, classes = sources[cond.task]
                out.append((cond, source, classes))
        return out

    def _stores_grade_of(self, finding: str, sources: dict[str, Any]) -> bool:
        real = self.vectors.lexicon.findings.get(finding)
        task = real.task if real is not None else None
        return task in sources and sources[task][0].grade is not None

    def _seen(self, prefs: list, views: list[str | None]) -> np.ndarray:
        """[clips, preferences]: whether each clip's view shows each preference's finding (the
        finding's ``seen_in`` views in clinical.yaml; a clip of no stored view, or a finding without
        that list, always counts)."""
        rules = self.vectors.lexicon.rules
        seen = np.ones((len(views), len(prefs)), dtype=bool)
        for j, (cond, _, _) in enumerate(prefs):
            rule = rules.get(cond.finding)
            if rule is not None and rule.seen_in:
                seen[:, j] = [view is None or view in rule.seen_in for view in views]
        return seen

    def _ranked(
        self, vec: np.ndarray, k: int, filters: q.VideoFilter | None, prefs: list, by_study: bool = False
    ) -> list[VideoHit]:
        """Search by the vector alone, or rank a candidate pool (the nearest clips by text plus the
        clips each preferred label picks) by similarity + preferences. The label evidence is mixed
        with its study's mean, and so is the similarity of an interpreted query (``by_study``: its
        findings belong to the study; a clip given as the query asks for clips like that clip)."""
        from echosearch.query.rank import combined_scores, signal, sql_condition, study_pooled, text_grades

        share = self.vectors.lexicon.study_share if by_study else 0.0
        if not prefs and share <= 0:
            return self.nearest(vec, k, filters)
        if k < 1:
            raise UsageError("k must be at least 1")
        archive = self.archive
        pool = max(CANDIDATE_POOL, 20 * k)
        base = replace(filters) if filters is not None else q.VideoFilter()
        if archive.space_id is not None and base.label_space_id is None:
            base.label_space_id = archive.space_id
        with archive.db.session() as s:
            allowed = q.filter_video_ids(s, base)
            if allowed is not None and allowed.size == 0:
                return []
            candidates = [archive.index.search(vec[None, :].astype(np.float32), pool, ids=allowed)[0].ids]
            for cond, source, classes in prefs:
                parts = sql_condition(cond, source, classes)
                if parts:
                    picked = q.filter_video_ids(s, replace(base, labels=[*base.labels, *parts]))
                    candidates.append(picked[: 5 * pool])
            ids = np.unique(np.concatenate(candidates).astype(np.int64))
            ids = ids[archive.index.live(ids)]
            if ids.size == 0:
                return []
            mates = q.study_clips(s, ids.tolist())
            everyone = sorted({m for i in ids for m in mates.get(int(i), [int(i)])})
            needed = {
                key
                for c, src, _ in prefs
                for key in (
                    c.task,
                    src.decision,
                    src.probability,
                    src.grade if src.class_vectors is None else None,
                )
                if key
            }
            labels = q.labels_for(s, everyone, archive.space_id, tasks=needed)
            for vid, view in q.views_of(s, everyone).items():  # as label_values_by_view groups them
                labels[vid][VIEW_TASK] = view
        vectors = archive.index.reconstruct(np.asarray(everyone, dtype=np.int64))
        for _, src, _ in prefs:
            if src.class_vectors is not None:  # a grade read now: put where a stored one would be
                for v, grade in zip(everyone, text_grades(vectors, src), strict=True):
                    labels[v][src.grade] = float(grade)
        row = {v: n for n, v in enumerate(everyone)}
        own = [row[int(i)] for i in ids]
        members = [[row[m] for m in mates.get(int(i), [int(i)])] for i in ids]
        similarity = study_pooled((vectors @ vec.astype(np.float32))[:, None], own, members, share)[:, 0]
        signals = np.array([[signal(c, src, labels[v]) for c, src, _ in prefs] for v in everyone], np.float32)
        seen = self._seen(prefs, [labels[v].get(VIEW_TASK) for v in everyone])
        label_share = self.vectors.lexicon.study_share
        signals = study_pooled(signals.reshape(len(everyone), len(prefs)), own, members, label_share, seen)
        weights = np.array([c.weight for c, _, _ in prefs], np.float32)
        scores = combined_scores(similarity, signals, weights)
        order = np.argsort(-scores, kind="stable")[:k]
        return self.hits.videos([(int(ids[i]), float(scores[i])) for i in order])


def _allowed_and_excluded(s, filters: q.VideoFilter | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The ids a search may return (None: all) and the ids it must not. A filter that only excludes
    (video -> video leaves out the query's own study) becomes a short exclusion list, not an id list
    of the rest of the archive (at a million clips, that list would cost more than the search)."""
    if filters is None:
        return None, None
    if filters.without_exclusions().is_empty():
        excluded = q.excluded_video_ids(s, filters)
        return None, excluded if excluded.size else None
    return q.filter_video_ids(s, filters), None


def with_excluded_videos(filters: q.VideoFilter | None, ids: Sequence[int]) -> q.VideoFilter:
    """A copy of the filters that also leaves out these video ids."""
    base = replace(filters) if filters is not None else q.VideoFilter()
    base.exclude_video_ids = [*base.exclude_video_ids, *ids]
    return base


def empty_reason(plan, filters: q.VideoFilter | None) -> str:
    """Why a query found nothing: its words (none understood), the conditions it states ("EF < 5"),
    or the user's filters (``filters``: the caller's, before the query's conditions joined them)."""
    if not plan.understood:
        return "nothing in the query was understood" + (
            f" ({', '.join(plan.unmatched)})" if plan.unmatched else ""
        )
    asked = " and ".join(c.describe() for c in plan.filters)
    filtered = filters is not None and not filters.is_empty()
    if asked and filtered:
        return f"no clip has {asked} (from the query) and passes the filters; loosen either"
    if asked:
        return f"no clip has {asked} (from the query); widen the range or drop it"
    if filtered:
        return "no clip passes the filters; loosen them"
    return "no clip matches"
