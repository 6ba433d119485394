"""The store's queries: upserts for the indexer, lookups for the engine, and filters -> video ids.

All functions take an open :class:`sqlalchemy.orm.Session` (``with db.session() as s:``) and leave
commit to the caller, so that the indexer can write one batch in one transaction. Upserts are plain
select-then-insert/update (portable: no dialect-specific ON CONFLICT), which is safe because the
data dir has a single writer (the indexer).
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import Row, Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from echosearch.batching import SQL_IN_BATCH, batches
from echosearch.errors import UsageError
from echosearch.store.schema import (
    STATUS_INDEXED,
    STATUS_REMOVED,
    AuditLog,
    Base,
    EmbeddingSpace,
    Failure,
    IndexRun,
    Label,
    Patient,
    Report,
    SourceRoot,
    Study,
    Video,
    utcnow,
)
from echosearch.store.types import stored_form

# ---------------------------------------------------------------- patients, studies, reports


def get_or_create_patient(s: Session, key: str) -> Patient:
    """The patient with keyed hash ``key`` (created if new)."""
    p = s.scalar(select(Patient).where(Patient.key == key))
    if p is None:
        p = Patient(key=key)
        s.add(p)
        s.flush()
    return p


def upsert_study(
    s: Session,
    study_uid: str,
    *,
    accession_key: str | None = None,
    study_date: dt.date | None = None,
    patient_key: str | None = None,
    description: str | None = None,
) -> Study:
    """Insert or update a study by its Study Instance UID; None arguments leave fields unchanged."""
    st = s.scalar(select(Study).where(Study.study_uid == study_uid))
    if st is None:
        st = Study(study_uid=study_uid)
        s.add(st)
    if accession_key is not None:
        st.accession_key = accession_key
    if study_date is not None:
        st.study_date = study_date
    if description is not None:
        st.description = description
    if patient_key is not None:
        st.patient = get_or_create_patient(s, patient_key)
    s.flush()
    return st


def find_study(s: Session, uid_or_accession_key: str) -> Study | None:
    """A study by its Study UID, or else by its (already hashed) accession key."""
    st = s.scalar(select(Study).where(Study.study_uid == uid_or_accession_key))
    if st is None:
        st = s.scalars(select(Study).where(Study.accession_key == uid_or_accession_key)).first()
    return st


def studies_of_patient(s: Session, patient_id: int) -> list[Study]:
    """All studies of one patient, oldest first."""
    q = select(Study).where(Study.patient_id == patient_id).order_by(Study.study_date, Study.id)
    return list(s.scalars(q))


def set_report(s: Session, study_id: int, text: str, cleaned_text: str | None = None) -> Report:
    """Set a study's report (one per study: an existing one is replaced in place)."""
    r = s.scalars(select(Report).where(Report.study_id == study_id).order_by(Report.id)).first()
    if r is None:
        r = Report(study_id=study_id, text=text)
        s.add(r)
    r.text, r.cleaned_text = text, cleaned_text
    s.flush()
    return r


def reports_by_ids(s: Session, report_ids: Iterable[int]) -> dict[int, Report]:
    """Reports by id (the report space's FAISS ids are report ids)."""
    ids = [int(i) for i in report_ids]
    return {r.id: r for r in s.scalars(select(Report).where(Report.id.in_(ids)))} if ids else {}


# ---------------------------------------------------------------- videos

VIDEO_FIELDS = frozenset(c.key for c in Video.__table__.columns) - {"id", "path"}


def upsert_video(s: Session, path: str, **fields: Any) -> Video:
    """Insert or update a video by its path. ``fields`` are Video columns (``study_id``, ``view``...).

    Returns the (flushed) Video, so ``video.id`` is its FAISS id.
    """
    unknown = set(fields) - VIDEO_FIELDS
    if unknown:
        raise UsageError(f"unknown video fields: {', '.join(sorted(unknown))}")
    v = s.scalar(select(Video).where(Video.path == path))
    if v is None:
        v = Video(path=path)
        s.add(v)
    for k, val in fields.items():
        setattr(v, k, val)
    s.flush()
    return v


def video_by_path(s: Session, path: str) -> Video | None:
    return s.scalar(select(Video).where(Video.path == path))


