"""Taking a list away: a result list or a study's clips as CSV, and the study UIDs to copy.

What leaves the UI is what a clinician reads on the cards (study UID, date, view, labels in words,
the report's EF, similarity) and nothing the site has not allowed: no file paths, no MRNs, no
accession numbers (the index holds those only as keyed hashes anyway). When per-user roles arrive,
an administrator's export may add more; until then every export is this one.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

from echosearch.ui import clinical

#: The columns every export starts with; one column per label task follows (named by its title).
BASE_COLUMNS = (
    "Rank",
    "Study UID",
    "Study date",
    "View",
    "Clip",
    "Similarity",
    "Report EF",
    "Manufacturer",
)


def clip_rows(eng: Any, hits: Sequence[Any], reports: dict[str, str] | None = None) -> list[dict[str, str]]:
    """One row per clip, every value text as a person reads it (empty where unknown)."""
    if reports is None:
        reports = eng.reports([h.study_uid for h in hits if h.study_uid])
    rows = []
    for rank, hit in enumerate(hits, 1):
        row = {
            "Rank": str(rank),
            "Study UID": hit.study_uid or "",
            "Study date": hit.study_date or "",
            "View": hit.view or "",
            "Clip": str(hit.video_id),
            "Similarity": "" if hit.score is None else f"{hit.score:.3f}",
            "Report EF": clinical.report_ef_text(reports.get(hit.study_uid or "")) or "",
            "Manufacturer": hit.manufacturer or "",
        }
        for item in eng.readable_label_items(hit.labels):
            row[item.title] = item.value_text
        rows.append(row)
    return rows


def to_csv(rows: Sequence[dict[str, str]]) -> str:
    """Rows as CSV text (header first; label columns in the order they first appear)."""
    columns = list(BASE_COLUMNS)
    for row in rows:
        columns += [c for c in row if c not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def study_uids(hits: Sequence[Any]) -> list[str]:
    """The distinct study UIDs of a list, in list order."""
    return list(dict.fromkeys(h.study_uid for h in hits if h.study_uid))


def file_name(what: str) -> str:
    """``echosearch-<what>-<YYYYMMDD-HHMM>.csv`` (what: a short word, never an identifier but a UID)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M")
    safe = "".join(c if c.isalnum() or c in ".-" else "-" for c in what)[:80]
    return f"echosearch-{safe}-{stamp}.csv"


def panel(eng: Any, hits: Sequence[Any], key: str, what: str) -> None:
    """The export row under a list: download as CSV, and the study UIDs ready to copy."""
    import streamlit as st

    if not hits:
        return
    with st.container(key=f"export-{key}"):
        st.caption(
            "Take this list away: study UID, date, view, labels in words and the report's EF "
            "(no file paths, no MRNs)."
        )
        left, right = st.columns([1, 2])
        left.download_button(
            "Download list (CSV)",
            data=to_csv(clip_rows(eng, hits)),
            file_name=file_name(what),
            mime="text/csv",
            key=f"{key}-csv",
            on_click="ignore",
            icon=":material/download:",
            width="stretch",
        )
        uids = study_uids(hits)
        with right.expander(f"Copy the study UIDs ({len(uids)})"):
            st.caption("One per line; the copy button is at the box's top right.")
            st.code("\n".join(uids), language=None)
