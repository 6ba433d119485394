"""Reconcile the database with the vector files: what ``echosearch verify`` checks and ``--repair`` fixes.

The database is the source of truth (see :mod:`echosearch.indexer.writer` for the write order). For a video
space, every indexed video must have frames in the frame store and a vector in FAISS, and nothing
else may be there. For a report space, every report must have a vector and nothing else. Repair:

* extra vectors or frames (rows that were never committed, or pruned) are removed;
* a missing video vector is rebuilt from the frame store (normalised mean of the frames, the
  encoder's own recipe, so the index matches what a fresh run gives up to float16 rounding);
* a video without frames is set back to ``pending`` so the next ``echosearch index`` re-reads it;
* a missing report vector is returned as "needs re-embedding" (only the indexer has the model).

Beyond ids, ``verify`` checks that what is there is intact: SQLite's ``integrity_check``; every
frame record against its shard (the shard exists and is long enough, the rows match the CRC-32
recorded when they were written, the values are finite); that ``index.faiss`` can be read and holds
finite vectors; that ``space.json`` and ``frames/meta.json`` can be read and agree with the
database. Repair never destroys what is intact: a lost or damaged ``map.log`` is rebuilt from its
checksummed copy ``map.sums``; an unreadable ``index.faiss`` is rebuilt from the frame store;
metadata files are rewritten from the database; damaged frames are dropped, and only clips whose
frames are really gone are re-read from the archive by the next ``echosearch index`` (a clip that
kept its vector stays searchable meanwhile). What ``--repair`` cannot fix (a damaged SQLite file)
is said, with what to do.

The indexer runs the repair at the start of every run, which is what makes a kill -9 harmless.

Torn tails: a kill during an append can leave a partial float16 row at the end of a frame shard
or a partial record at the end of ``map.log``; later appends would then be misaligned, so both
are cut back to whole rows/records before the frame store is opened.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select, update

from echosearch.batching import batches
from echosearch.fsutil import atomic_write_text
from echosearch.index import Space
from echosearch.index.faiss_index import VectorIndex, VectorIndexError
from echosearch.index.frames import DEFAULT_SHARD_ROWS, REC, SUM_REC
from echosearch.index.vectorfile import VectorFileError
from echosearch.store import queries as q
from echosearch.store.db import Database
from echosearch.store.schema import STATUS_INDEXED, STATUS_PENDING, Report, Video

log = logging.getLogger(__name__)


@dataclass
class SpaceCheck:
    """How one space compares with the database (id lists are capped for display)."""

    space: str
    kind: str
    db_count: int
    index_count: int
    frames_count: int | None
    missing_in_index: list[int] = field(default_factory=list)
    extra_in_index: list[int] = field(default_factory=list)
    missing_frames: list[int] = field(default_factory=list)
    extra_frames: list[int] = field(default_factory=list)
    damaged_frames: list[int] = field(default_factory=list)
    damage: list[str] = field(default_factory=list)  # files found damaged, one line each
    repaired: dict[str, int] = field(default_factory=dict)

    ID_LISTS = ("missing_in_index", "extra_in_index", "missing_frames", "extra_frames", "damaged_frames")

    @property
    def ok(self) -> bool:
        return self.problems == 0

    @property
    def problems(self) -> int:
        return sum(len(getattr(self, k)) for k in self.ID_LISTS) + len(self.damage)

    def to_dict(self, cap: int = 20) -> dict:
        d = asdict(self)
        for key in self.ID_LISTS:
            d[key + "_count"] = len(d[key])
            d[key] = d[key][:cap]
        d["ok"] = self.ok
        return d


def trim_torn_tails(frames_dir: Path, dim: int) -> int:
    """Cut a partial last row off every shard and a partial last record off ``map.log``; bytes cut."""
    cut = 0
    targets = [(p, 2 * dim) for p in frames_dir.glob("shard-*.f16")]
    targets += [(frames_dir / "map.log", 8 * REC), (frames_dir / "map.sums", 8 * SUM_REC)]
    for path, unit in targets:
        if not path.is_file():
            continue
        size = path.stat().st_size
        if size % unit:
            with open(path, "r+b") as f:
                f.truncate(size - size % unit)
            cut += size % unit
            log.warning("cut a torn tail of %d bytes off %s", size % unit, path)
    return cut


def _expected_video_ids(db: Database, space_ids: set[int], multi: bool) -> np.ndarray:
    with db.session() as s:
        ids = q.indexed_video_ids(s)
    if multi:  # several models: a space is only expected to hold the videos it was given
        ids = np.intersect1d(ids, np.fromiter(space_ids, np.int64, len(space_ids)))
    return ids


def _frames_meta_damage(space: Space, repair: bool) -> str | None:
    """``frames/meta.json`` readable and of the space's dim; with ``repair`` rewritten when not."""
    root = space.frames_dir
    meta = root / "meta.json"
    if not root.is_dir():
        return None
    try:
        info = json.loads(meta.read_text())
        if int(info["dim"]) == space.info.dim and int(info["shard_rows"]) > 0:
            return None
        why = f"{meta} says dim {info['dim']}, the space has {space.info.dim}"
    except FileNotFoundError:
        if not any(root.glob("shard-*.f16")):
            return None  # nothing stored yet
        why = f"{meta} is missing"
    except (ValueError, KeyError, TypeError) as exc:
        why = f"{meta} is unreadable ({exc})"
    if repair:
        shards = sorted(root.glob("shard-*.f16"))
        rows = shards[0].stat().st_size // (2 * space.info.dim) if len(shards) > 1 else DEFAULT_SHARD_ROWS
        atomic_write_text(meta, json.dumps({"dim": space.info.dim, "shard_rows": int(rows)}))
    return why


