"""What every search answers: result lists of clips, studies and reports, as dataclasses with a
``to_dict()`` that is the CLI's ``--json`` and the API's JSON (one shape for every consumer)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _flat_dict(hit: Any) -> dict[str, Any]:
    """A hit's fields as a dict, its ``labels`` copied: hits hold plain values and one flat dict,
    so the deep copy of :func:`dataclasses.asdict` (a third of a similar-clips request) is not needed."""
    out = {f.name: getattr(hit, f.name) for f in fields(hit)}
    if isinstance(out.get("labels"), dict):
        out["labels"] = dict(out["labels"])
    return out


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
    series_uid: str | None = None
    sop_uid: str | None = None
    viewer_url: str | None = None  # the site's viewer on this clip (echosearch.viewer); None: no template

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self)


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
    viewer_url: str | None = None  # when the site's viewer template needs only {study_uid}

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self)


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
