"""What every page shares: the one Engine per process, navigation, the filter sidebar and result cards.

The UI holds no search logic: every question goes to :class:`echosearch.search.Engine`, which also
writes the audit log (with ``engine.who`` set to this session's user before each call).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from echosearch.accounts import Accounts, Caller
from echosearch.errors import EchosearchError
from echosearch.search import Engine, VideoHit
from echosearch.store.queries import LabelCondition, VideoFilter
from echosearch.ui import clinical

log = logging.getLogger(__name__)

PAGES = ("Search", "Query by clip", "Study lookup", "Compare", "Labels", "Index status")
EF_TASKS = clinical.EF_TASKS
CARDS_PER_ROW = 3
#: A card is never narrower than this: on a narrow screen (a tablet) cards stack instead of squeezing.
CARD_MIN_WIDTH = 300
DEMO_WARNING = "Demo model, not for clinical use: its results mean nothing about real patients."


# ---------------------------------------------------------------- engine


def data_dir() -> Path:
    """The data dir, as ``echosearch ui`` passes it (``$ECHOSEARCH_HOME``; default ./echosearch-data)."""
    from echosearch.paths import data_dir as resolve

    return resolve(None).resolve()


@st.cache_resource(show_spinner="Opening the index…")
def _open_engine(root: str, space: str | None = None) -> Engine:
    # The model is not loaded here: a page shows first, then warm_model() loads it in the background.
    from echosearch.ui import preopened

    return preopened.take(root, space) or Engine.open(root, space=space)


#: Seconds between a page being drawn and the model starting to load in the background.
WARM_DELAY_S = 2.0
_WARMING: set[int] = set()
_WARMING_LOCK = threading.Lock()


def warm_model(eng: Engine) -> None:
    """Load the model in a background thread, once per Engine, after the page has been drawn: the
    first page does not wait for torch and the weights, and a query made meanwhile waits for the
    one load under way (the Engine loads its model under a lock) instead of starting another."""
    with _WARMING_LOCK:
        if eng.model_loaded or id(eng) in _WARMING:
            return
        _WARMING.add(id(eng))

    def load() -> None:
        # A moment first: importing torch holds the interpreter, and the page's own messages (sent by
        # the server's event loop in this process) should reach the browser before that starts.
        time.sleep(WARM_DELAY_S)
        try:
            eng.encoder  # noqa: B018 - the property loads it
        except EchosearchError as exc:
            log.warning("model not available, text and clip queries are off: %s", exc)
        except Exception:  # a background thread must not die silently on anything else
            log.exception("loading the model in the background failed")

    threading.Thread(target=load, name="echosearch-model-warmup", daemon=True).start()


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


KEPT = "_kept_widgets"


def kept(key: str, default: Any = None) -> Any:
    """The ``value=`` to give a widget whose value should outlive a visit to another page (Streamlit
    forgets the value of a widget that a run does not draw): the value saved by :func:`keep` is put
    back into the session state, and then the widget must get ``None`` (it reads the session state);
    otherwise ``default``."""
    saved = st.session_state.setdefault(KEPT, {})
    if key not in st.session_state and key in saved:
        st.session_state[key] = saved[key]
        return None
    return default


def keep(key: str, value: Any) -> Any:
    """Save a widget's value for :func:`kept` (returns it)."""
    st.session_state.setdefault(KEPT, {})[key] = value
    return value


def sidebar_filters(eng: Engine) -> tuple[VideoFilter | None, int]:
    """The sidebar filter form; returns the filter (None when it filters nothing) and k. The values
    outlive visits to pages without filters."""
    opts = _filter_options(eng)
    side = st.sidebar
    side.subheader("Filters")
    f = VideoFilter()
    lo, hi = opts["date_min"], opts["date_max"]
    if lo and hi:
        picked = side.date_input(
            "Study date", value=kept("f_dates", (lo, hi)), min_value=lo, max_value=hi, key="f_dates"
        )
        keep("f_dates", picked)
        if isinstance(picked, (tuple, list)) and len(picked) == 2:
            if picked[0] != lo:
                f.date_from = picked[0]
            if picked[1] != hi:
                f.date_to = picked[1]
    if opts["views"]:
        f.views = keep(
            "f_views", side.multiselect("View", opts["views"], default=kept("f_views"), key="f_views")
        )
    if opts["manufacturers"]:
        f.manufacturers = keep(
            "f_makers",
            side.multiselect("Manufacturer", opts["manufacturers"], default=kept("f_makers"), key="f_makers"),
        )
    labels: list[LabelCondition] = []
    ef_task = next((t for t in opts["tasks"] if t.lower() in EF_TASKS), None)
    if ef_task:
        ef_lo, ef_hi = keep(
            "f_ef", side.slider("EF estimate (%)", 0, 100, kept("f_ef", (0, 100)), key="f_ef")
        )
        if ef_lo > 0:
            labels.append(LabelCondition(ef_task, ">=", float(ef_lo)))
        if ef_hi < 100:
            labels.append(LabelCondition(ef_task, "<=", float(ef_hi)))
    if opts["flags"]:
        titles = eng.label_titles()
        picked = side.multiselect(
            "Devices / findings present",
            opts["flags"],
            default=kept("f_flags"),
            key="f_flags",
            format_func=lambda t: titles.get(t) or t.replace("_", " ").capitalize(),
        )
        for flag in keep("f_flags", picked):
            labels.append(eng.flag_condition(flag))
    f.labels = labels
    k = keep("f_k", side.slider("Number of results", 1, 48, kept("f_k", 12), key="f_k"))
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


