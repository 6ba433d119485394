"""Labels: each zero-shot label's distribution across the archive, and a custom prompt scored on
every clip from the per-frame store."""

from __future__ import annotations

import altair as alt
import streamlit as st

from echosearch.search import Engine
from ui import common


def render(eng: Engine) -> None:
    st.header("Labels")
    st.subheader("Score every clip for a new finding")
    prompt = st.text_input(
        "Custom prompt", key="prompt", placeholder="e.g. THERE IS A MODERATE PERICARDIAL EFFUSION."
    ).strip()
    k = st.slider("Top clips", 4, 48, 8, key="prompt_k")
    if prompt:
        sig = (prompt, k)
        if st.session_state.get("prompt_sig") != sig:
            st.session_state.prompt_result = common.guarded(lambda: eng.score_prompt(prompt, k=k))
            st.session_state.prompt_sig = sig if st.session_state.prompt_result is not None else None
        result = st.session_state.get("prompt_result")
        if result is not None:
            st.caption(f"Scored the archive in {result.elapsed_ms:.0f} ms (mean frame-prompt similarity)")
            for note in result.notes:
                st.warning(note)
            common.card_grid(eng, result.results, "prompt", query_text=prompt)
    st.subheader("Distributions across the archive")
    tasks = eng.label_tasks()
    if not tasks:
        st.info("This index has no zero-shot labels (the model has no tasks, or indexing skipped them).")
        return
    cols = st.columns(2)
    for i, task in enumerate(tasks):
        values = eng.label_values(task)
        with cols[i % 2]:
            st.markdown(f"**{task}** · {len(values)} clips")
            if len(values) == 0:
                st.caption("no numeric values")
                continue
            st.caption(
                f"mean {values.mean():.2f} · median {float(sorted(values)[len(values) // 2]):.2f} · "
                f"min {values.min():.2f} · max {values.max():.2f}"
            )
            chart = (
                alt.Chart(alt.Data(values=[{"value": float(v)} for v in values]))
                .mark_bar()
                .encode(
                    x=alt.X("value:Q", bin=alt.Bin(maxbins=20), title=task),
                    y=alt.Y("count():Q", title="clips"),
                )
                .properties(height=160)
            )
            st.altair_chart(chart, width="stretch")
