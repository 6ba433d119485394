"""Where an indexed clip came from, written as the key the database stores in ``videos.path``
(and ``failures.path``); the one place that turns such a key into a file and a file into a key.

A clip read from disk is keyed relative to a **registered source root**: ``root:<id>/<path below
the root>``, e.g. ``root:3/2021/ECHO0042/IM_0001.dcm``. Hospital archives are often laid out by
MRN or accession folders, so the absolute location of the archive is written once, in the
``source_roots`` table (``id``, ``path``, ``created_at``), and never beside each clip; a moved
archive mount is one update of that table (``echosearch sources move ID NEWPATH``). Every
``echosearch index PATH`` registers its folders (a file's parent folder) as roots, resolved (a
symlink or a relative spelling of the same folder is the same root); a folder inside a registered
root is not registered again (its clips keep the keys they have). A file reached through a symlink
that leads out of every root gets the folder it really lives in registered as a root of its own.
The part below the root is stored as the site laid it out (the text of
:func:`echosearch.paths.storable_path`), so it may still name MRN folders: what the database adds is
that the root is not repeated, that the command lines of runs name roots by id
(:func:`describe_path`), and that only administrators are shown a clip's location (the API and the
UI; :meth:`SourceRoots.location`).

Older databases hold absolute paths. They are read as they are (:meth:`SourceRoots.path_for` returns
an absolute key unchanged), and registering a root (the next ``echosearch index`` of the folder, or
``echosearch sources add``) rewrites the absolute rows under it into root keys
(:func:`register_root`), so a rerun recognises the clips instead of reading them again. Why not in
the schema migration: which folder was the root of an old path is only known when a site names it.

A clip that only passed through a temporary spool is keyed by where it really lives, so the same
instance is the same row whichever temporary file carried it, and a rerun recognises it without
fetching it again:

- retrieved over DICOMweb: the instance's WADO-RS URL with its scheme marked
  (``dicomweb+https://pacs/dicom-web/studies/S/series/SE/instances/I``), so the base URL and the
  three UIDs can be read back from it; credentials never appear in it;
- received over DICOM (C-STORE): ``dicom://CALLING_AE/studies/S/series/SE/instances/I``.

Such keys are not files: pruning and "missing file" checks leave them alone (:func:`is_remote`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from echosearch.errors import UsageError
from echosearch.paths import filesystem_path, storable_path

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from echosearch.store.db import Database

DICOMWEB_SCHEMES = ("dicomweb+http", "dicomweb+https")
DIMSE_SCHEME = "dicom"
_REMOTE = re.compile(r"^(dicomweb\+https?|dicom)://")
#: A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1).
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_ROOT_KEY = re.compile(r"^root:([0-9]+)/(.*)$", re.DOTALL)
_TAIL = re.compile(r"/studies/([0-9.]+)/series/([0-9.]+)/instances/([0-9.]+)$")


def is_remote(key: str) -> bool:
    """Whether a stored key names a DICOMweb or C-STORE source rather than a file."""
    return bool(_REMOTE.match(key))


def valid_uid(uid: str | None) -> bool:
    return bool(uid) and len(uid) <= 64 and bool(UID_RE.match(uid))


@dataclass(frozen=True)
class InstanceRef:
    """One DICOM instance at a remote source: its base (DICOMweb URL or sender) and its UIDs."""

    base: str  # "dicomweb+https://host/path" or "dicom://AE"
    study_uid: str
    series_uid: str
    sop_uid: str

    @property
    def key(self) -> str:
        return f"{self.base}/studies/{self.study_uid}/series/{self.series_uid}/instances/{self.sop_uid}"

    @property
    def http_base(self) -> str:
        """The DICOMweb base URL as HTTP(S) (the ``dicomweb+`` marker dropped)."""
        return self.base.removeprefix("dicomweb+")


def parse_key(key: str) -> InstanceRef | None:
    """A stored remote key back into its parts (None for a file path)."""
    if not is_remote(key):
        return None
    m = _TAIL.search(key)
    if not m:
        return None
    return InstanceRef(key[: m.start()], *m.groups())


def dicomweb_base(url: str) -> str:
    """Check a ``dicomweb+http(s)://HOST/PATH`` argument; returns it without a trailing slash.

    A URL with a user name or password in it is refused: credentials come from the environment or a
    netrc file (see :mod:`echosearch.pacs.credentials`), never from the command line or the logs."""
    parts = urlsplit(url)
    if parts.scheme not in DICOMWEB_SCHEMES or not parts.hostname:
        raise UsageError(f"not a DICOMweb URL (expected dicomweb+http(s)://HOST/PATH): {url}")
    if parts.username or parts.password:
        raise UsageError(
            "credentials do not belong in the DICOMweb URL: set ECHOSEARCH_DICOMWEB_USER and "
            "ECHOSEARCH_DICOMWEB_PASSWORD (or ECHOSEARCH_DICOMWEB_TOKEN, or a netrc file)"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"a DICOMweb base URL has no query or fragment: {url}")
    return url.rstrip("/")


def dimse_base(calling_ae: str) -> str:
    """The key base of instances received from ``calling_ae`` (kept to letters, digits, ``-_.``)."""
    return f"{DIMSE_SCHEME}://{re.sub(r'[^A-Za-z0-9_.-]', '_', calling_ae.strip()) or 'UNKNOWN'}"


# ---------------------------------------------------------------- files under registered roots


def path_tails(text: str) -> list[str]:
    """A path's spellings a labels CSV may use: whole, then every tail ("a/b/c.dcm", "b/c.dcm",
    "c.dcm"), "/"-separated."""
    parts = Path(text).as_posix().split("/")
    return ["/".join(parts[i:]) for i in range(len(parts))]


def root_key(root_id: int, below: str) -> str:
    """The key of the file ``below`` (as stored, "/"-separated) the source root ``root_id``."""
    return f"root:{int(root_id)}/{below}"


def parse_root_key(key: str) -> tuple[int, str] | None:
    """``root:<id>/<below>`` back into (id, below); None for any other key."""
    m = _ROOT_KEY.match(key)
    return (int(m.group(1)), m.group(2)) if m else None


def _prefix(root: str) -> str:
    """A root folder's text followed by one separator (the root ``/`` is its own prefix)."""
    return root if root.endswith("/") else root + "/"


