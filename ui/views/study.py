"""Study lookup: by Study Instance UID, accession number or MRN (both hashed as at indexing) -> the
study's report and EF, its clips (cine viewer, compare with the prior study, export), its nearest
studies, likely same-patient studies and the patient's timeline (report EF beside the model's)."""

from __future__ import annotations

import streamlit as st

from echosearch.errors import UsageError
from echosearch.reports import report_ef
from echosearch.search import Engine
from echosearch.ui import clinical, common, export, player
from echosearch.ui.views import compare
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
        value=common.kept("study_q", ""),
        key="study_q",
        help="Accession numbers and MRNs are hashed with the site key before lookup, as at indexing.",
    )
    text = common.keep("study_q", text or "").strip()
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
    clips = common.guarded(lambda: eng.study_videos(uid)) or []
    timeline = common.guarded(lambda: eng.patient_timeline(uid)) or []
    reports = common.reports_for(eng, [uid, *(h.study_uid for h in timeline)])
    this = next((h for h in timeline if h.study_uid == uid), None)
    st.subheader(f"Study {uid}")
    if this is not None:
        items = eng.readable_label_items(this.labels)
        ef = clinical.ef_line(items, reports.get(uid))
        st.markdown(
            f"Date **{clinical.date_text(this.study_date)}** · {this.n_videos} clips"
            + (f" · {ef} (model: mean of the clips)" if ef else "")
        )
    if reports.get(uid):
        with st.expander("Report"):
            st.markdown(reports[uid])
    if clips:
        _cine(eng, clips, timeline, uid, reports)
        common.card_grid(eng, clips, "studyclips")
        export.panel(eng, clips, "study", f"study-{uid}")
    st.subheader("Nearest studies")
    nearest = common.guarded(lambda: eng.search_study(uid, k=5))
    if nearest is not None:
        st.caption(f"{len(nearest.results)} studies in {nearest.elapsed_ms:.0f} ms")
        _study_buttons(
            nearest.results, "near", common.reports_for(eng, [h.study_uid for h in nearest.results])
        )
    if st.session_state.get("study_focus") != "patient":
        st.button(
            "Same patient? (studies the model finds most alike)",
            key="show-patient",
            on_click=lambda: st.session_state.update(study_focus="patient"),
        )
    st.subheader("This patient's studies")
    _timeline(timeline, reports)


def _cine(eng: Engine, clips: list, timeline: list, uid: str, reports: dict[str, str]) -> None:
    """The study's cine viewer (one clip at a time, its findings beside it) and "Compare with prior"."""
    st.subheader("Cine")
    labels = {
        c.video_id: f"{clinical.view_text(c.view)} · clip {c.video_id} ({c.frames or '?'} frames)"
        for c in clips
    }
    player_col, side = st.columns([3, 2])
    with side:
        picked = st.selectbox("Clip", list(labels), format_func=labels.get, key=f"study-cine-{uid}")
        hit = next(c for c in clips if c.video_id == picked)
        prior = compare.prior_study(timeline, uid)
        st.button(
            f"Compare with prior ({clinical.date_text(prior.study_date)})" if prior else "Compare with prior",
            key="cmp-prior",
            icon=":material/compare:",
            disabled=prior is None,
            help="The same view of this patient's previous study, side by side and in step"
            if prior
            else "No earlier study of this patient is on record.",
            on_click=compare.compare_with_prior(eng, hit, prior) if prior else None,
            width="stretch",
        )
        error = st.session_state.pop("cmp_error", None)
        if error:
            st.error(error)
        st.markdown(clinical.card_markdown(hit, eng.readable_label_items(hit.labels), reports.get(uid)))
    with player_col:
        player.viewer(eng, hit.video_id, "studycine")


def _same_patient(eng: Engine, uid: str) -> None:
    with st.container(border=True):
        st.subheader("Same patient?")
        st.caption(
            "Studies ranked by how alike the model finds them to this one (EchoCLIP-R's same-patient "
            "use). 'same patient on record' compares the hashed patient IDs."
        )
        cands = common.guarded(lambda: eng.patient_candidates(uid, k=5))
        if cands is not None:
            _study_buttons(
                cands.results, "cand", common.reports_for(eng, [h.study_uid for h in cands.results])
            )


def _timeline(timeline: list, reports: dict[str, str]) -> None:
    import altair as alt

    if not timeline:
        st.caption("No patient on record for this study.")
        return
    rows = common.study_rows(timeline, reports)
    st.dataframe(rows, hide_index=True, width="stretch")
    points = []
    for h in timeline:
        if not h.study_date:
            continue
        ef = common.ef_of(h.labels)
        if ef is not None:
            points.append(
                {"date": h.study_date, "EF": round(ef, 1), "source": "model estimate", "study": h.study_uid}
            )
        stated = report_ef(reports.get(h.study_uid))
        if stated is not None:
            points.append(
                {"date": h.study_date, "EF": sum(stated) / 2, "source": "report", "study": h.study_uid}
            )
    if points:
        chart = (
            alt.Chart(alt.Data(values=points))
            .mark_line(point=True)
            .encode(
                x=alt.X("date:T", title="study date"),
                y=alt.Y("EF:Q", title="EF (%)", scale=alt.Scale(domain=[0, 100])),
                color=alt.Color("source:N", title=None),
                tooltip=["date:T", "EF:Q", "source:N", "study:N"],
            )
            .properties(height=220)
        )
        st.altair_chart(chart, width="stretch")
