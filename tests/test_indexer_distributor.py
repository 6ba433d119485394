"""The local distributor: every job once, a bounded number in flight, a dying worker contained."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from echosearch.indexer.distributor import CrashedJob, InlineDistributor, LocalDistributor


def square(job: int, cfg: dict) -> int:
    time.sleep(cfg["sleep"])
    return job * job


def die_on_three(job: int, cfg: dict) -> int:
    if job == 3:
        os._exit(1)  # what a decoder segfault or the OOM killer looks like from the pool
    return job * job


def test_every_job_once_and_bounded_submission():
    dist = LocalDistributor(workers=2, max_in_flight=3)
    pulled = []

    def jobs():
        for i in range(10):
            pulled.append(i)
            yield i

    try:
        results = dist.map_unordered(square, jobs(), {"sleep": 0.01})
        first = next(results)
        assert len(pulled) <= 3 + 1  # only max_in_flight jobs were taken before the first result
        rest = list(results)
    finally:
        dist.close()
    assert sorted([first, *rest]) == [i * i for i in range(10)]


def test_a_dying_worker_fails_only_its_job():
    dist = LocalDistributor(workers=1, max_in_flight=3)
    try:
        results = list(dist.map_unordered(die_on_three, range(6), {}))
    finally:
        dist.close()
    crashed = [r for r in results if isinstance(r, CrashedJob)]
    assert [c.job for c in crashed] == [3]
    assert sorted(r for r in results if not isinstance(r, CrashedJob)) == [i * i for i in range(6) if i != 3]


def test_inline_distributor_same_results():
    assert list(InlineDistributor().map_unordered(square, range(4), {"sleep": 0})) == [0, 1, 4, 9]


PARENT = """
import os, sys
from echosearch.indexer.distributor import LocalDistributor
dist = LocalDistributor(workers=2)
futures = [dist._executor().submit(os.getpid) for _ in range(8)]
print(" ".join(sorted({str(f.result()) for f in futures})), flush=True)
import time; time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_readers_die_when_the_indexer_is_killed_9():
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers and all(_alive(p) for p in workers)
    proc.kill()  # SIGKILL to the parent only: no clean-up code runs
    proc.wait()
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers), "orphaned reader processes"
