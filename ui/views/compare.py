"""Compare: any two clips side by side, playing in step (by frame fraction, or by heartbeat where both
files record a heart rate). Reached from a card's Compare (two clips), a study's "Compare with prior"
(this study's clip and the prior's clip of the same view), or by typing two clip numbers."""

from __future__ import annotations

from typing import Any

import streamlit as st

from echosearch.errors import EchosearchError
from echosearch.search import Engine, VideoHit
from echosearch.store.queries import VideoFilter
from echosearch.ui import clinical, player


def render(eng: Engine) -> None:
    st.header("Compare")
    pending = st.session_state.get("cmp_pending")
    st.caption(
        "Two clips side by side, playing in step. Press Compare on two result cards, or "
        "'Compare with prior' on a study, or type two clip numbers (each card shows its clip number)."
    )
    # The picks live in cmp_left/cmp_right (kept while other pages show); the inputs start from them.
    for widget, kept in (("cmp_a", "cmp_left"), ("cmp_b", "cmp_right")):
        if widget not in st.session_state and st.session_state.get(kept) is not None:
            st.session_state[widget] = st.session_state[kept]
    left_col, right_col = st.columns(2)
    a = left_col.number_input(
        "Left clip", min_value=1, step=1, value=None, key="cmp_a", placeholder="clip number"
    )
    b = right_col.number_input(
        "Right clip", min_value=1, step=1, value=None, key="cmp_b", placeholder="clip number"
    )
    st.session_state.cmp_left, st.session_state.cmp_right = a, b
    if pending is not None and a is None:
        st.info(f"Clip {pending} waits for a partner: press Compare on a second clip, or type both numbers.")
    if a is None or b is None:
        return
    hits = []
    for vid in (a, b):
        try:
            hits.append(eng.video(int(vid)))
        except EchosearchError as exc:
            st.error(str(exc))
            return
    how = st.session_state.get("cmp_how")
    if how and how.get("pair") == [int(a), int(b)]:
        st.info(how["text"])
    player.side_by_side(eng, hits[0], hits[1], key="cmp")


def prior_study(timeline: list[Any], uid: str) -> Any | None:
    """The patient's study before this one (timelines are oldest first), or None."""
    uids = [h.study_uid for h in timeline]
    if uid not in uids:
        return None
    i = uids.index(uid)
    return timeline[i - 1] if i > 0 else None


def matching_clip(eng: Engine, hit: VideoHit, study_uid: str) -> tuple[VideoHit | None, str]:
    """The clip of another study to set beside ``hit``, and how it was chosen: the same recorded
    view; else (views not recorded) the study's clip the model finds most alike, which in practice
    is the same view."""
    clips = eng.study_videos(study_uid)
    if not clips:
        return None, "the prior study has no indexed clips"
    if hit.view:
        same = [c for c in clips if c.view and c.view.lower() == hit.view.lower()]
        if same:
            return same[0], f"the prior's {hit.view} clip"
    nearest = eng.search_clip(
        hit.video_id, k=1, filters=VideoFilter(study_uids=[study_uid]), exclude_same_study=False
    )
    if nearest.results:
        why = "views are not recorded in this index" if not hit.view else f"the prior has no {hit.view} clip"
        return nearest.results[0], f"the prior's clip the model finds most alike ({why})"
    return clips[0], "the prior's first clip"


def compare_with_prior(eng: Engine, hit: VideoHit, prior: Any):
    """A button callback: open Compare with this clip on the left and the prior's matching clip."""

    def callback() -> None:
        try:
            other, how = matching_clip(eng, hit, prior.study_uid)
        except EchosearchError as exc:
            st.session_state.cmp_error = f"Could not pick the prior's clip: {exc}"
            return
        if other is None:
            st.session_state.cmp_error = f"Could not pick the prior's clip: {how}."
            return
        set_pair(hit.video_id, other.video_id)
        st.session_state.update(
            cmp_pending=None,
            cmp_how={
                "pair": [hit.video_id, other.video_id],
                "text": f"Left: this study ({clinical.date_text(hit.study_date)}). Right: the prior "
                f"study ({clinical.date_text(prior.study_date)}), {how}.",
            },
            page="Compare",
        )

    return callback


def set_pair(left: int, right: int) -> None:
    """Put two clips on the Compare page (from a callback, before its inputs are drawn)."""
    st.session_state.cmp_left, st.session_state.cmp_right = int(left), int(right)
    for widget in ("cmp_a", "cmp_b"):
        st.session_state.pop(widget, None)
