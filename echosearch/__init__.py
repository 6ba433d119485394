"""echosearch: semantic search over echocardiogram videos with EchoCLIP-style models."""

import importlib.abc
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

#: Packages of the ``echosearch`` namespace kept in top-level folders of the repository. The wheel
#: puts them inside ``echosearch/`` (setup.py maps them); in a checkout (or an editable install made
#: before the mapping) this finder maps them the same way, so ``echosearch.indexer`` is one name in
#: both places and no generic top-level ``indexer``/``ui`` package is needed.
_CHECKOUT_PACKAGES = {"echosearch.indexer": "indexer", "echosearch.ui": "ui"}
_HERE = Path(__file__).resolve().parent


class _CheckoutFinder(importlib.abc.MetaPathFinder):
    """Finds ``echosearch.indexer`` and ``echosearch.ui`` in the checkout's ``indexer/`` and ``ui/``."""

    def find_spec(self, fullname, path=None, target=None):
        folder = _CHECKOUT_PACKAGES.get(fullname)
        if folder is None or (_HERE / folder).is_dir():
            return None  # not ours, or an installed wheel that holds the package itself
        init = _HERE.parent / folder / "__init__.py"
        if not init.is_file():
            return None
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[str(init.parent)]
        )


# First in line: an editable install of another checkout (a git worktree beside it, say) maps
# ``echosearch.ui`` to *its* ui/ folder, and this checkout's echosearch must get this checkout's ui/.
if not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _CheckoutFinder())