def _load_index_or_damage(
    space: Space, expect_vectors: bool, deep: bool = True
) -> tuple[VectorIndex, str | None]:
    """The space's index, or an empty one and what is wrong with the file (missing while the
    database has vectors for it, unreadable, or holding non-finite vectors)."""
    path = space.index_path
    if not path.is_file():
        damage = f"{path} is missing" if expect_vectors else None
        return VectorIndex(space.info.dim, space.index_config), damage
    try:
        index = space.load_index()
    except (VectorIndexError, OSError, RuntimeError) as exc:
        return VectorIndex(space.info.dim, space.index_config), f"{path} is unreadable ({exc})"
    ids = index.ids() if deep else np.empty(0, np.int64)
    try:
        for start in range(0, ids.size, 65536):
            if not np.isfinite(index.reconstruct(ids[start : start + 65536])).all():
                return VectorIndex(
                    space.info.dim, space.index_config
                ), f"{path} holds NaN or infinite vectors"
    except VectorFileError as exc:  # a compressed index whose exact vectors lost rows
        return VectorIndex(space.info.dim, space.index_config), f"{path}: {exc}"
    except Exception as exc:  # noqa: BLE001 - an index kind that cannot reconstruct: ids still checked
        log.debug("cannot read the vectors of %s back: %s", path, exc)
    return index, None