def ef_of(labels: dict[str, Any]) -> float | None:
    for task, value in labels.items():
        if clinical.is_ef(task) and isinstance(value, (int, float)):
            return float(value)
    return None


@st.cache_data(ttl=60, max_entries=256, show_spinner=False)
def _reports(root: str, uids: tuple[str, ...], _eng: Engine) -> dict[str, str]:
    return _eng.reports(list(uids))


def reports_for(eng: Engine, uids: list[str | None]) -> dict[str, str]:
    """{study UID: full report text} for the studies of a list (read once a minute at most)."""
    wanted = tuple(sorted({u for u in uids if u}))
    return _reports(str(eng.data_dir), wanted, eng) if wanted else {}


def video_card(
    eng: Engine,
    hit: VideoHit,
    key: str,
    *,
    query_text: str | None = None,
    report: str | None = None,
) -> None:
    """One result card: preview, view and date, the report's EF beside the model's estimate,
    findings in words, the full report on demand, and the actions (play first)."""
    with st.container(border=True, key=f"card-{key}"):
        animated(hit.preview, alt=f"clip {hit.video_id} preview")
        items = eng.readable_label_items(hit.labels)
        st.markdown(clinical.card_markdown(hit, items, report))
        c1, c2 = st.columns(2)
        c1.button(
            "Play",
            key=f"{key}-play",
            icon=":material/play_arrow:",
            on_click=_set("cine_video", hit.video_id),
            help="Open the clip at its own frame rate and full size",
            type="primary",
            width="stretch",
        )
        c2.button(
            "Compare",
            key=f"{key}-cmp",
            icon=":material/compare:",
            on_click=pick_for_compare(hit.video_id),
            help="Put this clip side by side with another (press Compare on a second clip)",
            width="stretch",
        )
        c3, c4 = st.columns(2)
        c3.button(
            "Similar clips",
            key=f"{key}-sim",
            on_click=go("Query by clip", clip_video=hit.video_id, clip_upload=None),
            width="stretch",
        )
        c4.button(
            "This study",
            key=f"{key}-study",
            disabled=not hit.study_uid,
            on_click=go("Study lookup", study_q=hit.study_uid, study_focus=None),
            width="stretch",
        )
        c5, c6 = st.columns(2)
        c5.button(
            "Same patient?",
            key=f"{key}-pat",
            disabled=not hit.study_uid,
            on_click=go("Study lookup", study_q=hit.study_uid, study_focus="patient"),
            width="stretch",
        )
        if query_text:
            c6.button(
                "Where it looks",
                key=f"{key}-cam",
                on_click=_set("cam_video", hit.video_id),
                width="stretch",
            )
        if hit.viewer_url:  # the site's viewer (DATA/site.yaml: viewer.url)
            st.link_button("Open in viewer", hit.viewer_url, icon=":material/open_in_new:", width="stretch")
        _, everything = clinical.findings(items)
        if everything:
            with st.expander("All findings"):
                st.markdown("  \n".join(everything))
        if report:
            with st.expander("Full report"):
                st.markdown(report)


def _set(key: str, value: Any) -> Callable[[], None]:
    def callback() -> None:
        st.session_state[key] = value

    return callback


def pick_for_compare(video_id: int) -> Callable[[], None]:
    """A card's Compare: the first pick waits on the left; the second opens the Compare page."""

    def callback() -> None:
        first = st.session_state.get("cmp_pending")
        if first is None or first == video_id:
            st.session_state.cmp_pending = video_id
            st.session_state.cmp_notice = (
                f"Clip {video_id} is ready to compare: press Compare on a second clip "
                "(or open the Compare page to type its number)."
            )
            return
        from echosearch.ui.views.compare import set_pair

        set_pair(int(first), int(video_id))
        st.session_state.update(cmp_pending=None, cmp_how=None, page="Compare")

    return callback