def canonical(path: str | os.PathLike) -> str:
    """A local path as key texts are made from: absolute, its folder resolved (so a symlinked or
    relative spelling of a folder is the same text), the last component kept (a dangling link is
    named where it is); in :func:`storable_path` form."""
    text = os.path.abspath(os.fspath(path))
    head, name = os.path.split(text)
    return storable_path(os.path.join(os.path.realpath(head), name) if name else text)


class SourceRoots:
    """The registered source roots ({id: folder}) and the conversion of keys both ways."""

    def __init__(self, roots: Mapping[int, str]):
        self.roots = dict(roots)
        self._innermost_first = sorted(self.roots.items(), key=lambda kv: len(kv[1]), reverse=True)

    @classmethod
    def load(cls, db: Database) -> SourceRoots:
        from echosearch.store import queries as q

        with db.session() as s:
            return cls(q.source_roots(s))

    def __contains__(self, root_id: object) -> bool:
        return root_id in self.roots

    def root_of(self, path: str | os.PathLike, *, resolved: bool = False) -> tuple[int, str] | None:
        """(root id, the path below it) of a local path under a registered root (the innermost one
        when roots nest); None when it is under none. ``resolved``: the path is absolute and
        resolved already (discovery's candidates), so it is not resolved again."""
        text = storable_path(path) if resolved else canonical(path)
        for rid, root in self._innermost_first:
            if text == root:
                return rid, ""
            prefix = _prefix(root)
            if text.startswith(prefix):
                return rid, text[len(prefix) :]
        return None

    def key_for(self, path: str | os.PathLike, *, resolved: bool = False) -> str | None:
        """The stored key of a local file (``root:<id>/...``); None when no registered root holds it."""
        found = self.root_of(path, resolved=resolved)
        return root_key(*found) if found else None

    def location(self, key: str) -> str:
        """Where a stored key's clip is, as text for an administrator: the absolute path of a root
        key (or of an older absolute key, as it is), or a remote key itself (a DICOMweb URL, a
        C-STORE sender). A root that is no longer registered leaves the key as it is."""
        parsed = parse_root_key(key)
        if parsed is None or parsed[0] not in self.roots:
            return key
        rid, below = parsed
        return _prefix(self.roots[rid]) + below if below else self.roots[rid]

    def path_for(self, key: str) -> str | None:
        """The file on disk that a stored key names (for reading it); None for a remote key, or a
        root key whose root is not registered."""
        if is_remote(key):
            return None
        parsed = parse_root_key(key)
        if parsed is not None and parsed[0] not in self.roots:
            return None
        return filesystem_path(self.location(key))


