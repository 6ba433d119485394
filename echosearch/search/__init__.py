"""Search over an indexed archive. :class:`Engine` is the facade; each module below has one job:

- ``engine``: the facade (open/close, and one method per question, timed and audited);
- ``context``: the opened archive the parts share (database, vectors, model, site key);
- ``query_vectors``: text and clips -> query vectors, query interpretation, suggestions;
- ``videos``: searches that answer clips (text, combined, clip -> clips, prompt scoring);
- ``studies``: study and patient lookups, study -> studies, same-patient, nearest reports;
- ``label_stats``: a space's labels: names, values, class counts, catalog, readable text;
- ``hits``: result rows from stored rows; ``results``: the result dataclasses (JSON shape);
- ``audit``: timing and the audit log; ``where``: ``--where`` conditions -> filters.

Every database query lives in :mod:`echosearch.store.queries`.
"""

from echosearch.search.engine import Engine
from echosearch.search.query_vectors import NoTemplateMatch, suggest_phrases
from echosearch.search.results import ReportHit, SamePatientScore, SearchResult, StudyHit, VideoHit
from echosearch.search.where import parse_where

__all__ = [
    "Engine",
    "NoTemplateMatch",
    "ReportHit",
    "SamePatientScore",
    "SearchResult",
    "StudyHit",
    "VideoHit",
    "parse_where",
    "suggest_phrases",
]