def compare_notice() -> None:
    """Say once that a clip waits for its partner (set by a card's Compare)."""
    notice = st.session_state.pop("cmp_notice", None)
    if notice:
        st.toast(notice, icon=":material/compare:")


def card_grid(eng: Engine, hits: list[VideoHit], prefix: str, *, query_text: str | None = None) -> None:
    """Result cards in a grid that stacks on a narrow screen (never narrower than CARD_MIN_WIDTH)."""
    compare_notice()
    reports = reports_for(eng, [h.study_uid for h in hits])
    with st.grid(CARDS_PER_ROW, min_column_width=CARD_MIN_WIDTH, key=f"cards-{prefix}"):
        for i, hit in enumerate(hits):
            video_card(
                eng,
                hit,
                f"{prefix}-{i}-{hit.video_id}",
                query_text=query_text,
                report=reports.get(hit.study_uid or ""),
            )


def labels_table(eng: Engine, labels: dict[str, Any]) -> None:
    """A clip's labels in words, one finding a line (no internal names or raw scores)."""
    items = eng.readable_label_items(labels)
    if not items:
        st.caption("This model gives no labels.")
        return
    ef = clinical.ef_line(items, None)
    _, everything = clinical.findings(items)
    st.markdown("  \n".join(([ef] if ef else []) + everything))


def study_rows(hits: list[Any], reports: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """StudyHits as table rows in words (no patient identifiers: study UID, date, model outputs, the
    report's EF). Every cell is text or a number, never None; a column nobody has is left out."""
    reports = reports or {}
    rows = []
    for h in hits:
        ef = ef_of(h.labels)
        row: dict[str, Any] = {"study": h.study_uid, "date": clinical.date_text(h.study_date)}
        if h.score is not None:
            row["similarity"] = round(h.score, 3)
        row["clips"] = h.n_videos
        row["report EF"] = clinical.report_ef_text(reports.get(h.study_uid)) or "not stated"
        row["EF estimate (model)"] = f"{ef:.0f}%" if ef is not None else "none"
        row["same patient on record"] = clinical.yes_no(h.same_patient_on_record)
        rows.append(row)
    return rows


def parse_date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


# ---------------------------------------------------------------- layout


_LAYOUT = """
<style>
  /* A card's buttons keep their words: two lines rather than an ellipsis. */
  [class*="st-key-card-"] button p { white-space: normal; overflow-wrap: anywhere; }
  [class*="st-key-card-"] button { min-height: 2.5rem; height: auto; }
  /* Previews keep the clip's shape and never exceed a comfortable height. */
  img.echo-preview { max-height: 260px; object-fit: contain; background: #000; }
</style>
<script>
(function () {
  // On a narrow screen (a tablet, a split window) start with the sidebar closed, once per browser
  // tab: the results get the width, and the sidebar's arrow opens it again.
  const KEY = "echosearch-sidebar-auto-closed";
  const NARROW = 1024;
  let tries = 0;
  const closeOnce = () => {
    if (window.innerWidth > NARROW || sessionStorage.getItem(KEY)) return;
    const bar = document.querySelector('[data-testid="stSidebar"]');
    const btn = document.querySelector('[data-testid="stSidebarCollapseButton"] button')
      || document.querySelector('[data-testid="stSidebarHeader"] button');
    if (bar && bar.dataset.collapsed === "true") {
      sessionStorage.setItem(KEY, "1");  // closed already (Streamlit closes it below 768 px)
    } else if (bar && btn) {
      btn.click();
      sessionStorage.setItem(KEY, "1");
    } else if (++tries < 50) {
      setTimeout(closeOnce, 100);
    }
  };
  closeOnce();
  // "/" anywhere (outside a text field) puts the cursor in the page's first text box: the search.
  if (!window.__echoSlash) {
    window.__echoSlash = true;
    document.addEventListener("keydown", (e) => {
      const t = e.target;
      if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
      const box = document.querySelector('section.main input[type="text"], [data-testid="stMain"] input[type="text"]');
      if (box) { box.focus(); e.preventDefault(); }
    });
  }
})();
</script>
"""


def layout() -> None:
    """Page-wide styles and the narrow-screen behaviour (drawn once per run, takes no room)."""
    st.html(_LAYOUT, unsafe_allow_javascript=True)
