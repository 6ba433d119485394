"""Studies: a study and its clips, its nearest studies, the patient's timeline, same-patient."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from echosearch.api import shapes
from echosearch.api.responses import ApiJSON
from echosearch.api.routes.common import Paging, found
from echosearch.api.security import State, Viewer

router = APIRouter(prefix=shapes.PREFIX, tags=["studies"])

Uid = Annotated[
    str, Path(min_length=1, max_length=128, description="Study Instance UID or accession number.")
]
StudyRef = Annotated[str, Query(min_length=1, max_length=128, description="Study UID or accession number.")]


@router.get("/studies/{uid}", summary="A study and its clips")
def study(caller: Viewer, api: State, uid: Uid) -> ApiJSON:
    """As `echosearch study UID --json`, without the neighbours (``/similar``, ``/timeline``)."""
    engine = api.engine_for(caller)
    row = found(lambda: engine.find_study(uid))
    clips = engine.study_videos(row.study_uid)
    engine.audit.record("study", {"study": row.study_uid})
    return ApiJSON(
        {
            "study_uid": row.study_uid,
            "study_date": row.study_date.isoformat() if row.study_date else None,
            "videos": [shapes.video(c.to_dict(), caller) for c in clips],
        }
    )


@router.get("/studies/{uid}/similar", summary="The studies nearest this one")
def similar_studies(caller: Viewer, api: State, uid: Uid, page: Paging) -> ApiJSON:
    engine = api.engine_for(caller)
    result = found(lambda: engine.search_study(uid, k=page.window))
    return ApiJSON(page.of(result.to_dict()))


@router.get("/studies/{uid}/timeline", summary="The same patient's studies, by record, oldest first")
def timeline(caller: Viewer, api: State, uid: Uid) -> ApiJSON:
    engine = api.engine_for(caller)
    row = found(lambda: engine.find_study(uid))
    hits = engine.patient_timeline(row.study_uid)
    engine.audit.record("patient_timeline", {"study": row.study_uid})
    return ApiJSON({"study_uid": row.study_uid, "results": [h.to_dict() for h in hits]})


@router.get("/same-patient", summary="How alike two studies are (same-patient score)")
def same_patient(caller: Viewer, api: State, a: StudyRef, b: StudyRef) -> ApiJSON:
    """As `echosearch same-patient A B --json`."""
    engine = api.engine_for(caller)
    return ApiJSON(found(lambda: engine.same_patient(a, b)).to_dict())
