"""``python -m echosearch.ui.serve run APP ...``: Streamlit's own command line, after importing what
every page of the UI needs.

Streamlit runs the app script when a browser first connects, so the modules it imports (the search
engine with its database layer, FAISS and NumPy: a second or two) used to be paid by the first person
to open the page. Imported here, before the server listens, they are paid before "the server is up".
Nothing Streamlit-specific is imported early (cached functions belong to the running server), and
the model is not loaded: that happens in the background after the first page is drawn.

The data dir's Engine (database, vector index, site key: about a second) is opened here too and
handed to the app through :mod:`echosearch.ui.preopened`, so the first visitor does not pay for it
either (``ECHOSEARCH_UI_PREOPEN=0`` turns this off: ``benchmarks/ui_load.py`` compares both).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

PRELOAD = (
    "echosearch.search",
    "echosearch.labels.naming",
    "echosearch.reports",
    "echosearch.cine",
    "PIL.Image",
)


def main() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    if os.environ.get("ECHOSEARCH_UI_PREOPEN", "1") != "0":
        _preopen()
    from streamlit.web.cli import main as streamlit_main

    sys.exit(streamlit_main(prog_name="streamlit"))


def _preopen() -> None:
    """Open the default space's Engine of the data dir ``echosearch ui`` passes; a failure here is
    only logged (the app opens it again and shows the error to the user)."""
    from echosearch.errors import EchosearchError
    from echosearch.paths import data_dir
    from echosearch.search import Engine
    from echosearch.ui import preopened

    root = str(data_dir(None).resolve())
    try:
        preopened.put(root, None, Engine.open(root))
    except EchosearchError as exc:
        logging.getLogger(__name__).warning("could not open %s before the first visitor: %s", root, exc)


if __name__ == "__main__":
    main()
