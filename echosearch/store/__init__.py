"""The metadata store (SQLAlchemy 2.0): schema, database opening/migration, and queries.

from echosearch.store import open_db, queries as Q
db = open_db(data_dir)                      # SQLite WAL in <data_dir>/echosearch.db, upgraded to head
with db.session() as s:                     # one transaction
    ids = Q.filter_video_ids(s, Q.VideoFilter(views=["A4C"], labels=[Q.LabelCondition.parse("ef < 40")]))
"""

from echosearch.store import queries
from echosearch.store.db import Database, StoreError, open_db, upgrade_to_head, url_for_data_dir
from echosearch.store.queries import LabelCondition, VideoFilter, filter_video_ids

__all__ = [
    "Database",
    "LabelCondition",
    "StoreError",
    "VideoFilter",
    "filter_video_ids",
    "open_db",
    "queries",
    "upgrade_to_head",
    "url_for_data_dir",
]
