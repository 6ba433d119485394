"""Questions about studies and patients: lookups by UID, accession or MRN (keyed), a patient's
timeline, study -> nearest studies, same-patient scores and candidates, and clip -> nearest reports.

Study vectors are the normalised mean of their clips' vectors, the way EchoCLIP-R compares studies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from echosearch.errors import UsageError
from echosearch.search.context import OpenSpace
from echosearch.search.hits import Hits
from echosearch.search.query_vectors import QueryVectors
from echosearch.search.results import ReportHit, SamePatientScore, SearchResult, StudyHit, VideoHit
from echosearch.store import queries as q
from echosearch.store.schema import Study


class StudySearch:
    """Study and patient lookups and searches over one space."""

    def __init__(self, archive: OpenSpace, vectors: QueryVectors, hits: Hits):
        self.archive = archive
        self.vectors = vectors
        self.hits = hits
        self._matrix: tuple[list[str], np.ndarray] | None = None

    def forget(self) -> None:
        """Drop the study vectors (after a reload: clips may have been added)."""
        self._matrix = None

    # -------------------------------------------------------------- lookups

    def find(self, uid_or_accession: str) -> Study:
        """A study by Study Instance UID, or by accession number (hashed with the site key)."""
        key = self.archive.keyed(uid_or_accession)
        with self.archive.db.session() as s:
            study = q.find_study(s, uid_or_accession) or (q.find_study(s, key) if key else None)
            if study is None:
                raise UsageError(f"no study with UID or accession {uid_or_accession!r}")
            s.expunge(study)
            return study

    def for_mrn(self, mrn: str) -> list[StudyHit]:
        """A patient's studies by MRN (hashed the same way as at indexing), oldest first."""
        key = self.archive.keyed(mrn)
        with self.archive.db.session() as s:
            patient = q.patient_by_key(s, key) if key else None
            if patient is None:
                raise UsageError("no patient with that MRN in the index")
            return [self.hits.study(s, st, None) for st in q.studies_of_patient(s, patient.id)]

    def timeline(self, uid_or_accession: str) -> list[StudyHit]:
        """The same patient's studies (including this one), oldest first, with mean labels."""
        study = self.find(uid_or_accession)
        with self.archive.db.session() as s:
            if study.patient_id is None:
                return [self.hits.study(s, s.get(Study, study.id), None)]
            return [self.hits.study(s, st, None) for st in q.studies_of_patient(s, study.patient_id)]

    def videos(self, uid_or_accession: str) -> list[VideoHit]:
        """The indexed clips of a study."""
        study = self.find(uid_or_accession)
        with self.archive.db.session() as s:
            ids = [v.id for v in q.videos_of_study(s, study.id)]
        return self.hits.videos([(i, None) for i in ids])

    def reports(self, study_uids: list[str]) -> dict[str, str]:
        """{study UID: its full report text} for the given studies that have a report."""
        with self.archive.db.session() as s:
            studies = q.studies_by_uids(s, study_uids)
            texts = q.reports_of_studies(s, {st.id for st in studies.values()})
            return {uid: texts[st.id].text for uid, st in studies.items() if st.id in texts}

    # -------------------------------------------------------------- searches

    def similar(self, uid_or_accession: str, k: int = 10) -> SearchResult:
        """Study -> studies: nearest studies by study vector, the study itself left out."""
        study = self.find(uid_or_accession)
        vec = self._vector_of(study)
        hits = self._nearest(vec, k, exclude={study.study_uid}, reference=study)
        return SearchResult({"study": study.study_uid}, hits, model=self.archive.model_name)

    def same_patient(self, study_a: str, study_b: str) -> SamePatientScore:
        """EchoCLIP-R's use: how likely two studies show one patient (cosine of study vectors)."""
        a, b = self.find(study_a), self.find(study_b)
        score = float(self._vector_of(a) @ self._vector_of(b))
        on_record = None if a.patient_id is None or b.patient_id is None else a.patient_id == b.patient_id
        return SamePatientScore(a.study_uid, b.study_uid, score, on_record)

    def patient_candidates(self, target: Any, k: int = 10) -> SearchResult:
        """The studies most likely to belong to the same patient as a study (UID/accession) or clip."""
        try:
            study = self.find(str(target))
            vec = self._vector_of(study)
        except (UsageError, ValueError):
            vec, _, uid = self.vectors.clip_vector(target)
            study = self.find(uid) if uid else None
        exclude = {study.study_uid} if study is not None else set()
        hits = self._nearest(vec, k, exclude=exclude, reference=study)
        return SearchResult({"patient_candidates": str(target)}, hits, model=self.archive.model_name)

    def nearest_reports(self, target: Any, k: int = 5) -> SearchResult:
        """Video -> report: the report texts nearest a clip (needs reports indexed with --reports)."""
        archive = self.archive
        if archive.report_index is None or archive.report_index.ntotal == 0:
            raise UsageError("no reports are indexed (index with `--reports reports.csv`)")
        vec, _, _ = self.vectors.clip_vector(target)
        hits = archive.report_index.search(vec[None, :], k)[0]
        with archive.db.session() as s:
            reports = q.reports_by_ids(s, hits.ids.tolist())
            results = [
                ReportHit(rid, score, _study_uid(reports[rid]), reports[rid].text)
                for rid, score in hits.pairs()
                if rid in reports
            ]
        return SearchResult({"clip": str(target)}, results, model=archive.model_name)

    # -------------------------------------------------------------- study vectors

    def matrix(self) -> tuple[list[str], np.ndarray]:
        """Every study's vector: normalised mean of its indexed clips' vectors (cached)."""
        if self._matrix is None:
            archive = self.archive
            with archive.db.session() as s:
                rows = q.indexed_video_study_uids(s)
            rows = [(vid, uid) for vid, uid in rows if vid in archive.index]
            if not rows:
                self._matrix = ([], np.zeros((0, archive.space.info.dim), np.float32))
                return self._matrix
            vectors = archive.index.reconstruct([vid for vid, _ in rows])
            uids = sorted({uid for _, uid in rows})
            pos = {uid: i for i, uid in enumerate(uids)}
            group = np.array([pos[uid] for _, uid in rows])
            sums = np.zeros((len(uids), vectors.shape[1]), np.float32)
            np.add.at(sums, group, vectors)
            sums /= np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)
            self._matrix = (uids, sums)
        return self._matrix

    def _vector_of(self, study: Study) -> np.ndarray:
        uids, matrix = self.matrix()
        if study.study_uid not in uids:
            raise UsageError(f"study {study.study_uid} has no indexed clips")
        return matrix[uids.index(study.study_uid)]

    def _nearest(self, vec: np.ndarray, k: int, exclude: set[str], reference: Study | None) -> list[StudyHit]:
        uids, matrix = self.matrix()
        if not uids:
            return []
        scores = matrix @ vec.astype(np.float32)
        order = np.argsort(-scores, kind="stable")
        picked = [i for i in order if uids[i] not in exclude][:k]
        with self.archive.db.session() as s:
            studies = q.studies_by_uids(s, [uids[i] for i in picked])
            return [self.hits.study(s, studies[uids[i]], float(scores[i]), reference) for i in picked]


def _study_uid(report) -> str | None:
    return report.study.study_uid if report.study is not None else None
