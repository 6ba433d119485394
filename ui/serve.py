"""``python -m echosearch.ui.serve run APP ...``: Streamlit's own command line, after importing what
every page of the UI needs.

Streamlit runs the app script when a browser first connects, so the modules it imports (the search
engine with its database layer, FAISS and NumPy: a second or two) used to be paid by the first person
to open the page. Imported here, before the server listens, they are paid before "the server is up".
Nothing Streamlit-specific is imported early (cached functions belong to the running server), and
the model is not loaded: that happens in the background after the first page is drawn.
"""

from __future__ import annotations

import importlib
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
    from streamlit.web.cli import main as streamlit_main

    sys.exit(streamlit_main(prog_name="streamlit"))


if __name__ == "__main__":
    main()
