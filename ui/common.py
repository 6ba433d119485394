"""What every page shares: the one Engine per process, navigation, the filter sidebar and result cards.

The UI holds no search logic: every question goes to :class:`echosearch.search.Engine`, which also
writes the audit log (with ``engine.who`` set to this session's user before each call).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from echosearch.accounts import Accounts, Caller
from echosearch.errors import EchosearchError
from echosearch.search import Engine, VideoHit
from echosearch.store.queries import LabelCondition, VideoFilter

log = logging.getLogger(__name__)

PAGES = ("Search", "Query by clip", "Study lookup", "Labels", "Index status")
EF_TASKS = ("ejection_fraction", "ef")
CARDS_PER_ROW = 3
DEMO_WARNING = "Demo model, not for clinical use: its results mean nothing about real patients."


# ---------------------------------------------------------------- engine


def data_dir() -> Path:
    """The data dir, as ``echosearch ui`` passes it (``$ECHOSEARCH_HOME``; default ./echosearch-data)."""
    from echosearch.paths import data_dir as resolve

    return resolve(None).resolve()


@st.cache_resource(show_spinner="Opening the index and loading the model…")
def _open_engine(root: str, space: str | None = None) -> Engine:
    engine = Engine.open(root, space=space)
    try:
        engine.encoder  # noqa: B018 - load the model now, once, not on the first query
    except EchosearchError as exc:
        log.warning("model not available, text and clip queries are off: %s", exc)
    return engine


def video_spaces(root: Path) -> list[str]:
    """The archive's embedding spaces (one per model it was indexed with), newest first."""
    from echosearch.index import list_spaces

    spaces = [sp for sp in list_spaces(root) if sp.info.kind == "video"]
    return [sp.name for sp in sorted(spaces, key=lambda sp: sp.info.created_at, reverse=True)]


def engine() -> Engine:
    """The process-wide Engine of the space this session picked, tagged with its user for the audit log."""
    eng = _open_engine(str(data_dir()), st.session_state.get("space"))
    eng.who = who()
    return eng


@st.cache_resource(show_spinner=False)
def _open_accounts(root: str) -> Accounts:
    from echosearch.store.db import open_db

    return Accounts(open_db(root))


def accounts() -> Accounts:
    """The process-wide accounts of the data dir (its login throttles are per process)."""
    return _open_accounts(str(data_dir()))


def caller() -> Caller | None:
    """The logged-in account of this session (None before login)."""
    return st.session_state.get("caller")


def who() -> str:
    """Who the audit log names: the logged-in account (``ui:NAME``)."""
    current = caller()
    return current.who if current is not None else "ui:?"


def is_admin() -> bool:
    current = caller()
    return current is not None and current.may("admin")


def model_clinical(eng: Engine) -> bool | None:
    return eng.clinical


def guarded(fn: Callable[[], Any]) -> Any:
    """Run an Engine call; a user's mistake becomes a one-line error on the page, not a traceback."""
    try:
        return fn()
    except EchosearchError as exc:
        st.error(str(exc))
        return None


# ---------------------------------------------------------------- navigation


def go(page: str, **state: Any) -> Callable[[], None]:
    """A button callback that switches page and sets session state (runs before the next rerun)."""

    def callback() -> None:
        st.session_state.page = page
        for key, value in state.items():
            st.session_state[key] = value

    return callback


# ---------------------------------------------------------------- filters


def sidebar_filters(eng: Engine) -> tuple[VideoFilter | None, int]:
    """The sidebar filter form; returns the filter (None when it filters nothing) and k."""
    opts = _filter_options(eng)
    side = st.sidebar
    side.subheader("Filters")
    f = VideoFilter()
    lo, hi = opts["date_min"], opts["date_max"]
    if lo and hi:
        picked = side.date_input("Study date", value=(lo, hi), min_value=lo, max_value=hi, key="f_dates")
        if isinstance(picked, (tuple, list)) and len(picked) == 2:
            if picked[0] != lo:
                f.date_from = picked[0]
            if picked[1] != hi:
                f.date_to = picked[1]
    if opts["views"]:
        f.views = side.multiselect("View", opts["views"], key="f_views")
    if opts["manufacturers"]:
        f.manufacturers = side.multiselect("Manufacturer", opts["manufacturers"], key="f_makers")
    labels: list[LabelCondition] = []
    ef_task = next((t for t in opts["tasks"] if t.lower() in EF_TASKS), None)
    if ef_task:
        ef_lo, ef_hi = side.slider("EF estimate (%)", 0, 100, (0, 100), key="f_ef")
        if ef_lo > 0:
            labels.append(LabelCondition(ef_task, ">=", float(ef_lo)))
        if ef_hi < 100:
            labels.append(LabelCondition(ef_task, "<=", float(ef_hi)))
    if opts["flags"]:
        for flag in side.multiselect("Devices / findings present", opts["flags"], key="f_flags"):
            labels.append(eng.flag_condition(flag))
    f.labels = labels
    k = side.slider("Results (k)", 1, 48, 12, key="f_k")
    return (None if f.is_empty() else f), k


