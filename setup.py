"""The package layout; everything else is declared in pyproject.toml.

The wheel holds one importable package, ``echosearch``. Three top-level folders of the repository
go into it without being moved: ``indexer/`` -> ``echosearch.indexer`` and ``ui/`` ->
``echosearch.ui`` (as top-level packages their generic names would clash with other
distributions'), and ``configs/`` -> ``echosearch/_configs/`` (the model registry, task files and
lexicons, shipped as package data; the top-level folder stays their one source). A checkout maps
the two packages the same way (``echosearch/__init__.py``), and :func:`echosearch.paths.configs_dir`
finds the packaged configs or the checkout's. Computed here rather than listed in pyproject.toml so
that a new subpackage can never be left out of the wheel.
"""

from setuptools import find_namespace_packages, setup

MAPPED = {"echosearch.indexer": "indexer", "echosearch.ui": "ui", "echosearch._configs": "configs"}


def _packages(root: str, prefix: str) -> list[str]:
    found = find_namespace_packages(root, exclude=["*__pycache__*"])
    return [prefix, *(f"{prefix}.{name}" for name in found)]


packages = _packages("echosearch", "echosearch")
for name, folder in MAPPED.items():
    packages += _packages(folder, name)

setup(packages=packages, package_dir=MAPPED)
