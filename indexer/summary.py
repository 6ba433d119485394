"""What a run did (:class:`IndexSummary`, the ``--json`` document) and the live progress bar."""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class IndexSummary:
    """Counts of one ``echosearch index`` run. ``found`` = ``unchanged + new + updated + touched +
    duplicates + failed + skipped_failed`` (every candidate is counted exactly once)."""

    found: int = 0
    unchanged: int = 0
    new: int = 0
    updated: int = 0  # changed content at a known path: re-embedded under the same video id
    touched: int = 0  # same content, new mtime: no model work
    duplicates: int = 0  # same bytes or same SOP Instance UID as a clip indexed elsewhere
    failed: int = 0
    skipped_failed: int = 0  # failed before with the same content (use --retry-failed)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    unreadable_paths: int = 0  # folders/paths discovery could not look into
    missing: int = 0  # indexed files no longer on disk (removed with --prune)
    pruned: int = 0
    relabelled: int = 0  # clips indexed earlier whose labels were redone (tasks or thresholds changed)
    frames: int = 0
    embedded: int = 0  # clips that went through the model in this run
    reports: dict[str, int] = field(default_factory=dict)
    reconciled: dict[str, int] = field(default_factory=dict)
    source: dict[str, Any] = field(
        default_factory=dict
    )  # a remote source's facts (DICOMweb: listed, fetched)
    # where the work ran (Ray engine): {"read": {node: clips}, "embedded": {node: clips}}
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    model: str = ""
    space: str = ""
    seconds: float = 0.0

    @property
    def clips_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clips_per_s"] = round(self.clips_per_s, 3)
        d["frames_per_s"] = round(self.frames_per_s, 3)
        d["seconds"] = round(self.seconds, 3)
        return d

    def lines(self) -> list[str]:
        """The human summary printed at the end of a run."""
        out = [
            f"found {self.found} clips: {self.new} new, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.touched} touched, {self.duplicates} duplicates, {self.failed} failed"
            + (
                f", {self.skipped_failed} skipped (failed before; --retry-failed)"
                if self.skipped_failed
                else ""
            ),
            f"model {self.model} -> space {self.space}: {self.embedded} clips / {self.frames} frames embedded in "
            f"{self.seconds:.1f} s ({self.clips_per_s:.2f} clips/s, {self.frames_per_s:.1f} frames/s)",
        ]
        if self.source:
            src = self.source
            since = f" since {src['since']}" if src.get("since") else ""
            over = ", ".join(f"{k} {v}" for k, v in (src.get("passed_over") or {}).items())
            out.append(
                f"{src.get('url')}{since}: {src.get('listed', 0)} instances listed, {src.get('fetched', 0)} fetched"
                + (f" (passed over: {over})" if over else "")
            )
        for what, per_node in self.nodes.items():
            if per_node:
                out.append(
                    f"clips {what} per Ray node: " + ", ".join(f"{n} {c}" for n, c in per_node.items())
                )
        if self.failed_by_reason:
            out.append("failed by reason: " + ", ".join(f"{k} {v}" for k, v in self.failed_by_reason.items()))
        if self.missing or self.pruned:
            out.append(f"missing on disk: {self.missing} (pruned {self.pruned}; use --prune to remove them)")
        if self.unreadable_paths:
            out.append(f"unreadable paths: {self.unreadable_paths}")
        if self.relabelled:
            out.append(
                f"zero-shot tasks or thresholds changed: relabelled {self.relabelled} clips indexed earlier"
            )
        if self.reports:
            out.append("reports: " + ", ".join(f"{k} {v}" for k, v in self.reports.items()))
        if any(self.reconciled.values()):
            out.append(
                "recovered from an interrupted run: "
                + ", ".join(f"{k} {v}" for k, v in self.reconciled.items())
            )
        return out


class Progress:
    """tqdm on stderr: clips/s and ETA from tqdm, frames/s and failures in the postfix.

    ``enabled=None`` shows the bar only on a terminal (scripts and tests stay quiet).
    """

    def __init__(self, total: int, enabled: bool | None = None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total,
            unit="clip",
            file=sys.stderr,
            disable=enabled is False or (enabled is None and not sys.stderr.isatty()),
            smoothing=0.1,
            # a terminal that reports size 0x0 (some ptys) would otherwise hide the bar entirely
            ncols=shutil.get_terminal_size((100, 20)).columns,
            nrows=shutil.get_terminal_size((100, 20)).lines,
        )
        self.start = time.perf_counter()
        self.frames = 0
        self.failures: Counter[str] = Counter()

    def update(self, clips: int = 1, frames: int = 0, failure: str | None = None) -> None:
        self.frames += frames
        if failure:
            self.failures[failure] += 1
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix(
            frames_s=f"{self.frames / elapsed:.1f}", failed=sum(self.failures.values()), refresh=False
        )
        self.bar.update(clips)

    def close(self) -> None:
        self.bar.close()
