"""Search: free text -> clips, with filters, example queries, phrase suggestions and Grad-CAM."""

from __future__ import annotations

import numpy as np
import streamlit as st

from echosearch.search import Engine
from ui import common

EXAMPLES = (
    "SEVERE DILATED LEFT VENTRICLE.",
    "A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE.",
    "THE LEFT VENTRICULAR EJECTION FRACTION IS 30%.",
    "A TRANSCATHETER AORTIC VALVE PROSTHESIS IS PRESENT.",
    "APICAL FOUR CHAMBER VIEW, not pacemaker",
)


def _use(text: str):
    def callback() -> None:
        st.session_state.q = text
        st.session_state.cam_video = None

    return callback


def _has_phrases(eng: Engine) -> bool:
    try:
        return bool(getattr(eng.encoder.tokenizer, "phrases", None))
    except Exception:
        return False


def render(eng: Engine) -> None:
    st.header("Search")
    filters, k = common.sidebar_filters(eng)
    query = st.text_input(
        "Describe what you are looking for",
        key="q",
        placeholder="e.g. SEVERE DILATED LEFT VENTRICLE.  (add ', not pacemaker' to exclude)",
    ).strip()
    st.caption("Examples:")
    cols = st.columns(len(EXAMPLES))
    for i, (col, example) in enumerate(zip(cols, EXAMPLES, strict=True)):
        col.button(example, key=f"ex-{i}", on_click=_use(example), width="stretch")
    if query and _has_phrases(eng):
        phrases = eng.suggest(query)
        if phrases:
            st.caption("Template phrases like your query (click to use):")
            pcols = st.columns(len(phrases))
            for i, (col, phrase) in enumerate(zip(pcols, phrases, strict=True)):
                col.button(phrase, key=f"sug-{i}", on_click=_use(phrase), width="stretch")
    if not query:
        st.info("Type a finding, a view or a device; results are the clips the model finds most alike.")
        return
    sig = (query, common.filter_signature(filters, k))
    if st.session_state.get("search_sig") != sig:
        result = common.guarded(lambda: eng.search_text(query, k=k, filters=filters))
        st.session_state.search_sig = sig if result is not None else None
        st.session_state.search_result = result
        st.session_state.cam_video = None
    result = st.session_state.get("search_result")
    if result is None:
        return
    st.caption(f"{len(result.results)} results in {result.elapsed_ms:.0f} ms · model {result.model}")
    for note in result.notes:
        st.warning(note)
    if result.suggestions:
        st.caption("Did you mean:")
        for i, phrase in enumerate(result.suggestions):
            st.button(phrase, key=f"miss-{i}", on_click=_use(phrase))
    if not result.results:
        st.info("No clips match. Loosen the filters or rephrase the query.")
        return
    cam = st.session_state.get("cam_video")
    if cam is not None:
        _gradcam_panel(eng, int(cam), query)
    common.card_grid(eng, result.results, "res", query_text=query)


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
    try:
        image, over, score = _gradcam(eng, video_id, hit.path, text)
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
