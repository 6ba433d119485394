"""Search: free text -> clips, with filters, example queries, phrase suggestions and Grad-CAM."""

from __future__ import annotations

import numpy as np
import streamlit as st

from echosearch.search import Engine
from echosearch.ui import common, export

EXAMPLES = (
    "severe LV dysfunction",
    "pacemaker",
    "EF < 30%",
    "s/p TAVR, no effusion",
    "A4C, not pacer",
)


def _use(text: str):
    def callback() -> None:
        st.session_state.q = text
        st.session_state.cam_video = None
        st.session_state.edited_plan = None

    return callback


def render(eng: Engine) -> None:
    st.header("Search")
    query = st.text_input(
        "Describe what you are looking for",
        value=common.kept("q", ""),
        key="q",
        placeholder="e.g. severe LV dysfunction, pacer lead  (add ', no effusion' to exclude)",
        help="Press Enter to search; Tab then reaches the results. '/' anywhere returns here.",
    )
    query = common.keep("q", query or "").strip()
    filters, k = common.sidebar_filters(eng)  # after the box: the box is what a first visit waits for
    if not query:
        _examples()
        st.info(
            "Type findings, devices, numbers or a view the way you would say them; results are the clips "
            "the model finds most alike."
        )
        return
    edited = st.session_state.get("edited_plan")
    if edited is not None and edited.query != query:
        edited = st.session_state.edited_plan = None
    sig = (
        query,
        common.filter_signature(filters, k),
        None if edited is None else edited.to_dict()["summary"],
    )
    if st.session_state.get("search_sig") != sig:
        spinner = "Searching…" if eng.model_loaded else "Loading the model (first search only) and searching…"
        with st.spinner(spinner):
            if edited is None:
                result = common.guarded(lambda: eng.search_text(query, k=k, filters=filters))
            else:
                result = common.guarded(lambda: eng.search_interpretation(edited, k=k, filters=filters))
        st.session_state.search_sig = sig if result is not None else None
        st.session_state.search_result = result
        st.session_state.cam_video = None
    result = st.session_state.get("search_result")
    if result is None:
        return
    _interpretation(eng, query, result)
    if not result.results:
        _nothing_found(result)
        return
    st.caption(f"{len(result.results)} results in {result.elapsed_ms:.0f} ms · model {result.model}")
    for note in result.notes:
        st.warning(note)
    cam = st.session_state.get("cam_video")
    if cam is not None:
        _gradcam_panel(eng, int(cam), query)
    common.card_grid(eng, result.results, "res", query_text=query)
    export.panel(eng, result.results, "res", "results")
    with st.expander("Example queries"):
        _examples()


def _examples() -> None:
    st.caption("Examples:")
    with st.container(horizontal=True, key="examples"):
        for i, example in enumerate(EXAMPLES):
            st.button(example, key=f"ex-{i}", on_click=_use(example))


def _nothing_found(result) -> None:
    """Why nothing was found (the last note is the reason), then the suggestions, once, as buttons."""
    *other, reason = result.notes or ["no clip matches"]
    st.warning(f"No clips found: {reason}.")
    for note in other:
        st.caption(note)
    if result.suggestions:
        st.markdown("**Phrases this model knows that come closest (press one to search it):**")
        with st.container(horizontal=True, key="suggestions"):
            for i, phrase in enumerate(result.suggestions):
                st.button(phrase, key=f"miss-{i}", on_click=_use(phrase))


def _interpretation(eng: Engine, query: str, result) -> None:
    """How the query was understood, and a form to change it (phrases one per line, conditions)."""
    doc = result.interpretation
    if doc is None or not (doc["phrases"] or doc["negatives"] or doc["filters"] or doc["preferences"]):
        return  # nothing was understood: the empty result says so, once
    st.info(doc["summary"].replace("searched as:", "**Searched as:**", 1))
    with st.expander("Change how the query is read"):
        with st.form("edit-plan"):
            text = st.text_area(
                "Phrases the model reads (one per line)", "\n".join(p["text"] for p in doc["phrases"])
            )
            keep_filters = [
                st.checkbox(f"filter: {c['text']}", value=True, key=f"f-{i}")
                for i, c in enumerate(doc["filters"])
            ]
            keep_prefs = [
                st.checkbox(f"prefer: {c['text']}", value=True, key=f"p-{i}")
                for i, c in enumerate(doc["preferences"])
            ]
            if st.form_submit_button("Search with these"):
                plan = common.guarded(lambda: eng.interpret(query))
                if plan is not None:
                    st.session_state.edited_plan = plan.edited(text.splitlines(), keep_filters, keep_prefs)
                    st.rerun()


@st.cache_data(max_entries=64, show_spinner="Computing where the model looks…")
def _gradcam(_eng: Engine, video_id: int, path: str, text: str) -> tuple[np.ndarray, np.ndarray, float]:
    from echosearch.explain import gradcam, middle_frame

    cam = gradcam(_eng.encoder, middle_frame(path), text)
    return cam.image, cam.overlay, cam.score


def gradcam_view(eng: Engine, video_id: int, text: str) -> None:
    """The model's input frame and its Grad-CAM heat map for ``text`` (used by several pages)."""
    hit = common.guarded(lambda: eng.video(video_id))
    if hit is None:
        return
    source = eng.source_file(video_id)  # through the clip's registered source root
    if source is None:
        st.info(f"clip {video_id} came over DICOM: no file of it is kept here for the heat map")
        return
    try:
        image, over, score = _gradcam(eng, video_id, source, text)
    except Exception as exc:  # the clip may have moved since indexing; say so, keep the page
        st.error(f"cannot compute the heat map for clip {video_id}: {exc}")
        return
    left, right = st.columns(2)
    left.image(image, caption=f"clip {video_id}: middle frame as the model sees it", width=300)
    right.image(over, caption=f"Grad-CAM for the query (similarity {score:.3f})", width=300)


def _gradcam_panel(eng: Engine, video_id: int, query: str) -> None:
    with st.container(border=True):
        head, close = st.columns([5, 1])
        head.subheader(f"Where the model looks: clip {video_id}")
        close.button("Close", key="cam-close", on_click=lambda: st.session_state.update(cam_video=None))
        st.caption(
            "Grad-CAM on the image tower's last stage: red areas raise the similarity to the query most."
        )
        gradcam_view(eng, video_id, query)
