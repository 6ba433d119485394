"""Links from a result to the site's image viewer (OHIF, the PACS's own).

A site sets the template in its site config, ``DATA/site.yaml``::

    viewer:
      url: https://pacs.example.org/ohif/viewer?StudyInstanceUIDs={study_uid}

Placeholders: ``{study_uid}``, ``{series_uid}``, ``{sop_uid}`` (URL-quoted when filled in). A clip
gets a ``viewer_url`` when it has every UID the template names; a study when the template names
only ``{study_uid}``. No template: no links (``viewer_url`` is null). ``ECHOSEARCH_VIEWER_URL``
overrides the file (a container's environment).
"""

from __future__ import annotations

import os
import string
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import yaml

from echosearch.errors import ConfigError

SITE_CONFIG = "site.yaml"
ENV = "ECHOSEARCH_VIEWER_URL"
FIELDS = ("study_uid", "series_uid", "sop_uid")


def check_template(template: str) -> str:
    """The template, or a :class:`ConfigError` naming an unknown placeholder."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"viewer URL template {template!r}: {exc}") from None
    unknown = names - set(FIELDS)
    if unknown or not names:
        raise ConfigError(
            f"viewer URL template {template!r}: use {{study_uid}}, {{series_uid}} or {{sop_uid}}"
            + (f", not {{{sorted(unknown)[0]}}}" if unknown else "")
        )
    if not template.startswith(("http://", "https://")):
        raise ConfigError(f"viewer URL template {template!r} must start with http:// or https://")
    return template


@lru_cache(maxsize=8)
def _from_file(path: str, _mtime_ns: int) -> str | None:
    data = yaml.safe_load(Path(path).read_text()) or {}
    viewer = data.get("viewer") if isinstance(data, dict) else None
    url = viewer.get("url") if isinstance(viewer, dict) else None
    return check_template(str(url)) if url else None


def viewer_template(data_dir: str | os.PathLike) -> str | None:
    """The site's viewer URL template (see the module doc), or None."""
    if os.environ.get(ENV):
        return check_template(os.environ[ENV])
    path = Path(data_dir) / SITE_CONFIG
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _from_file(str(path), mtime)


def viewer_url(template: str | None, **uids: str | None) -> str | None:
    """The template filled with ``uids``; None when there is no template or a UID it names is missing."""
    if not template:
        return None
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if any(not uids.get(n) for n in names):
        return None
    return template.format(**{n: quote(str(uids[n]), safe="") for n in names})