def video_by_sop_uid(s: Session, sop_uid: str) -> Video | None:
    return s.scalars(select(Video).where(Video.sop_uid == sop_uid).order_by(Video.id)).first()


def videos_of_study(s: Session, study_id: int, *, indexed_only: bool = True) -> list[Video]:
    q = select(Video).where(Video.study_id == study_id)
    if indexed_only:
        q = q.where(Video.status == STATUS_INDEXED)
    return list(s.scalars(q.order_by(Video.id)))


def study_clips(s: Session, video_ids: Iterable[int]) -> dict[int, list[int]]:
    """``{video_id: the indexed clip ids of its study, itself included}`` for each given clip."""
    study_of: dict[int, int] = {}
    for batch in batches([int(i) for i in video_ids], SQL_IN_BATCH):
        study_of.update(s.execute(select(Video.id, Video.study_id).where(Video.id.in_(batch))).all())
    members: dict[int, list[int]] = {}
    for batch in batches(sorted(set(study_of.values())), SQL_IN_BATCH):
        q = select(Video.study_id, Video.id).where(Video.study_id.in_(batch), Video.status == STATUS_INDEXED)
        for study_id, video_id in s.execute(q.order_by(Video.id)):
            members.setdefault(study_id, []).append(video_id)
    return {v: members.get(study, [v]) for v, study in study_of.items()}


def views_of(s: Session, video_ids: Iterable[int]) -> dict[int, str | None]:
    """``{video_id: videos.view}`` (the model's view task's pick, else the DICOM's, else None)."""
    out: dict[int, str | None] = {}
    for batch in batches([int(i) for i in video_ids], SQL_IN_BATCH):
        out.update(s.execute(select(Video.id, Video.view).where(Video.id.in_(batch))).all())
    return out


def is_unchanged(s: Session, path: str, size: int, mtime: float) -> bool:
    """True when ``path`` is already indexed with this size and mtime (the incremental-index test)."""
    v = video_by_path(s, path)
    return v is not None and v.status == STATUS_INDEXED and v.size == size and v.mtime == mtime


def mark_indexed(s: Session, video_ids: Iterable[int], when: dt.datetime | None = None) -> None:
    ids = [int(i) for i in video_ids]
    if ids:
        s.execute(
            update(Video).where(Video.id.in_(ids)).values(status=STATUS_INDEXED, indexed_at=when or utcnow())
        )


def mark_removed(s: Session, video_ids: Iterable[int]) -> None:
    """Mark videos removed (the row stays so ids are never reused; drop the vectors separately)."""
    ids = [int(i) for i in video_ids]
    if ids:
        s.execute(update(Video).where(Video.id.in_(ids)).values(status=STATUS_REMOVED))


def indexed_video_ids(s: Session) -> np.ndarray:
    """Ids of all videos with status 'indexed' (int64, sorted) — what ``verify`` compares to FAISS."""
    ids = s.scalars(select(Video.id).where(Video.status == STATUS_INDEXED).order_by(Video.id)).all()
    return np.asarray(ids, dtype=np.int64)


def indexed_video_by_sha256(s: Session, sha256: str) -> Video | None:
    """The indexed clip with this content hash (a file given to a query that is already indexed)."""
    return s.scalars(select(Video).where(Video.sha256 == sha256, Video.status == STATUS_INDEXED)).first()


def patient_by_key(s: Session, key: str) -> Patient | None:
    return s.scalars(select(Patient).where(Patient.key == key)).first()


def studies_by_uids(s: Session, uids: Iterable[str]) -> dict[str, Study]:
    wanted = list(dict.fromkeys(uids))
    if not wanted:
        return {}
    return {st.study_uid: st for st in s.scalars(select(Study).where(Study.study_uid.in_(wanted)))}


def indexed_video_study_uids(s: Session) -> list[tuple[int, str]]:
    """(video id, study UID) of every indexed clip that has a study, by study then id: the rows
    study vectors are averaged from."""
    stmt = (
        select(Video.id, Study.study_uid)
        .join(Study, Video.study_id == Study.id)
        .where(Video.status == STATUS_INDEXED)
        .order_by(Study.study_uid, Video.id)
    )
    return [(int(vid), uid) for vid, uid in s.execute(stmt).all()]