def check_video_space(
    db: Database, space: Space, *, multi: bool = False, repair: bool = False, deep: bool = True
) -> SpaceCheck:
    """Compare a video space with the database and check its files; with ``repair`` fix it as the
    module doc says. ``deep``: also read every frame row and vector back (checksums, finite values);
    ``verify`` does, the indexer's start-of-run repair (which must stay fast on a big archive) not."""
    damage: list[str] = []
    repaired: dict[str, int] = {}
    if repair:
        trim_torn_tails(space.frames_dir, space.info.dim)
    meta_damage = _frames_meta_damage(space, repair)
    if meta_damage:
        damage.append(meta_damage)
        if not repair:  # the frame store cannot be opened until it is rewritten: nothing more to see
            return SpaceCheck(space.name, "video", -1, -1, None, damage=damage)
        repaired["frames_meta_rewritten"] = 1
    frames = space.frames()
    with db.session() as s:
        any_indexed = bool(q.indexed_video_ids(s).size)
    index, index_damage = _load_index_or_damage(space, expect_vectors=any_indexed, deep=deep)
    rebuild_all = index_damage is not None and space.index_path.is_file()  # unreadable: start over
    if index_damage:
        damage.append(index_damage)
    # frames the map lost but its checksummed copy still has: recoverable, never "gone"
    sums_ids = {k[0] for k in frames.checksums()}
    map_ids = set(frames.ids().tolist())
    expected = _expected_video_ids(db, map_ids | sums_ids | set(index.ids().tolist()), multi)
    lost_from_map = sorted((sums_ids - map_ids) & set(expected.tolist()))
    if lost_from_map:
        damage.append(f"{space.frames_dir / 'map.log'} lost the frames of {len(lost_from_map)} clips")
        if repair:
            frames.rebuild_map()
            repaired["frame_map_rebuilt"] = len(lost_from_map)
    broken = frames.damaged() if deep else {}
    for vid, why in list(broken.items())[:5]:
        log.warning("frames of video %d: %s", vid, why)
    frame_ids = frames.ids()
    index_ids = index.ids()
    check = SpaceCheck(
        space=space.name,
        kind="video",
        db_count=int(expected.size),
        index_count=index.ntotal,
        frames_count=len(frames),
        missing_in_index=np.setdiff1d(expected, index_ids).tolist(),
        extra_in_index=np.setdiff1d(index_ids, expected).tolist(),
        missing_frames=np.setdiff1d(expected, frame_ids).tolist(),
        extra_frames=np.setdiff1d(frame_ids, expected).tolist(),
        damaged_frames=sorted(broken),
        damage=damage,
    )
    if repair and (not check.ok or rebuild_all):
        _repair_video_space(db, space, index, frames, check, broken)
        check.repaired = {**repaired, **check.repaired}
    return check


def _repair_video_space(db, space, index, frames, check: SpaceCheck, broken: dict[int, str]) -> None:  # noqa: ANN001
    extra_frames = set(check.extra_frames)
    if check.extra_in_index:
        index.remove(check.extra_in_index)
    damaged = [i for i in check.damaged_frames if i not in extra_frames]
    frames.remove(sorted(extra_frames | set(check.damaged_frames)))
    gone = set(check.missing_frames) | set(damaged)  # these clips have no intact frames left
    index_ids = set(index.ids().tolist())
    # A clip with no frames but an intact vector stays searchable; the next `echosearch index`
    # re-reads it (the runner reads every indexed clip that has no frames). One with neither is
    # set back to pending: only the archive has it now.
    reread = sorted(gone & index_ids)
    pending = sorted(gone - index_ids)
    if pending:
        with db.session() as s:
            s.execute(
                update(Video)
                .where(Video.id.in_(pending), Video.status == STATUS_INDEXED)
                .values(status=STATUS_PENDING, size=None, mtime=None)
            )
    rebuild = [i for i in check.missing_in_index if i not in gone]
    for ids in batches(rebuild, 4096):
        means = np.stack([frames.get(i).astype(np.float32).mean(axis=0) for i in ids])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        index.replace(ids, means)
    space.save_index(index)
    check.repaired = {
        "vectors_removed": len(check.extra_in_index),
        "frames_removed": len(extra_frames),
        "vectors_rebuilt": len(rebuild),
        "damaged_frames_dropped": len(damaged),
        "to_reread": len(reread),
        "set_pending": len(pending),
    }


