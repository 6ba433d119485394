"""Relabelling an index from its frame store vs indexing the same clips again, per clip.

A small synthetic archive is indexed with a real model (default ``echosearch-demo``), timing the
indexer per clip. Its videos are then replicated in the same SQLite database and frame store (new
paths, the same frame embeddings) up to ``--clips``, and ``echosearch relabel``'s code relabels them
all with the model's task file: what a site pays after recalibrating thresholds or editing tasks.

    .venv/bin/python benchmarks/relabel.py                     # 10k clips
    .venv/bin/python benchmarks/relabel.py --clips 50000 --model PATH_OR_NAME

On a shared machine the numbers are noisy: run it when the CPUs are quiet.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select

from echosearch.index import Space
from echosearch.indexer.relabel import relabel
from echosearch.indexer.runner import IndexOptions, run_index
from echosearch.search import Engine
from echosearch.store.db import open_db
from echosearch.store.schema import STATUS_INDEXED, Video
from echosearch.synth import synthesize_archive


def _replicate(data: Path, space_name: str, target: int) -> int:
    """Copy the indexed videos (rows + frame embeddings) until the space holds ``target`` clips."""
    db = open_db(data)
    store = Space.open(data, space_name).frames()
    with db.session() as s:
        originals = s.scalars(select(Video).where(Video.status == STATUS_INDEXED)).all()
        seeds = [(v.study_id, v.frames, v.id) for v in originals]
    frames = {vid: np.asarray(store.get(vid), dtype=np.float32) for _study, _n, vid in seeds}
    copy = 0
    while len(store) < target:
        with db.session() as s:
            rows: list[tuple[Video, int]] = []
            for study_id, n, vid in seeds:
                if len(store) + len(rows) >= target:
                    break
                copy += 1
                video = Video(path=f"replica/{copy}.dcm", study_id=study_id, frames=n, status=STATUS_INDEXED)
                rows.append((video, vid))
            s.add_all([video for video, _ in rows])
            s.flush()
            store.add_many([video.id for video, _ in rows], [frames[vid] for _, vid in rows])
    n = len(store)
    db.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=10_000)
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--model", default="echosearch-demo")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive, data = Path(tmp) / "archive", Path(tmp) / "data"
        synthesize_archive(archive, patients=args.patients, seed=11, frames=(16, 20))
        t0 = time.perf_counter()
        summary = run_index(
            IndexOptions(paths=[str(archive)], data_dir=str(data), model=args.model, progress=False)
        )
        index_s = time.perf_counter() - t0
        _replicate(data, summary.space, args.clips)
        with Engine.open(data) as engine:
            engine.encoder  # noqa: B018 - load the model outside the timed part, as a CLI run does first
            t0 = time.perf_counter()
            done = relabel(engine.db, engine.space, engine.encoder, progress=False)
            relabel_s = time.perf_counter() - t0
    per_index = index_s / summary.embedded * 1000
    per_relabel = relabel_s / done.clips * 1000
    print(
        f"model {args.model}; {summary.embedded} clips indexed, relabelled {done.clips} ({done.labels} labels)"
    )
    print("| step | clips | seconds | ms per clip |")
    print("|---|---|---|---|")
    print(
        f"| index (read, decode, embed, label; model load included) | {summary.embedded} | {index_s:.1f} | {per_index:.1f} |"
    )
    print(f"| relabel from the frame store | {done.clips} | {relabel_s:.1f} | {per_relabel:.2f} |")
    print(f"relabel is {per_index / per_relabel:.0f}x cheaper per clip than indexing again")


if __name__ == "__main__":
    main()