def reports_of_studies(s: Session, study_ids: Iterable[int]) -> dict[int, Report]:
    """{study id: its report} for the studies that have one."""
    ids = sorted(set(study_ids))
    if not ids:
        return {}
    return {r.study_id: r for r in s.scalars(select(Report).where(Report.study_id.in_(ids)))}


def archive_facets(s: Session) -> dict[str, Any]:
    """What a filter form can offer: the indexed clips' views and manufacturers, the study dates' range."""
    indexed = Video.status == STATUS_INDEXED
    views = sorted(v for v in s.scalars(select(Video.view).where(indexed).distinct()) if v)
    makers = sorted(m for m in s.scalars(select(Video.manufacturer).where(indexed).distinct()) if m)
    lo, hi = s.execute(select(func.min(Study.study_date), func.max(Study.study_date))).one()
    return {"views": views, "manufacturers": makers, "date_min": lo, "date_max": hi}


# ---------------------------------------------------------------- spaces and labels


def upsert_space(
    s: Session,
    name: str,
    *,
    model_name: str,
    dim: int,
    model_version: str | None = None,
    preprocessing: dict | None = None,
    kind: str = "video",
) -> EmbeddingSpace:
    """Register an embedding space, or return it when it exists with the same model and dim.

    Raises UsageError when a space of that name exists for another model or dimension (its vectors
    would not be comparable: make a new space instead).
    """
    sp = s.scalar(select(EmbeddingSpace).where(EmbeddingSpace.name == name))
    if sp is None:
        sp = EmbeddingSpace(
            name=name,
            kind=kind,
            model_name=model_name,
            model_version=model_version,
            preprocessing=preprocessing,
            dim=dim,
        )
        s.add(sp)
        s.flush()
        return sp
    if (sp.model_name, sp.model_version, sp.dim) != (model_name, model_version, dim):
        raise UsageError(
            f"space {name!r} holds {sp.model_name} {sp.model_version} (dim {sp.dim}), "
            f"not {model_name} {model_version} (dim {dim})"
        )
    return sp


def get_space(s: Session, name: str) -> EmbeddingSpace | None:
    return s.scalar(select(EmbeddingSpace).where(EmbeddingSpace.name == name))


def list_spaces(s: Session) -> list[EmbeddingSpace]:
    return list(s.scalars(select(EmbeddingSpace).order_by(EmbeddingSpace.id)))


def upsert_labels(
    s: Session, space_id: int, rows: Iterable[tuple[int, str, float | None, str | None]]
) -> int:
    """Write zero-shot labels: rows of ``(video_id, task, value, category)``; returns the count.

    Existing (video, space, task) labels are overwritten.
    """
    rows = list(rows)
    if not rows:
        return 0
    vids = sorted({int(r[0]) for r in rows})
    existing: dict[tuple[int, str], Label] = {}
    for batch in batches(vids, SQL_IN_BATCH):
        q = select(Label).where(Label.space_id == space_id, Label.video_id.in_(batch))
        existing.update({(lb.video_id, lb.task): lb for lb in s.scalars(q)})
    for vid, task, value, category in rows:
        task = stored_form(Label.task, task)  # as ``existing`` holds it (a long name is stored cut)
        lb = existing.get((int(vid), task))
        val = None if value is None else float(value)
        if lb is None:
            lb = Label(video_id=int(vid), space_id=space_id, task=task, value=val, category=category)
            s.add(lb)
            existing[(int(vid), task)] = lb
        else:
            lb.value, lb.category = val, category
    s.flush()
    return len(rows)


def labels_for(
    s: Session, video_ids: Iterable[int], space_id: int | None = None, tasks: Iterable[str] | None = None
) -> dict[int, dict[str, float | str | None]]:
    """``{video_id: {task: value}}`` (categorical tasks give their class name); ``tasks``: only these
    labels (a ranking reads a few of a clip's ~20, for thousands of candidates)."""
    ids = [int(i) for i in video_ids]
    out: dict[int, dict[str, float | str | None]] = {i: {} for i in ids}
    wanted = sorted(set(tasks)) if tasks is not None else None
    for batch in batches(ids, SQL_IN_BATCH):
        # plain rows, not Label objects: every result page reads ~15 labels a clip (halves hits.videos)
        q = select(Label.video_id, Label.task, Label.value, Label.category).where(Label.video_id.in_(batch))
        if space_id is not None:
            q = q.where(Label.space_id == space_id)
        if wanted is not None:
            q = q.where(Label.task.in_(wanted))
        for video_id, task, value, category in s.execute(q.order_by(Label.space_id)):
            out[video_id][task] = category if category is not None else value
    return out