@st.cache_data(ttl=60, show_spinner=False)
def _filter_options_cached(root: str, _eng: Engine) -> dict[str, Any]:
    opts = _eng.filter_options()
    opts["flag_conditions"] = {flag: _eng.flag_condition(flag) for flag in opts["flags"]}
    return opts


def _filter_options(eng: Engine) -> dict[str, Any]:
    return _filter_options_cached(str(eng.data_dir), eng)


def filter_signature(f: VideoFilter | None, k: int) -> str:
    return repr((f, k))


# ---------------------------------------------------------------- cards


@st.cache_data(max_entries=512, show_spinner=False)
def _data_uri(path: str, mtime: float) -> str:
    mime = "image/webp" if path.endswith(".webp") else "image/png"
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def animated(path: str | None, alt: str = "clip preview", width: str = "100%") -> None:
    """Show an animated WebP preview (st.image would flatten it to its first frame)."""
    if not path or not os.path.isfile(path):
        st.caption("(no preview)")
        return
    uri = _data_uri(path, os.path.getmtime(path))
    st.markdown(
        f'<img src="{uri}" alt="{alt}" class="echo-preview" style="width:{width};border-radius:4px">',
        unsafe_allow_html=True,
    )


def _fmt_label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def ef_of(labels: dict[str, Any]) -> float | None:
    for task, value in labels.items():
        if task.lower() in EF_TASKS and isinstance(value, (int, float)):
            return float(value)
    return None


def video_card(eng: Engine, hit: VideoHit, key: str, *, query_text: str | None = None) -> None:
    """One result card: preview, score, date, view, EF, devices, report excerpt and actions."""
    with st.container(border=True):
        animated(hit.preview, alt=f"clip {hit.video_id}")
        phrases = eng.readable_labels(hit.labels)
        # The card names what a clip has (and estimates, classes); every "no" stays in the details.
        shown = [p for p in phrases if not re.search(r": no(,|$)", p)]
        st.markdown(
            (f"**{hit.score:.3f}** · " if hit.score is not None else "")
            + f"clip {hit.video_id}"
            + (f" · {hit.view}" if hit.view else "")
            + "  \n"
            f"{hit.study_date or 'no date'} · {hit.manufacturer or ''}  \n"
            + (" · ".join(shown) or "no labels")
        )
        if hit.labels:
            with st.expander("Labels"):
                st.caption("  \n".join(phrases))
                st.caption("raw: " + ", ".join(f"{k} {_fmt_label(v)}" for k, v in sorted(hit.labels.items())))
        if hit.report_excerpt:
            with st.expander("Report"):
                st.caption(hit.report_excerpt)
        c1, c2 = st.columns(2)
        c1.button(
            "Similar clips",
            key=f"{key}-sim",
            on_click=go("Query by clip", clip_video=hit.video_id, clip_upload=None),
            width="stretch",
        )
        c2.button(
            "This study",
            key=f"{key}-study",
            disabled=not hit.study_uid,
            on_click=go("Study lookup", study_q=hit.study_uid, study_focus=None),
            width="stretch",
        )
        c3, c4 = st.columns(2)
        c3.button(
            "Same patient?",
            key=f"{key}-pat",
            disabled=not hit.study_uid,
            on_click=go("Study lookup", study_q=hit.study_uid, study_focus="patient"),
            width="stretch",
        )
        if query_text:
            c4.button(
                "Where it looks",
                key=f"{key}-cam",
                on_click=_set("cam_video", hit.video_id),
                width="stretch",
            )


def _set(key: str, value: Any) -> Callable[[], None]:
    def callback() -> None:
        st.session_state[key] = value

    return callback


def card_grid(eng: Engine, hits: list[VideoHit], prefix: str, *, query_text: str | None = None) -> None:
    for start in range(0, len(hits), CARDS_PER_ROW):
        cols = st.columns(CARDS_PER_ROW)
        for col, hit in zip(cols, hits[start : start + CARDS_PER_ROW], strict=False):
            with col:
                video_card(eng, hit, f"{prefix}-{start}-{hit.video_id}", query_text=query_text)


def labels_table(labels: dict[str, Any]) -> None:
    """A clip's zero-shot labels as a two-column table."""
    if not labels:
        st.caption("No zero-shot labels for this model.")
        return
    rows = [{"label": k, "value": _fmt_label(v)} for k, v in sorted(labels.items())]
    st.dataframe(rows, hide_index=True, width="stretch")


def study_rows(hits: list[Any]) -> list[dict[str, Any]]:
    """StudyHits as table rows (no patient identifiers: only study UID, date and model outputs)."""
    rows = []
    for h in hits:
        ef = ef_of(h.labels)
        rows.append(
            {
                "study": h.study_uid,
                "date": h.study_date,
                "score": None if h.score is None else round(h.score, 3),
                "clips": h.n_videos,
                "EF estimate": None if ef is None else round(ef, 1),
                "same patient on record": h.same_patient_on_record,
            }
        )
    return rows


def parse_date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None
