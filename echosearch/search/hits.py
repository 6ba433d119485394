"""Result rows from stored rows: a clip's card data, a study's summary, report excerpts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from echosearch.search.context import OpenSpace
from echosearch.search.results import StudyHit, VideoHit
from echosearch.store import queries as q
from echosearch.store.schema import Study
from echosearch.viewer import viewer_template, viewer_url

REPORT_EXCERPT_CHARS = 240


class Hits:
    """Builds :class:`VideoHit` and :class:`StudyHit` rows (labels of this space, report excerpts)."""

    def __init__(self, archive: OpenSpace):
        self.archive = archive

    def videos(self, pairs: list[tuple[int, float | None]]) -> list[VideoHit]:
        """(video id, score or None) pairs as hits, in the given order; unknown ids are left out."""
        if not pairs:
            return []
        archive = self.archive
        ids = [i for i, _ in pairs]
        template = viewer_template(archive.data_dir)
        with archive.db.session() as s:
            cards = q.video_cards(s, ids)
            labels = q.labels_for(s, ids, archive.space_id)
        return [
            self._hit(cards[vid], score, labels.get(vid, {}), template)
            for vid, score in pairs
            if vid in cards
        ]

    def _hit(self, card, score: float | None, labels: dict[str, Any], template: str | None) -> VideoHit:
        """One clip's hit from its card row (:func:`store.queries.video_cards`); ``template``: the
        site's viewer URL template (:mod:`echosearch.viewer`), or None."""
        return VideoHit(
            video_id=card.id,
            score=None if score is None else float(score),
            path=self.archive.location(card.path),
            study_uid=card.study_uid,
            study_date=card.study_date.isoformat() if card.study_date else None,
            view=card.view,
            manufacturer=card.manufacturer,
            frames=card.frames,
            fps=card.fps,
            labels=labels,
            thumbnail=self.archive.absolute(card.thumbnail_path),
            preview=self.archive.absolute(card.preview_path),
            report_excerpt=excerpt(card.report) if card.report is not None else None,
            series_uid=card.series_uid,
            sop_uid=card.sop_uid,
            viewer_url=viewer_url(
                template, study_uid=card.study_uid, series_uid=card.series_uid, sop_uid=card.sop_uid
            ),
        )

    def study(self, s, study: Study, score: float | None, reference: Study | None = None) -> StudyHit:
        """A study as a hit (in session ``s``): its clip count, mean labels, and whether the records
        say it is the ``reference`` study's patient."""
        videos = q.videos_of_study(s, study.id)
        labels = q.labels_for(s, [v.id for v in videos], self.archive.space_id)
        same = None
        if reference is not None and reference.patient_id is not None and study.patient_id is not None:
            same = reference.patient_id == study.patient_id
        return StudyHit(
            study_uid=study.study_uid,
            score=score,
            study_date=study.study_date.isoformat() if study.study_date else None,
            n_videos=len(videos),
            same_patient_on_record=same,
            labels=mean_labels(labels.values()),
            report_excerpt=report_excerpts(s, {study.id}).get(study.id),
            viewer_url=viewer_url(viewer_template(self.archive.data_dir), study_uid=study.study_uid),
        )


def report_excerpts(s, study_ids: set[int]) -> dict[int, str]:
    return {sid: excerpt(r.text) for sid, r in q.reports_of_studies(s, study_ids).items()}


def excerpt(text: str) -> str:
    """The report's start, cut at a word boundary (never mid-word) with an ellipsis when longer."""
    text = " ".join(text.split())
    if len(text) <= REPORT_EXCERPT_CHARS:
        return text
    cut = text[: REPORT_EXCERPT_CHARS - 1]
    if text[REPORT_EXCERPT_CHARS - 1] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def mean_labels(per_video: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The mean of each numeric label over a study's clips."""
    sums: dict[str, list[float]] = {}
    for labels in per_video:
        for task, value in labels.items():
            if isinstance(value, (int, float)) and value is not None:
                sums.setdefault(task, []).append(float(value))
    return {task: float(np.mean(vals)) for task, vals in sums.items()}