# ---------------------------------------------------------------- runs, failures, audit


def label_names(s: Session, space_id: int | None) -> list[str]:
    """The label names (tasks and derived ``TASK.positive``-style names) a space stores."""
    stmt = select(Label.task).distinct()
    if space_id is not None:
        stmt = stmt.where(Label.space_id == space_id)
    return sorted(s.scalars(stmt).all())


def label_values(s: Session, task: str, space_id: int | None) -> np.ndarray:
    """Every indexed clip's value of one numeric label."""
    stmt = select(Label.value).join(Video, Video.id == Label.video_id)
    stmt = stmt.where(Label.task == task, Video.status == STATUS_INDEXED, Label.value.is_not(None))
    if space_id is not None:
        stmt = stmt.where(Label.space_id == space_id)
    return np.asarray(s.scalars(stmt).all(), dtype=np.float32)


#: Most clips read to learn how a label's scores spread within each view (a sample past that).
VIEW_SAMPLE = 100_000


def label_values_by_view(s: Session, task: str, space_id: int | None) -> dict[str | None, np.ndarray]:
    """One numeric label's values, sorted, per view (None: no view stored), read from every indexed
    clip or, in a larger archive, from every m-th clip id (about :data:`VIEW_SAMPLE`: a percentile
    needs a sample, not ten million rows at a query server's first search)."""
    stmt = select(Video.view, Label.value).join(Video, Video.id == Label.video_id)
    stmt = stmt.where(Label.task == task, Video.status == STATUS_INDEXED, Label.value.is_not(None))
    if space_id is not None:
        stmt = stmt.where(Label.space_id == space_id)
    total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    if total > VIEW_SAMPLE:
        stmt = stmt.where(Label.video_id % (total // VIEW_SAMPLE + 1) == 0)
    out: dict[str | None, list[float]] = {}
    for view, value in s.execute(stmt):
        out.setdefault(view, []).append(value)
    return {view: np.sort(np.asarray(values, dtype=np.float32)) for view, values in out.items()}


def label_category_counts(s: Session, task: str, space_id: int | None) -> dict[str, int]:
    """Indexed clips per class of a categorical label, in class order."""
    stmt = select(Label.category, func.min(Label.value), func.count()).join(Video, Video.id == Label.video_id)
    stmt = stmt.where(Label.task == task, Video.status == STATUS_INDEXED, Label.category.is_not(None))
    if space_id is not None:
        stmt = stmt.where(Label.space_id == space_id)
    rows = s.execute(stmt.group_by(Label.category)).all()
    return {name: int(n) for name, _index, n in sorted(rows, key=lambda r: (r[1] is None, r[1]))}


def start_run(s: Session, args: Mapping[str, Any] | None = None) -> IndexRun:
    run = IndexRun(args=dict(args or {}))
    s.add(run)
    s.flush()
    return run


def finish_run(s: Session, run_id: int, counts: Mapping[str, Any], status: str = "ok") -> IndexRun:
    run = s.get(IndexRun, run_id)
    if run is None:
        raise UsageError(f"no index run {run_id}")
    run.finished_at, run.counts, run.status = utcnow(), dict(counts), status
    s.flush()
    return run


def record_failure(
    s: Session, path: str, sha256: str | None, reason: str, kind: str | None = None
) -> Failure:
    """Remember that ``path`` (with this content) failed; repeated failures bump count and last_seen."""
    f = s.scalar(select(Failure).where(Failure.path == path, _eq_or_null(Failure.sha256, sha256)))
    now = utcnow()
    if f is None:
        f = Failure(path=path, sha256=sha256, reason=reason, kind=kind, first_seen=now, last_seen=now)
        s.add(f)
    else:
        f.reason, f.kind, f.last_seen, f.count = reason, kind, now, f.count + 1
    s.flush()
    return f


def known_failure(s: Session, path: str, sha256: str | None) -> Failure | None:
    """The failure recorded for this path and content, if any (the indexer skips those)."""
    return s.scalar(select(Failure).where(Failure.path == path, _eq_or_null(Failure.sha256, sha256)))


def clear_failures(s: Session, path: str) -> None:
    for f in s.scalars(select(Failure).where(Failure.path == path)):
        s.delete(f)


def audit(
    s: Session,
    action: str,
    query: Mapping[str, Any] | None = None,
    who: str | None = None,
    at: dt.datetime | None = None,
) -> AuditLog:
    """Append to the audit log (who ran which query when; ``at``: when it was asked, default now)."""
    entry = AuditLog(
        action=action, query=dict(query) if query is not None else None, who=who, at=at or utcnow()
    )
    s.add(entry)
    s.flush()
    return entry


def audit_rows(
    s: Session,
    *,
    limit: int,
    offset: int = 0,
    who: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
) -> tuple[list[AuditLog], int]:
    """Audit rows, newest first, and how many match in all."""
    stmt = select(AuditLog)
    if who is not None:
        stmt = stmt.where(AuditLog.who == who)
    if action is not None:
        stmt = stmt.where(AuditLog.action == action)
    if since is not None:
        stmt = stmt.where(AuditLog.at >= since)
    total = int(s.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = s.scalars(stmt.order_by(AuditLog.id.desc()).offset(offset).limit(limit))
    return list(rows), total


def failure_rows(
    s: Session, *, limit: int, offset: int = 0, kinds: Sequence[str] = ()
) -> tuple[list[Failure], int]:
    """Files the indexer could not read, most recent first, and how many in all."""
    stmt = select(Failure)
    if kinds:
        stmt = stmt.where(Failure.kind.in_(list(kinds)))
    total = int(s.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = s.scalars(stmt.order_by(Failure.last_seen.desc(), Failure.id.desc()).offset(offset).limit(limit))
    return list(rows), total


def failures_by_kind(s: Session) -> dict[str, int]:
    return {kind: int(n) for kind, n in s.execute(select(Failure.kind, func.count()).group_by(Failure.kind))}


def last_runs(s: Session, n: int = 5) -> list[dict[str, Any]]:
    """The latest index runs, newest first, as plain dicts."""
    runs = s.scalars(select(IndexRun).order_by(IndexRun.id.desc()).limit(n)).all()
    return [
        {"id": r.id, "started_at": r.started_at, "finished_at": r.finished_at, "status": r.status,
         "counts": r.counts}
        for r in runs
    ]  # fmt: skip


def _eq_or_null(col, value):  # noqa: ANN001, ANN202
    return col.is_(None) if value is None else col == value


def table_counts(s: Session) -> dict[str, int]:
    """Rows per table (for ``echosearch stats``)."""
    return {
        name: int(s.scalar(select(func.count()).select_from(table)) or 0)
        for name, table in Base.metadata.tables.items()
    }


# ---------------------------------------------------------------- source roots (echosearch.sources)


def source_roots(s: Session) -> dict[int, str]:
    """{root id: its folder} of every registered source root."""
    return {int(i): p for i, p in s.execute(select(SourceRoot.id, SourceRoot.path).order_by(SourceRoot.id))}


def add_source_root(s: Session, path: str) -> int:
    """Register ``path`` (an absolute folder, as stored) as a source root; its id."""
    row = SourceRoot(path=path)
    s.add(row)
    s.flush()
    return row.id


def set_source_root_path(s: Session, root_id: int, path: str) -> None:
    row = s.get(SourceRoot, root_id)
    if row is None:
        raise UsageError(f"no source root {root_id}")
    row.path = path
    s.flush()


def clips_per_root(s: Session) -> tuple[dict[int, int], int]:
    """({root id: indexed clips stored under it}, indexed clips still stored with an absolute path)."""
    keys = s.scalars(select(Video.path).where(Video.status == STATUS_INDEXED))
    per: dict[int, int] = {}
    absolute = 0
    for key in keys:
        m = re.match(r"root:([0-9]+)/", key)
        if m:
            per[int(m.group(1))] = per.get(int(m.group(1)), 0) + 1
        elif key.startswith("/"):
            absolute += 1
    return per, absolute


def rekey_prefix(s: Session, old: str, new: str) -> int:
    """Rewrite every ``videos.path`` and ``failures.path`` that starts with ``old`` to start with
    ``new`` instead; how many rows changed. A video whose new key is taken already keeps its old
    one; a failure whose new key is recorded already is dropped (the newer record stands)."""
    changed = 0
    for table, extra in ((Video, ()), (Failure, (Failure.sha256,))):
        rows = s.execute(
            select(table.id, table.path, *extra).where(table.path.startswith(old, autoescape=True))
        ).all()
        rows = [r for r in rows if r.path.startswith(old)]  # LIKE ignores case on SQLite
        if not rows:
            continue
        targets = [new + r.path[len(old) :] for r in rows]
        taken: set = set()
        for chunk in batches(targets, SQL_IN_BATCH):
            taken |= {tuple(t) for t in s.execute(select(table.path, *extra).where(table.path.in_(chunk)))}
        updates, drop = [], []
        for r, target in zip(rows, targets, strict=True):
            if (target, *r[2:]) not in taken:
                updates.append({"id": r.id, "path": target})
            elif table is Failure:
                drop.append(r.id)
        if updates:
            s.execute(update(table), updates)
        for chunk in batches(drop, SQL_IN_BATCH):
            s.execute(delete(table).where(table.id.in_(chunk)))
        changed += len(updates)
    s.flush()
    return changed


# ---------------------------------------------------------------- filters

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq}
_COND_RE = re.compile(r"^\s*([A-Za-z_][\w\- ]*?)\s*(<=|>=|<|>|==|=)\s*(-?\d+(?:\.\d*)?|-?\.\d+)\s*$")


@dataclass(frozen=True)
class LabelCondition:
    """A condition on one zero-shot label: ``task op value``, e.g. ``ef < 40``, ``pacemaker > 0.5``.

    Task names match case-insensitively. A video without that label does not match.
    """

    task: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise UsageError(f"unknown comparison {self.op!r} (use <, <=, >, >=, =)")

    @classmethod
    def parse(cls, text: str) -> LabelCondition:
        """Parse ``"EF < 40"`` / ``"pacemaker>0.5"``; raises UsageError on anything else."""
        m = _COND_RE.match(text)
        if not m:
            raise UsageError(f"cannot read label condition {text!r} (expected e.g. 'ef < 40')")
        op = "=" if m.group(2) == "==" else m.group(2)
        return cls(task=m.group(1).strip(), op=op, value=float(m.group(3)))


@dataclass
class VideoFilter:
    """What a search may return. Every field is optional; set fields are ANDed.

    ``date_from``/``date_to`` are inclusive study dates; ``views``/``manufacturers`` match any of the
    given values, ``exclude_views`` none of them (manufacturer case-insensitively, as a prefix: "GE" matches "GE Healthcare");
    ``labels`` are label conditions (in ``label_space_id`` when given, else any space);
    ``patient_key`` is a keyed hash; ``study_uids`` restrict to studies; ``exclude_study_uids`` and
    ``exclude_video_ids`` remove items (video->video search excludes the query's own study).
    Only videos with status 'indexed' are ever returned.
    """

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    views: Sequence[str] = ()
    exclude_views: Sequence[str] = ()
    manufacturers: Sequence[str] = ()
    labels: Sequence[LabelCondition] = ()
    label_space_id: int | None = None
    patient_key: str | None = None
    study_uids: Sequence[str] = ()
    exclude_study_uids: Sequence[str] = ()
    exclude_video_ids: Sequence[int] = field(default_factory=tuple)

    def without_exclusions(self) -> VideoFilter:
        """The same filter less its exclusions (``exclude_study_uids``, ``exclude_video_ids``)."""
        return replace(self, exclude_study_uids=(), exclude_video_ids=())

    def is_empty(self) -> bool:
        """True when the filter lets every indexed video through (search can skip the id set)."""
        return not any(
            (
                self.date_from,
                self.date_to,
                self.views,
                self.exclude_views,
                self.manufacturers,
                self.labels,
                self.patient_key,
                self.study_uids,
                self.exclude_study_uids,
                self.exclude_video_ids,
            )
        )


def filter_select(f: VideoFilter) -> Select:
    """``SELECT videos.id`` for a filter (compose it or run it with :func:`filter_video_ids`)."""
    q = select(Video.id).where(Video.status == STATUS_INDEXED)
    needs_study = f.date_from or f.date_to or f.patient_key or f.study_uids or f.exclude_study_uids
    if needs_study:
        q = q.join(Study, Video.study_id == Study.id)
    if f.date_from:
        q = q.where(Study.study_date >= f.date_from)
    if f.date_to:
        q = q.where(Study.study_date <= f.date_to)
    if f.patient_key:
        q = q.join(Patient, Study.patient_id == Patient.id).where(Patient.key == f.patient_key)
    if f.study_uids:
        q = q.where(Study.study_uid.in_(list(f.study_uids)))
    if f.exclude_study_uids:
        q = q.where(Study.study_uid.not_in(list(f.exclude_study_uids)))
    if f.views:
        q = q.where(func.lower(Video.view).in_([v.lower() for v in f.views]))
    if f.exclude_views:  # a clip without a view is not excluded: nothing says it is that view
        q = q.where(
            or_(Video.view.is_(None), func.lower(Video.view).not_in([v.lower() for v in f.exclude_views]))
        )
    if f.manufacturers:
        q = q.where(
            or_(*[func.lower(Video.manufacturer).like(_like_prefix(m), escape="\\") for m in f.manufacturers])
        )
    for cond in f.labels:
        sub = select(Label.video_id).where(
            func.lower(Label.task) == cond.task.lower(), _OPS[cond.op](Label.value, cond.value)
        )
        if f.label_space_id is not None:
            sub = sub.where(Label.space_id == f.label_space_id)
        q = q.where(Video.id.in_(sub))
    if f.exclude_video_ids:
        q = q.where(Video.id.not_in([int(i) for i in f.exclude_video_ids]))
    return q


def _like_prefix(text: str) -> str:
    """A LIKE pattern matching values that start with ``text`` as typed: '%' and '_' are literal."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def excluded_video_ids(s: Session, f: VideoFilter) -> np.ndarray:
    """The ids a filter's exclusions name: its ``exclude_video_ids`` and every clip of its
    ``exclude_study_uids`` (a handful: cheaper to drop from a search than to allow everything else)."""
    ids = {int(i) for i in f.exclude_video_ids}
    if f.exclude_study_uids:
        stmt = select(Video.id).join(Study, Video.study_id == Study.id)
        ids.update(s.scalars(stmt.where(Study.study_uid.in_(list(f.exclude_study_uids)))))
    return np.asarray(sorted(ids), dtype=np.int64)


def study_uid_of_video(s: Session, video_id: int) -> str | None:
    """The study UID of one clip (None: no such clip, or no study): what video -> video needs to
    leave the query's own study out, without reading the whole card."""
    stmt = select(Study.study_uid).join(Video, Video.study_id == Study.id).where(Video.id == int(video_id))
    return s.scalars(stmt).first()


def video_cards(s: Session, video_ids: Iterable[int]) -> dict[int, Row]:
    """What a result card shows of each clip and its study and report, in one query (plain rows,
    not ORM objects: building a page of hits is on every search's path)."""
    cols = (
        Video.id, Video.path, Video.view, Video.manufacturer, Video.frames, Video.fps, Video.study_id,
        Video.thumbnail_path, Video.preview_path, Video.series_uid, Video.sop_uid, Study.study_uid,
        Study.study_date, Report.text.label("report"),
    )  # fmt: skip
    out: dict[int, Row] = {}
    for batch in batches([int(i) for i in video_ids], SQL_IN_BATCH):
        stmt = (
            select(*cols)
            .outerjoin(Study, Video.study_id == Study.id)
            .outerjoin(Report, Report.study_id == Study.id)
            .where(Video.id.in_(batch))
        )
        out.update({row.id: row for row in s.execute(stmt)})
    return out


def filter_video_ids(s: Session, f: VideoFilter | None) -> np.ndarray | None:
    """The sorted int64 ids of the indexed videos that pass ``f``; None when ``f`` filters nothing.

    Hand the result to ``VectorIndex.search(..., ids=...)`` (None means search everything).
    """
    if f is None or f.is_empty():
        return None
    return np.asarray(s.scalars(filter_select(f).order_by(Video.id)).all(), dtype=np.int64)
