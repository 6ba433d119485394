"""``--where`` conditions as people type them ("ef < 40", "pacemaker = yes", "view = A4C",
"date >= 2021-01-01", "mrn = 12345") -> a :class:`~echosearch.store.queries.VideoFilter`."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from echosearch.errors import UsageError
from echosearch.store import queries as q

if TYPE_CHECKING:
    from echosearch.search.engine import Engine

_WHERE_RE = re.compile(r"^\s*([A-Za-z_][\w\-. ]*?)\s*(<=|>=|!=|==|=|<|>|~)\s*(.+?)\s*$")


def parse_where(conditions: Sequence[str], engine: Engine | None = None) -> q.VideoFilter:
    """Build a filter from ``--where`` conditions, e.g. ``"ef < 40"``, ``"pacemaker = yes"``,
    ``"pacemaker > 0.9"`` (a probability where the index has one), ``"lv_size >= moderate"``,
    ``"view = A4C"``, ``"date >= 2021-01-01"``, ``"manufacturer = GE"``, ``"study = UID"``,
    ``"mrn = 12345"`` (hashed with the site key). Anything else is a label, named by its task name or
    an alias (:mod:`echosearch.labels`). With an ``engine`` an unknown label is a :class:`UsageError`
    listing the index's labels; without one, a label condition is taken as written (``task op number``).
    """
    f = q.VideoFilter()
    labels: list[q.LabelCondition] = []
    catalog = engine.label_catalog() if engine is not None else None
    for text in conditions:
        m = _WHERE_RE.match(text)
        if not m:
            raise UsageError(f"cannot read condition {text!r} (expected e.g. 'ef < 40' or 'view = A4C')")
        key, op, value = m.group(1).strip().lower(), m.group(2), m.group(3).strip().strip("'\"")
        if key in ("date", "study_date"):
            _date_condition(f, op, value)
        elif key == "view":
            f.views = [*f.views, *[v.strip() for v in value.split("|")]]
        elif key == "manufacturer":
            f.manufacturers = [*f.manufacturers, value]
        elif key in ("study", "study_uid"):
            f.study_uids = [*f.study_uids, value]
        elif key in ("mrn", "patient"):
            key_hash = engine.keyed(value) if engine is not None else None
            f.patient_key = key_hash or "no-such-patient"
        elif catalog is not None:
            from echosearch.labels.naming import conditions_for

            tasks, stored, thresholds = catalog
            labels.extend(conditions_for(m.group(1).strip(), op, value, tasks, stored, thresholds))
        else:
            labels.append(q.LabelCondition.parse(f"{m.group(1).strip()} {op} {value}"))
    f.labels = labels
    return f


def _date_condition(f: q.VideoFilter, op: str, value: str) -> None:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"bad date {value!r} (use YYYY-MM-DD)") from None
    if op in (">", ">="):
        f.date_from = day
    elif op in ("<", "<="):
        f.date_to = day
    else:
        f.date_from = f.date_to = day
