"""Index status: what is indexed, with which model (and whether it is fit for clinical use), the
last indexing runs and the files that failed, by reason."""

from __future__ import annotations

import streamlit as st

from echosearch.search import Engine
from echosearch.ui import clinical, common


def render(eng: Engine) -> None:
    st.header("Index status")
    stats = eng.stats()
    fit = eng.clinical
    where = f" · data dir `{stats['data_dir']}`" if common.is_admin() else ""  # paths: admins only
    st.markdown(f"Model in use: **{stats['model']}**{where}")
    if fit is False:
        st.error(common.DEMO_WARNING)
    elif fit is None:
        st.warning("The model could not be loaded on this machine: text and new-clip queries are off.")
    counts = stats["counts"]
    shown = ["patients", "studies", "videos", "reports", "labels", "failures"]
    cols = st.columns(len(shown))
    for col, name in zip(cols, shown, strict=True):
        col.metric(name, counts.get(name, 0))
    st.subheader("Embedding spaces")
    st.dataframe(
        [
            {
                "space": sp["name"],
                "kind": sp["kind"],
                "model": sp["model"],
                "version": sp["model_version"] or "not recorded",
                "dim": sp["dim"],
                "vectors": sp["index"].get("ntotal", 0),
                "index": sp["index"].get("kind") or "none yet",
                "disk MB": round(sp["disk_bytes"] / 1e6, 2),
            }
            for sp in stats["spaces"]
        ],
        hide_index=True,
        width="stretch",
    )
    st.subheader("Last indexing runs")
    if stats["last_runs"]:
        st.dataframe(
            [
                {
                    "run": r["id"],
                    "started": _when(r["started_at"]),
                    "finished": _when(r["finished_at"]) or "still running or stopped",
                    "status": r["status"],
                    "what it did": clinical.run_summary(r["counts"]),
                }
                for r in stats["last_runs"]
            ],
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("No indexing runs recorded.")
    st.subheader("Failures by reason")
    failures = stats["failures_by_kind"]
    if failures:
        rows = [{"reason": str(k or "unknown"), "files": v} for k, v in failures.items()]
        st.dataframe(rows, hide_index=True, width="stretch")
        st.bar_chart(rows, x="reason", y="files", height=200)
    else:
        st.caption("No failed files.")
    st.caption(f"Every query is written to the audit log as '{common.who()}'.")


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""
