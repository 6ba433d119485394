"""Load on the REST API: N concurrent clients on loopback for a bounded time against a demo index.

    python benchmarks/api_load.py                          # demo index in /tmp/echosearch-api-bench, 8 clients, 20 s
    python benchmarks/api_load.py --clients 16 --seconds 60 --data DIR   # an existing indexed data dir
    python benchmarks/api_load.py --workers 1                             # one server process

It starts `echosearch serve --workers N` (default 4: twice the cores of the 2-core reference machine;
uvicorn, the model preloaded, the per-token rate limit off), gives every client its own token (one account, revoked at the end), and each client loops over
a fixed mix of endpoints with a keep-alive connection: text search, similar clips by id, a clip, a
study, a clip's labels, a thumbnail. It prints requests, errors, throughput and p50/p95 latency per
endpoint, and whether the issue's targets hold (0 errors; similar-by-id p95 <= 50 ms and text search
p95 <= 150 ms at 8 clients on a 2-core machine). The clients run on the same machine as the server:
on few cores they compete with it for CPU, so the numbers are a lower bound.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

QUERIES = (
    "severe LV dysfunction",
    "pacmaker",
    "s/p TAVR, no effusion",
    "EF < 30% with dilated LV",
    "dilated left ventricle",
    "mitraclip",
)
#: The mix one client loops over (each endpoint's share of the requests).
MIX = ("search", "similar", "similar", "clip", "search", "study", "labels", "similar", "thumbnail", "search")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _echosearch(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "echosearch", *args], check=True, **kw)


def ensure_index(data: Path, patients: int) -> None:
    if (data / "echosearch.db").is_file():
        print(f"using the index in {data}", file=sys.stderr)
        return
    print(f"building a demo index ({patients} patients) in {data} ...", file=sys.stderr)
    _echosearch(
        "demo",
        "--no-ui",
        "--patients",
        str(patients),
        "--data",
        str(data),
        "--json",
        stdout=subprocess.DEVNULL,
    )


def make_tokens(data: Path, n: int) -> tuple[list[str], list[int]]:
    from echosearch.accounts import Accounts
    from echosearch.store.db import open_db

    db = open_db(data)
    try:
        accounts = Accounts(db)
        if not any(u.name == "api-bench" for u in accounts.users()):
            accounts.add_user("api-bench", "viewer")
        made = [
            accounts.create_token("api-bench", dt.timedelta(hours=2), "benchmarks/api_load.py")
            for _ in range(n)
        ]
        return [m.token for m in made], [m.info.id for m in made]
    finally:
        db.close()


def revoke(data: Path, ids: list[int]) -> None:
    from echosearch.accounts import Accounts
    from echosearch.store.db import open_db

    db = open_db(data)
    try:
        for token_id in ids:
            Accounts(db).revoke_token(token_id)
    finally:
        db.close()


def targets(base: str, token: str) -> dict:
    """Ids to ask about: the clips and studies of the index (from the API itself)."""
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
        hits = (
            http.get(f"{base}/search", params={"q": "left ventricle", "k": 50})
            .raise_for_status()
            .json()["results"]
        )
    return {"videos": [h["video_id"] for h in hits], "studies": sorted({h["study_uid"] for h in hits})}


def client_loop(
    base: str, token: str, ids: dict, stop: float, offset: int, out: dict, lock: threading.Lock
) -> None:
    """One client: a keep-alive connection (``http.client``: a load generator should cost the CPU it
    shares with the server as little as it can; httpx spends ~1 ms of Python per request)."""
    mine: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, list[str]] = defaultdict(list)
    videos, studies = ids["videos"], ids["studies"]
    split = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}"}
    i = offset
    try:
        while time.perf_counter() < stop:
            kind = MIX[i % len(MIX)]
            vid, uid = videos[i % len(videos)], studies[i % len(studies)]
            url = (
                split.path
                + {
                    "search": "/search?" + urllib.parse.urlencode({"q": QUERIES[i % len(QUERIES)], "k": 10}),
                    "similar": f"/clips/{vid}/similar?k=10",
                    "clip": f"/clips/{vid}",
                    "study": f"/studies/{uid}",
                    "labels": f"/clips/{vid}/labels",
                    "thumbnail": f"/clips/{vid}/thumbnail",
                }[kind]
            )
            started = time.perf_counter()
            try:
                conn.request("GET", url, headers=headers)
                r = conn.getresponse()
                r.read()
                ok, why = r.status == 200, f"HTTP {r.status}"
            except (OSError, http.client.HTTPException) as exc:
                ok, why = False, type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
            took = 1000 * (time.perf_counter() - started)
            (mine[kind] if ok else errors[kind]).append(took if ok else why)
            i += 1
    finally:
        conn.close()
    with lock:
        for kind, times in mine.items():
            out["times"][kind].extend(times)
        for kind, whys in errors.items():
            out["errors"][kind].extend(whys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "echosearch-api-bench")
    ap.add_argument("--patients", type=int, default=10, help="Demo archive size when --data has no index.")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0, help="Seconds of load before measuring.")
    ap.add_argument("--workers", type=int, default=4, help="Server processes (`serve --workers`).")
    args = ap.parse_args()

    ensure_index(args.data, args.patients)
    tokens, token_ids = make_tokens(args.data, args.clients)
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="api-bench-server-", suffix=".log", delete=False)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "echosearch",
            "serve",
            "--data",
            str(args.data),
            "--port",
            str(port),
            "--rate-limit",
            "0",
            "--workers",
            str(args.workers),
        ],
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
            if server.poll() is not None:
                raise SystemExit(f"the server stopped: {Path(log.name).read_text()[-2000:]}")
        ids = targets(base, tokens[0])
        for _phase, seconds in (("warmup", args.warmup), ("measure", args.seconds)):
            out = {"times": defaultdict(list), "errors": defaultdict(list)}
            lock = threading.Lock()
            stop = time.perf_counter() + seconds
            threads = [
                threading.Thread(target=client_loop, args=(base, tokens[c], ids, stop, c * 3, out, lock))
                for c in range(args.clients)
            ]
            wall = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - wall
        report(out, wall, args)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        revoke(args.data, token_ids)
        print(f"(server log: {log.name})", file=sys.stderr)


def report(out: dict, wall: float, args: argparse.Namespace) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.clients} clients, {args.workers} server workers, {args.seconds:.0f} s on loopback, {cores} cores (load average {load:.1f}), index {args.data}"
    )
    print()
    print("| endpoint | requests | errors | req/s | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    kinds = sorted(set(out["times"]) | set(out["errors"]), key=MIX.index)
    total = errors = 0
    p95 = {}
    for kind in kinds:
        times = np.asarray(out["times"][kind])
        errs = len(out["errors"][kind])
        total += len(times) + errs
        errors += errs
        if len(times):
            p50, p95[kind], top = np.percentile(times, 50), np.percentile(times, 95), times.max()
        else:
            p50 = p95[kind] = top = float("nan")
        print(
            f"| {kind} | {len(times) + errs} | {errs} | {(len(times) + errs) / wall:.1f} | {p50:.1f} | {p95[kind]:.1f} | {top:.1f} |"
        )
    print(f"| **all** | {total} | {errors} | {total / wall:.1f} | | | |")
    for kind, whys in out["errors"].items():
        if whys:
            print(f"errors of {kind}: " + ", ".join(f"{w} x{whys.count(w)}" for w in sorted(set(whys))))
    print()
    checks = [
        ("0 errors", errors == 0),
        ("similar-by-id p95 <= 50 ms", p95.get("similar", float("inf")) <= 50),
        ("text search p95 <= 150 ms", p95.get("search", float("inf")) <= 150),
    ]
    print(
        "targets (8 clients, 2 cores): "
        + "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks)
    )


if __name__ == "__main__":
    main()
