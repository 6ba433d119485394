"""Study lookup: by Study Instance UID, accession number or MRN (both hashed as at indexing) -> the
study's clips, its nearest studies, likely same-patient studies and the patient's timeline."""

from __future__ import annotations

import altair as alt
import streamlit as st

from echosearch.errors import UsageError
from echosearch.search import Engine
from echosearch.ui import common
from echosearch.ui.views.clip import _study_buttons


def _resolve(eng: Engine, text: str) -> list[str]:
    """Study UIDs for what was typed: one for a UID/accession, a patient's studies for an MRN."""
    try:
        return [eng.find_study(text).study_uid]
    except UsageError:
        pass
    try:
        return [h.study_uid for h in eng.studies_for_mrn(text)]
    except UsageError:
        raise UsageError(
            "no study with that Study UID or accession number, and no patient with that MRN"
        ) from None


def render(eng: Engine) -> None:
    st.header("Study lookup")
    text = st.text_input(
        "Study Instance UID, accession number or MRN",
        key="study_q",
        help="Accession numbers and MRNs are hashed with the site key before lookup, as at indexing.",
    ).strip()
    if not text:
        st.info("Type a Study UID, an accession number or an MRN, or press 'This study' on a result.")
        return
    uids = common.guarded(lambda: _resolve(eng, text))
    if not uids:
        return
    if len(uids) > 1:
        st.caption(f"This MRN has {len(uids)} studies; showing the latest. Open another:")
        for i, uid in enumerate(uids):
            st.button(uid, key=f"mrn-{i}", on_click=common.go("Study lookup", study_q=uid, study_focus=None))
    uid = uids[-1]
    if st.session_state.get("study_focus") == "patient":
        _same_patient(eng, uid)
    clips = common.guarded(lambda: eng.study_videos(uid))
    timeline = common.guarded(lambda: eng.patient_timeline(uid)) or []
    this = next((h for h in timeline if h.study_uid == uid), None)
    st.subheader(f"Study {uid}")
    if this is not None:
        ef = common.ef_of(this.labels)
        st.markdown(
            f"Date **{this.study_date or 'unknown'}** · {this.n_videos} clips · "
            f"mean EF estimate **{f'{ef:.0f}%' if ef is not None else 'n/a'}**"
        )
        if this.report_excerpt:
            st.caption(this.report_excerpt)
    if clips:
        common.card_grid(eng, clips, "studyclips")
    st.subheader("Nearest studies")
    nearest = common.guarded(lambda: eng.search_study(uid, k=5))
    if nearest is not None:
        st.caption(f"{len(nearest.results)} studies in {nearest.elapsed_ms:.0f} ms")
        _study_buttons(nearest.results, "near")
    if st.session_state.get("study_focus") != "patient":
        st.button(
            "Same patient? (studies the model finds most alike)",
            key="show-patient",
            on_click=lambda: st.session_state.update(study_focus="patient"),
        )
    st.subheader("This patient's studies")
    _timeline(timeline)


def _same_patient(eng: Engine, uid: str) -> None:
    with st.container(border=True):
        st.subheader("Same patient?")
        st.caption(
            "Studies ranked by how alike the model finds them to this one (EchoCLIP-R's same-patient "
            "use). 'same patient on record' compares the hashed patient IDs."
        )
        cands = common.guarded(lambda: eng.patient_candidates(uid, k=5))
        if cands is not None:
            _study_buttons(cands.results, "cand")


def _timeline(timeline: list) -> None:
    if not timeline:
        st.caption("No patient on record for this study.")
        return
    rows = common.study_rows(timeline)
    st.dataframe(rows, hide_index=True, width="stretch")
    points = [r for r in rows if r["date"] and r["EF estimate"] is not None]
    if len(points) >= 1:
        chart = (
            alt.Chart(alt.Data(values=points))
            .mark_line(point=True)
            .encode(
                x=alt.X("date:T", title="study date"),
                y=alt.Y("EF estimate:Q", title="EF estimate (%)", scale=alt.Scale(domain=[0, 100])),
                tooltip=["date:T", "EF estimate:Q", "study:N"],
            )
            .properties(height=220)
        )
        st.altair_chart(chart, width="stretch")