def check_report_space(db: Database, space: Space, *, repair: bool = False, deep: bool = True) -> SpaceCheck:
    """Compare a report space with the reports table; repair removes extras and replaces an
    unreadable index with an empty one (missing vectors need the model: the next ``index`` run)."""
    with db.session() as s:
        expected = np.asarray(sorted(s.scalars(select(Report.id)).all()), dtype=np.int64)
    index, damage = _load_index_or_damage(space, expect_vectors=bool(expected.size), deep=deep)
    index_ids = index.ids()
    check = SpaceCheck(
        space=space.name,
        kind="report",
        db_count=int(expected.size),
        index_count=index.ntotal,
        frames_count=None,
        missing_in_index=np.setdiff1d(expected, index_ids).tolist(),
        extra_in_index=np.setdiff1d(index_ids, expected).tolist(),
        damage=[damage] if damage else [],
    )
    if repair and (check.extra_in_index or damage):
        index.remove(check.extra_in_index)
        space.save_index(index)
        check.repaired = {
            "vectors_removed": len(check.extra_in_index),
            "to_reembed": len(check.missing_in_index),
        }
    return check


@dataclass
class StoreCheck:
    """The database file itself and the space folders' metadata (``space.json``)."""

    damage: list[str] = field(default_factory=list)
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        return len(self.damage)


def sqlite_damage(db: Database) -> list[str]:
    """What SQLite's ``integrity_check`` says is wrong (nothing for a sound file or another backend)."""
    if db.engine.url.get_backend_name() != "sqlite":
        return []
    raw = db.engine.raw_connection()
    try:
        rows = [r[0] for r in raw.cursor().execute("PRAGMA integrity_check").fetchall()]
    except Exception as exc:  # noqa: BLE001 - "file is not a database", "malformed" ...
        return [f"SQLite: {exc}"]
    finally:
        raw.close()
    return [] if rows == ["ok"] else [f"SQLite integrity_check: {r}" for r in rows[:10]]


def _space_folders(data_dir: Path, db: Database, store: StoreCheck, repair: bool) -> list[Space]:
    """Every space the data dir or the database knows; a missing or unreadable ``space.json`` is
    damage, rewritten from the database's ``embedding_spaces`` row (its mirror) on repair."""
    from echosearch.index import SpaceInfo
    from echosearch.index.spaces import INFO_FILE, SPACES_DIR
    from echosearch.store.schema import EmbeddingSpace

    with db.session() as s:
        rows = {r.name: r for r in s.scalars(select(EmbeddingSpace))}
    base = data_dir / SPACES_DIR
    names = sorted(set(rows) | ({p.name for p in base.iterdir() if p.is_dir()} if base.is_dir() else set()))
    spaces = []
    for name in names:
        try:
            spaces.append(Space.open(data_dir, name))
            continue
        except Exception as exc:  # noqa: BLE001 - missing or garbled JSON
            why = f"{base / name / INFO_FILE} is missing or unreadable ({type(exc).__name__})"
        row = rows.get(name)
        if row is None:
            store.damage.append(why + "; the database does not know this space either")
            continue
        store.damage.append(why)
        info = SpaceInfo(
            name=name, model_name=row.model_name, dim=row.dim, model_version=row.model_version,
            kind=row.kind, preprocessing=dict(row.preprocessing or {}),
        )  # fmt: skip
        space = Space(base / name, info)
        if repair:
            (base / name).mkdir(parents=True, exist_ok=True)
            space.write_info()
            store.repaired["space_json_rewritten"] = store.repaired.get("space_json_rewritten", 0) + 1
        spaces.append(space)
    return spaces


def verify_data_dir(
    data_dir: Path, db: Database, *, repair: bool = False, store: StoreCheck | None = None
) -> list[SpaceCheck]:
    """Check (and with ``repair`` fix) every space of a data dir; ``store`` collects what is wrong
    with the database file and the spaces' metadata (see :class:`StoreCheck`)."""
    store = store if store is not None else StoreCheck()
    store.damage.extend(sqlite_damage(db))
    spaces = _space_folders(Path(data_dir), db, store, repair)
    n_video = sum(sp.info.kind == "video" for sp in spaces)
    checks = []
    for sp in spaces:
        if sp.info.kind == "video":
            checks.append(check_video_space(db, sp, multi=n_video > 1, repair=repair))
        else:
            checks.append(check_report_space(db, sp, repair=repair))
    return checks
