"""What a clinician reads on a card, a table or an export: plain words, no internal names.

Pure functions (no Streamlit): they turn a clip's stored fields and its readable labels
(:class:`echosearch.labels.naming.ReadableLabel`) into text. Nothing here prints a task's internal
name, a raw score, ``None`` or a template slot: a missing value is said in words ("not recorded").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from echosearch.reports import report_ef

#: Task names (any case) whose estimate is the ejection fraction.
EF_TASKS = ("ejection_fraction", "ef")
NOT_RECORDED = "not recorded"


def is_ef(task: str) -> bool:
    return task.lower() in EF_TASKS


def view_text(view: str | None) -> str:
    return view if view else f"view {NOT_RECORDED}"


def date_text(iso: str | None) -> str:
    return iso if iso else f"date {NOT_RECORDED}"


def heading(view: str | None, iso: str | None, *, bold: bool = False) -> str:
    """ "**A4C** · 2017-04-23"; the date leads when no view is recorded (not every card opening
    with "view not recorded")."""
    first, second = (view, date_text(iso)) if view else (date_text(iso), view_text(None))
    return (f"**{first}**" if bold else first) + f" · {second}"


def percent(value: float, digits: int = 0) -> str:
    return f"{value:.{digits}f}%"


def report_ef_text(report: str | None) -> str | None:
    """The report's EF as written ("61%", "50–55%"), or None when the report states none."""
    found = report_ef(report)
    if found is None:
        return None
    low, high = found
    return percent(low, 0 if low.is_integer() else 1) if low == high else f"{low:g}–{high:g}%"


def model_ef(items: Iterable[Any]) -> Any | None:
    """The EF estimate among a clip's readable labels (a regression item), or None."""
    return next((i for i in items if i.kind == "regression" and is_ef(i.task) and i.assessable), None)


def ef_line(items: Sequence[Any], report: str | None) -> str | None:
    """ "EF: report 61% · model estimate ≈ 50% (±9)": the report's own value beside the model's,
    the model's always named an estimate. None when neither is known."""
    parts = []
    stated = report_ef_text(report)
    if stated:
        parts.append(f"report {stated}")
    estimate = model_ef(items)
    if estimate is not None:
        text = estimate.value_text.removeprefix("≈ ")
        # "48% (model estimate, ±7)" -> "model estimate ≈ 48% (±7)"
        m = re.match(r"^(\S+) \((model|probe) estimate(?:, (±[\d.]+\S*))?\)$", text)
        if m:
            value, source, spread = m.groups()
            text = f"{source} estimate ≈ {value}" + (f" ({spread})" if spread else "")
        else:
            text = f"model estimate ≈ {text}"
        parts.append(text)
    return "EF: " + " · ".join(parts) if parts else None


def finding_text(item: Any) -> str:
    """One finding in plain words: "Pacemaker: yes (probability 0.98)", "LV size: mild"."""
    if item.kind == "binary" and item.calibrated and item.assessable:
        answer = "yes" if item.present else "no"
        return f"{item.title}: {answer}" + (
            f" (probability {item.probability:.2f})" if item.probability is not None else ""
        )
    return item.phrase


def findings(items: Sequence[Any]) -> tuple[list[str], list[str]]:
    """(what a card shows: findings present, classes and non-EF estimates; every finding, for the
    details). Uncalibrated raw scores only ever appear in the details, marked as such."""
    shown, everything = [], []
    for item in items:
        if item.kind == "regression" and is_ef(item.task) and item.assessable:
            continue  # on the EF line
        everything.append(finding_text(item))
        if not item.assessable:
            continue  # "not seen in this view": in the details only
        if item.kind == "binary":
            if item.calibrated and item.present:
                shown.append(finding_text(item))
        else:
            shown.append(finding_text(item))
    return shown, everything


def card_markdown(hit: Any, items: Sequence[Any], report: str | None) -> str:
    """A result card's text: view and date first (what a reader scans for), then EF, then findings."""
    lines = [heading(hit.view, hit.study_date, bold=True)]
    ef = ef_line(items, report)
    if ef:
        lines.append(ef)
    shown, _ = findings(items)
    if shown:
        lines.append(" · ".join(shown))
    else:
        lines.append("no findings flagged by the model" if items else "no labels from this model")
    ref = [f"clip {hit.video_id}"]
    if hit.manufacturer:
        ref.append(hit.manufacturer)
    if hit.score is not None:
        ref.append(f"similarity {hit.score:.2f}")
    lines.append(" · ".join(ref))
    return "  \n".join(lines)


def run_summary(counts: dict[str, Any] | None) -> str:
    """An indexing run's counts in words ("53 clips found: 53 new, 0 failed · 848 frames in 47.7 s")."""
    if not counts:
        return "no counts recorded"
    parts = []
    if "found" in counts:
        kinds = [
            f"{counts[k]} {k}" for k in ("new", "updated", "unchanged", "failed", "missing") if counts.get(k)
        ]
        parts.append(f"{counts['found']} clips found" + (": " + ", ".join(kinds) if kinds else ""))
    if counts.get("frames") and counts.get("seconds") is not None:
        parts.append(f"{counts['frames']} frames embedded in {float(counts['seconds']):.1f} s")
    reports = counts.get("reports")
    if isinstance(reports, dict) and reports.get("rows"):
        parts.append(f"{reports['rows']} reports")
    if counts.get("model"):
        parts.append(f"model {counts['model']}")
    return " · ".join(parts) or "nothing to do"


def yes_no(value: bool | None) -> str:
    return NOT_RECORDED if value is None else ("yes" if value else "no")
