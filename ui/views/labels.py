"""Labels: each zero-shot label's distribution across the archive, and a custom prompt scored on
every clip from the per-frame store."""

from __future__ import annotations

import streamlit as st

from echosearch.labels.encoding import is_derived, probability_key
from echosearch.search import Engine
from echosearch.ui import common


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
    # A binary task's yes/no decisions are shown as a share under its probability (or its raw score
    # where it has none), not as labels of their own.
    stored = eng.label_tasks()
    tasks = [t for t in stored if not is_derived(t)]
    if not tasks:
        st.info("This index has no zero-shot labels (the model has no tasks, or indexing skipped them).")
        return
    titles = eng.label_titles()
    kinds = {t.name: t.kind for t in eng.label_catalog()[0]}
    with st.grid(2, min_column_width=300, key="label-charts"):
        for task in tasks:
            title = titles.get(task) or task.replace("_", " ").capitalize()
            with st.container():
                classes = eng.label_categories(task)
                if classes:
                    _class_counts(title, classes)
                else:
                    probability = probability_key(task) in stored
                    what = (
                        "calibrated probability"
                        if probability
                        else "model estimate"
                        if kinds.get(task) == "regression"
                        else "model score"
                    )
                    _score_histogram(eng, task, title, what, probability=probability)


def _class_counts(task: str, classes: dict[str, int]) -> None:
    import altair as alt

    total = sum(classes.values())
    st.markdown(f"**{task}** · {total} clips")
    st.caption(" · ".join(f"{name} {n} ({100 * n / total:.0f}%)" for name, n in classes.items()))
    chart = (
        alt.Chart(alt.Data(values=[{"class": k, "clips": v} for k, v in classes.items()]))
        .mark_bar()
        .encode(
            x=alt.X("class:N", sort=list(classes), title=task, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("clips:Q", title="clips"),
        )
        .properties(height=160)
    )
    st.altair_chart(chart, width="stretch")


def _score_histogram(eng: Engine, task: str, title: str, what: str, probability: bool = False) -> None:
    import altair as alt

    values = eng.label_values(probability_key(task) if probability else task)
    st.markdown(f"**{title}** · {what} · {len(values)} clips")
    if len(values) == 0:
        st.caption("no numeric values")
        return
    st.caption(
        f"mean {values.mean():.2f} · median {float(sorted(values)[len(values) // 2]):.2f} · "
        f"min {values.min():.2f} · max {values.max():.2f}"
    )
    share = eng.positive_share(task)
    if share is not None:
        positive, decided = share
        st.caption(
            f"positive at its threshold: {positive} of {decided} clips ({100 * positive / decided:.0f}%)"
        )
    chart = (
        alt.Chart(alt.Data(values=[{"value": float(v)} for v in values]))
        .mark_bar()
        .encode(
            x=alt.X("value:Q", bin=alt.Bin(maxbins=20), title=f"{title} ({what})"),
            y=alt.Y("count():Q", title="clips"),
        )
        .properties(height=160)
    )
    st.altair_chart(chart, width="stretch")
