"""Synthetic echo archives (DICOM/AVI/MP4 + reports + ground truth) for the demo, tests and training."""

from echosearch.synth.anatomy import SEVERITIES, Anatomy, Findings
from echosearch.synth.archive import ArchiveSummary, read_manifest, synthesize_archive

__all__ = ["SEVERITIES", "Anatomy", "ArchiveSummary", "Findings", "read_manifest", "synthesize_archive"]
