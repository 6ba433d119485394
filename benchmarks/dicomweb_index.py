"""Indexing from disk vs through a PACS's DICOMweb (a local Orthanc), side by side.

The same synthetic DICOM archive is (a) indexed from its files and (b) uploaded to an Orthanc on
loopback and indexed through QIDO-RS + WADO-RS (``dicomweb+http://...``), with the same model
(loaded once, reused by both), the same readers and the same frame sampling. Retrieval runs in the
reader processes and overlaps with embedding, so the target is a DICOMweb throughput of at least
0.8 of the disk's. Orthanc's upload is not timed (it is the PACS's work, not ours). On a shared
machine numbers are noisy: the load average is printed with the table.

Needs the ``Orthanc`` server and its DICOMweb plugin (Debian: ``orthanc orthanc-dicomweb``).

    .venv/bin/python benchmarks/dicomweb_index.py [--patients 6] [--frames 16-32] [--workers N] [--model NAME]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pacs_server import PASSWORD, USER, Orthanc, skip_reason  # noqa: E402

from echosearch.indexer.dicomweb import DicomwebOptions, DicomwebRunner  # noqa: E402
from echosearch.indexer.distributor import default_workers  # noqa: E402
from echosearch.indexer.runner import IndexOptions, Runner  # noqa: E402
from echosearch.models import load_model  # noqa: E402
from echosearch.pacs.credentials import Credentials  # noqa: E402
from echosearch.synth import synthesize_archive  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--frames", default="16-32", help="frames per synthetic clip, MIN-MAX")
    ap.add_argument("--workers", type=int, default=None, help="reader/retrieval processes (default: auto)")
    ap.add_argument("--model", default="echosearch-demo")
    args = ap.parse_args()
    why = skip_reason()
    if why:
        sys.exit(f"cannot run: {why}")
    lo, hi = (int(x) for x in args.frames.split("-"))
    workers = default_workers() if args.workers is None else args.workers
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthesize_archive(
            root / "archive", patients=args.patients, studies=(1, 1), clips_per_study=(3, 3),
            frames=(lo, hi), formats=("dicom-explicit",),
        )  # fmt: skip
        files = sorted((root / "archive").rglob("*.dcm"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        encoder = load_model(args.model)
        server = Orthanc(root / "orthanc").start()
        try:
            server.upload(files)

            def opts(name: str, paths: list[str]) -> IndexOptions:
                return IndexOptions(
                    paths, str(root / name), model=args.model, workers=workers, progress=False
                )

            t = time.perf_counter()
            disk = Runner(opts("disk", [str(root / "archive")]), encoder=encoder).run()
            t_disk = time.perf_counter() - t
            source = DicomwebOptions(url=server.dicomweb, all=True, credentials=Credentials(USER, PASSWORD))
            t = time.perf_counter()
            web = DicomwebRunner(opts("web", []), source, encoder=encoder).run()
            t_web = time.perf_counter() - t
        finally:
            server.stop()
    rows = [("disk", disk, t_disk), ("DICOMweb (Orthanc)", web, t_web)]
    print(
        f"{len(files)} clips, {disk.frames} frames, {mb:.1f} MB; model {args.model}; {workers} reader processes"
    )
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n")
    print("| source | clips | frames | seconds | clips/s | frames/s |\n|---|---|---|---|---|---|")
    for name, s, secs in rows:
        print(
            f"| {name} | {s.embedded} | {s.frames} | {secs:.1f} | {s.embedded / secs:.2f} | {s.frames / secs:.1f} |"
        )
    ratio = (web.frames / t_web) / (disk.frames / t_disk)
    print(f"\nDICOMweb / disk throughput: {ratio:.2f} (target >= 0.80)")


if __name__ == "__main__":
    main()
