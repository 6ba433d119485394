"""The open archive every part of the Engine reads: the database, one space's vectors, its model.

Why one object: the parts (query encoding, video search, study search, label statistics, audit)
share the same database, the same FAISS index (swapped on reload), the same lazily loaded model and
the same site key; each part holds this object instead of a copy of each.
"""

from __future__ import annotations

import threading
from pathlib import Path

from echosearch.errors import UsageError
from echosearch.index import Space, VectorIndex, report_space_name
from echosearch.index.faiss_index import VectorIndexError
from echosearch.store import queries as q
from echosearch.store.db import Database


class OpenSpace:
    """One data dir opened on one embedding space (and its report space, when indexed)."""

    def __init__(self, data_dir: Path, db: Database, space: Space, *, device: str, precision: str):
        self.data_dir = data_dir
        self.db = db
        self.space = space
        self.device, self.precision = device, precision
        with db.session() as s:
            row = q.get_space(s, space.name)
            self.space_id: int | None = row.id if row else None
        self.index: VectorIndex = self._load_video_index()
        self.report_space: Space | None = None
        self.report_index: VectorIndex | None = None
        rname = report_space_name(space.name)
        if (Space.path_for(data_dir, rname) / "space.json").is_file():
            self.report_space = Space.open(data_dir, rname)
            self.report_index = self.report_space.load_index(mmap=None)
        self._encoder = None
        self._encoder_lock = (
            threading.Lock()
        )  # concurrent first queries (API threads, UI warm-up) load it once
        self._site_key: bytes | None = None
        self._roots = None  # the registered source roots, read on first use (echosearch.sources)

    @property
    def model_name(self) -> str:
        return self.space.info.model_name

    @property
    def encoder(self):
        """The space's model, loaded on first use (text queries, new clips, custom prompts)."""
        if self._encoder is None:
            with self._encoder_lock:
                if self._encoder is None:
                    from echosearch.models import load_model

                    encoder = load_model(self.model_name, device=self.device, precision=self.precision)
                    if encoder.dim != self.space.info.dim:
                        raise UsageError(
                            f"model {self.model_name} gives {encoder.dim}-d vectors but space "
                            f"{self.space.name} holds {self.space.info.dim}-d ones"
                        )
                    self._encoder = encoder
        return self._encoder

    @property
    def encoder_loaded(self) -> bool:
        """Whether the model is in memory (a query that needs it will not wait for a load)."""
        return self._encoder is not None

    def reload_vectors(self) -> None:
        """Pick up vectors (and source roots) written by an indexer since the space was opened."""
        self._roots = None
        self.index = self._load_video_index()
        if self.report_space is not None:
            self.report_index = self.report_space.load_index(mmap=None)

    def site_key(self) -> bytes | None:
        """The data dir's key for hashing identifiers (None when the archive has none yet). A missing
        or swapped key file is an error (:func:`echosearch.privacy.site_key_for`), never "no match"."""
        from echosearch.privacy import site_key_for

        if self._site_key is None:
            self._site_key = site_key_for(self.data_dir, self.db, create=False)
        return self._site_key

    def keyed(self, value: str) -> str | None:
        """An identifier (MRN, accession) as the index stores it: hashed with the site key."""
        from echosearch.privacy import keyed_hash

        key = self.site_key()
        return keyed_hash(value, key) if key is not None else None

    @property
    def roots(self):
        """The data dir's registered source roots (:class:`echosearch.sources.SourceRoots`)."""
        from echosearch.sources import SourceRoots

        roots = self._roots
        if roots is None:
            roots = self._roots = SourceRoots.load(self.db)
        return roots

    def location(self, key: str) -> str:
        """Where a stored clip key's clip is (an absolute path; a remote key as it is): what an
        administrator is shown, and what a file is read from. A root registered since the roots
        were read (an indexer running beside a server) is picked up."""
        from echosearch.sources import parse_root_key

        parsed = parse_root_key(key)
        if parsed is not None and parsed[0] not in self.roots:
            self._roots = None
        return self.roots.location(key)

    def source_file(self, key: str) -> str | None:
        """The file on disk of a stored clip key (None for a remote clip or an unknown root)."""
        self.location(key)  # picks up a newly registered root
        return self.roots.path_for(key)

    def absolute(self, rel: str | None) -> str | None:
        """A data-dir relative path (thumbnails, previews) as an absolute one."""
        return str(self.data_dir / rel) if rel else None

    def _load_video_index(self) -> VectorIndex:
        """The space's FAISS index; a missing file while the database has indexed clips is an error
        (searches would otherwise answer "no results" as if the archive were empty)."""
        if not self.space.index_path.is_file():
            with self.db.session() as s:
                indexed = q.indexed_video_ids(s).size
            if indexed:
                raise VectorIndexError(
                    f"{self.space.index_path} is missing but {indexed} clips are indexed: run "
                    "`echosearch verify --repair` (it rebuilds the index from the frame store)"
                )
        return self.space.load_index(mmap=None)  # compressed kinds: memory-mapped, pages on demand
