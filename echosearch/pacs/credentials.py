"""Credentials for a DICOMweb server: from the environment or a netrc-style file, never from the
command line (visible to every user in ``ps``) and never written to a log or the database.

Order: ``ECHOSEARCH_DICOMWEB_TOKEN`` (a bearer token), else ``ECHOSEARCH_DICOMWEB_USER`` +
``ECHOSEARCH_DICOMWEB_PASSWORD`` (HTTP basic), else the server's host in a netrc file (``--netrc``,
``$NETRC``, or ``~/.netrc``), else none.
"""

from __future__ import annotations

import netrc
import os
from dataclasses import dataclass, field
from pathlib import Path

from echosearch.errors import UsageError

ENV_TOKEN = "ECHOSEARCH_DICOMWEB_TOKEN"
ENV_USER = "ECHOSEARCH_DICOMWEB_USER"
ENV_PASSWORD = "ECHOSEARCH_DICOMWEB_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    """Basic or bearer credentials; ``repr`` shows only which kind, so a logged config leaks nothing."""

    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return "bearer" if self.token else "basic" if self.user else "none"

    def __repr__(self) -> str:
        return f"Credentials({self.kind})"


def resolve_credentials(host: str, netrc_file: str | None = None) -> Credentials:
    """The credentials to use for ``host`` (see the module doc for the order)."""
    if os.environ.get(ENV_TOKEN):
        return Credentials(token=os.environ[ENV_TOKEN])
    user, password = os.environ.get(ENV_USER), os.environ.get(ENV_PASSWORD)
    if user:
        if password is None:
            raise UsageError(f"{ENV_USER} is set but {ENV_PASSWORD} is not")
        return Credentials(user=user, password=password)
    path = netrc_file or os.environ.get("NETRC") or str(Path.home() / ".netrc")
    if not os.path.isfile(path):
        if netrc_file:
            raise UsageError(f"no such netrc file: {netrc_file}")
        return Credentials()
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        raise UsageError(f"cannot read the netrc file {path}: {exc.args[0] if exc.args else exc}") from None
    if entry is None:
        return Credentials()
    login, _account, secret = entry
    return Credentials(user=login, password=secret or "")
