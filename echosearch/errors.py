"""The exception family for mistakes a user can make and failures we can explain.

Anything raised as an :class:`EchosearchError` is shown to the user as one line (no traceback)
by the CLI and the UI; anything else is a bug.
"""


class EchosearchError(Exception):
    """Base class for errors with a message fit for an end user."""


class ConfigError(EchosearchError):
    """A configuration, task or registry file is missing or malformed."""


class UsageError(EchosearchError):
    """The caller asked for something that cannot be done (bad argument, unknown name)."""
