"""Reports CSV -> the reports table and the report-text space (video -> report retrieval).

The CSV has a ``report`` column and ``study_uid`` and/or ``accession`` (the archive's own export, or
``reports.csv`` of a synthetic archive). A row is matched to a study by Study UID, else by the
keyed hash of its accession number (the clear accession is never stored). Report text is cleaned
with :func:`echosearch.reports.clean_report` (the normalisation the models were trained on) and the
cleaned text is embedded. FAISS ids of the report space are report ids. Unchanged reports that
already have a vector are not embedded again.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from echosearch.batching import batches
from echosearch.errors import UsageError
from echosearch.index import Space
from echosearch.privacy import keyed_hash
from echosearch.reports import clean_report
from echosearch.store import queries as q
from echosearch.store.db import Database
from echosearch.store.schema import Report

log = logging.getLogger(__name__)


@dataclass
class ReportCounts:
    rows: int = 0
    embedded: int = 0
    unchanged: int = 0
    unmatched: int = 0


def read_reports_csv(path: Path) -> list[dict[str, str]]:
    """Rows with a ``report`` column and a ``study_uid`` or ``accession`` column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = {f.strip().lower() for f in reader.fieldnames or []}
            if "report" not in fields or not fields & {"study_uid", "accession"}:
                raise UsageError(f"{path}: needs a 'report' column and a 'study_uid' or 'accession' column")
            return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]
    except OSError as exc:
        raise UsageError(f"cannot read reports file {path}: {exc.strerror or exc}") from None


def _match(s, row: dict[str, str], site_key: bytes):
    study = q.find_study(s, row["study_uid"]) if row.get("study_uid") else None
    if study is None and row.get("accession"):
        study = q.find_study(s, keyed_hash(row["accession"], site_key))
    return study


def index_reports(
    rows: list[dict[str, str]], db: Database, site_key: bytes, space: Space, encode_text
) -> ReportCounts:
    """Store and embed the reports. Crash-safe in the writer's order: a report whose text changes
    loses its old vector (saved) before the new text commits; afterwards every report without a
    vector is embedded, so a killed run is completed by the next one."""
    counts = ReportCounts(rows=len(rows))
    index = space.load_index()
    with db.session() as s:
        matched = [(row, _match(s, row, site_key)) for row in rows]
        stale = [
            st.reports[0].id
            for row, st in matched
            if st is not None and st.reports and st.reports[0].text != row.get("report", "")
        ]
    if stale:
        index.remove(stale)
        space.save_index(index)
    with db.session() as s:
        for row, study in matched:
            text = row.get("report", "")
            study = _match(s, row, site_key) if study is not None else None
            if study is None or not text:
                counts.unmatched += 1
                continue
            old = study.reports[0] if study.reports else None
            if old is None or old.text != text:
                q.set_report(s, study.id, text, clean_report(text))
    with db.session() as s:
        todo = [(r.id, r.cleaned_text or "") for r in s.scalars(select(Report).order_by(Report.id))]
    todo = [(i, t) for i, t in todo if i not in index]
    counts.unchanged = max(0, counts.rows - counts.unmatched - len(todo))
    for part in batches(todo, 256):
        index.replace([i for i, _ in part], np.asarray(encode_text([t for _, t in part]), dtype=np.float32))
        counts.embedded += len(part)
    if todo:
        space.save_index(index)
    return counts


def missing_report_ids(db: Database, space: Space) -> int:
    """How many reports have no vector (the runner embeds them even without ``--reports``)."""
    index = space.load_index()
    with db.session() as s:
        return sum(1 for i in s.scalars(select(Report.id)) if i not in index)