class Registered(NamedTuple):
    """What :func:`register_root` did: the root's id, whether it is new, and how many rows stored
    with absolute paths it rewrote into root keys."""

    id: int
    new: bool
    rekeyed: int


def register_root(s: Session, folder: str | os.PathLike) -> Registered:
    """Register ``folder`` (resolved) as a source root, in session ``s``. A folder that is a
    registered root, or lies inside one, is that root. Rows an older version stored with absolute
    paths under the folder are rewritten into root keys (see the module doc)."""
    from echosearch.store import queries as q

    text = storable_path(Path(folder).resolve())
    found = SourceRoots(q.source_roots(s)).root_of(text, resolved=True)
    if found is not None:
        return Registered(found[0], False, 0)
    rid = q.add_source_root(s, text)
    return Registered(rid, True, q.rekey_prefix(s, _prefix(text), root_key(rid, "")))


def root_folder(path: str | os.PathLike) -> Path:
    """The folder a path given to ``echosearch index`` registers: the folder itself, or a file's folder."""
    resolved = Path(path).resolve()
    return resolved if resolved.is_dir() else resolved.parent


def move_root(s: Session, root_id: int, new_folder: str | os.PathLike) -> tuple[str, str]:
    """Point root ``root_id`` (and the roots registered inside it) at ``new_folder``, where the
    archive now lives; (old folder, new folder). The keys of its clips do not change."""
    from echosearch.store import queries as q

    roots = q.source_roots(s)
    if root_id not in roots:
        raise UsageError(f"no source root {root_id} (see `echosearch sources list`)")
    new = Path(new_folder).expanduser().resolve()
    if not new.is_dir():
        raise UsageError(f"no such folder: {storable_path(new)}")
    old, text = roots[root_id], storable_path(new)
    planned = {root_id: text}  # the root and the roots inside it, which move with it
    for rid, path in roots.items():
        if rid != root_id and path.startswith(_prefix(old)):
            planned[rid] = _prefix(text) + path[len(_prefix(old)) :]
    staying = {path: rid for rid, path in roots.items() if rid not in planned}
    for rid, path in planned.items():
        if path in staying:
            what = "" if rid == root_id else f" (where root {rid}, inside it, would go)"
            raise UsageError(f"{path}{what} is source root {staying[path]} already")
    for rid, path in sorted(planned.items(), key=lambda item: -len(item[1])):  # deepest first: no
        q.set_source_root_path(s, rid, path)  # transient clash when a root moves into its own subfolder
    return old, text


def _mark(text: str, key: bytes | None) -> str:
    from echosearch.privacy import keyed_hash

    return f"<path:{keyed_hash(text, key)[:16]}>" if key else "<path>"


def keyed_path(path: str | os.PathLike, key: bytes | None) -> str:
    """A path as a mark that tells equal paths apart without naming them: the first 16 hex characters
    of the keyed hash (site key) of its absolute form (``<path:...>``; ``<path>`` without a key)."""
    return _mark(canonical(path), key)


def describe_path(path: str, roots: SourceRoots, key: bytes | None) -> str:
    """A path given to ``echosearch index`` as ``index_runs.args`` stores it: a remote source as it
    is (a URL without credentials); a registered root as ``root:<id>``; a folder or file below one as
    ``root:<id>/<path:HASH>`` (the part below the root keyed, as :func:`keyed_path` does)."""
    if is_remote(path):
        return path
    found = roots.root_of(Path(path).resolve(), resolved=True)
    if found is None:
        return keyed_path(path, key)
    rid, below = found
    return f"root:{rid}" if not below else root_key(rid, _mark(below, key))
