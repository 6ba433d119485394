"""Vector side of the data dir: FAISS indexes per embedding space and the per-frame store."""

from echosearch.index.faiss_index import Hits, IndexConfig, VectorIndex
from echosearch.index.frames import FrameBatch, FrameStore
from echosearch.index.spaces import Space, SpaceInfo, list_spaces, report_space_name

__all__ = [
    "FrameBatch",
    "FrameStore",
    "Hits",
    "IndexConfig",
    "Space",
    "SpaceInfo",
    "VectorIndex",
    "list_spaces",
    "report_space_name",
]
