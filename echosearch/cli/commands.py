"""Imports every command module so that its commands register on the group.

Keep one import per command module; each module decorates its functions with ``@cli.command``.
"""

from echosearch.cli import (  # noqa: F401
    db,
    demo,
    index,
    interpret,
    key,
    listen,
    models,
    probe,
    search,
    serve,
    sources,
    synth,
    tokenize,
    train,
    ui,
    users,
)
