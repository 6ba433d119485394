"""The built wheel works outside the checkout: built from a copy of the source, installed into a
fresh virtual environment, it finds its registry, task files and lexicons (package data), imports
``echosearch.indexer``/``echosearch.ui`` from itself, and runs ``models list``, a small ``demo``, a
search and the UI's app.

The new environment gets no dependencies of its own (no network, and torch is large): a ``.pth``
file, written after the wheel is installed, lets it import them from this test's environment. Its
own site-packages comes first, and every command runs from a temporary folder with ``PYTHONPATH``
unset, so the asserts on ``echosearch.__file__`` show that the wheel, not the checkout, answered.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
#: What the wheel is built from (everything else in the repository stays out of it).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "echosearch", "indexer", "ui", "configs")
#: Folders of the repository and where the wheel puts them.
MAPPED = {"echosearch": "echosearch", "indexer": "echosearch/indexer", "ui": "echosearch/ui",
          "configs": "echosearch/_configs"}  # fmt: skip


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        item = REPO / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, src / name)
    dist = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--quiet", "-w", str(dist), str(src)], cwd=src, env=env)  # fmt: skip
    (built,) = dist.glob("echosearch-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("ECHOSEARCH_")}
    env["ECHOSEARCH_CACHE"] = str(root.parent / "cache")
    work = root.parent / "work"
    work.mkdir()
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "--quiet", str(wheel)], cwd=work, env=env)  # fmt: skip
    # Only now (pip would otherwise take this environment's echosearch for the installed one): the
    # dependencies, from the site-packages of the environment running the tests.
    purelib = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work, env
        ).stdout.strip()
    )
    ours = [*site.getsitepackages(), sysconfig.get_path("purelib")]
    (purelib / "_test_dependencies.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    return {"root": root, "python": python, "bin": root / "bin", "env": env, "work": work, "purelib": purelib}


def _files(folder: Path) -> dict[str, int]:
    return {
        str(p): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_wheel_holds_every_module_and_config_under_the_echosearch_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"{target}/{p.relative_to(REPO / folder).as_posix()}"
        for folder, target in MAPPED.items()
        for p in (REPO / folder).rglob("*")
        if p.is_file() and p.suffix in (".py", ".yaml", ".md") and "__pycache__" not in p.parts
        and not (folder == "echosearch" and p.suffix == ".md")
    }  # fmt: skip
    assert expected - names == set()
    assert {"echosearch/_configs/models.yaml", "echosearch/_configs/tasks/demo.yaml"} <= names
    assert "echosearch/data/models/echosearch-demo/manifest.json" in names
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"echosearch"}  # no generic top-level indexer/ or ui/


def test_the_installed_wheel_runs_models_list_a_small_demo_a_search_and_the_ui(venv, tmp_path):
    env, work = venv["env"], venv["work"]
    probe = _run([str(venv["python"]), "-c", (
        "import importlib.util, echosearch, echosearch.indexer.runner as r; "
        "from echosearch.paths import configs_dir; from echosearch.cli.ui import APP; "
        "print(echosearch.__file__); print(r.__file__); print(configs_dir()); print(APP, APP.is_file()); "
        "print(importlib.util.find_spec('indexer'), importlib.util.find_spec('ui'))"
    )], work, env).stdout.splitlines()  # fmt: skip
    package = venv["purelib"] / "echosearch"
    assert probe[0] == str(package / "__init__.py")
    assert probe[1] == str(package / "indexer" / "runner.py")
    assert probe[2] == str(package / "_configs")
    assert probe[3] == f"{package / 'ui' / 'app.py'} True"
    assert probe[4] == "None None"

    before = _files(package)
    listed = _run([str(venv["bin"] / "echosearch"), "models", "list"], work, env)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("echosearch-demo "))
    assert "ready" in row

    data = tmp_path / "demo-data"
    demo = _run([str(venv["bin"] / "echosearch"), "demo", "--no-ui", "--data", str(data), "--patients", "1",
                 "--model", "echosearch-demo"], work, env)  # fmt: skip
    assert "The demo archive is indexed in" in demo.stdout and "Try:" in demo.stdout
    assert "0 failed" in demo.stderr and (data / "echosearch.db").is_file()
    assert _files(package) == before  # nothing was written into the installed package

    found = _run([str(venv["bin"] / "echosearch"), "search", "pacmaker", "--data", str(data)], work, env)
    assert " 1. " in found.stdout and "model echosearch-demo" in found.stderr

    # the Streamlit app `echosearch ui` runs, from the installed package, on the demo's index
    ui = _run([str(venv["python"]), "-c", (
        "from streamlit.testing.v1 import AppTest; from echosearch.cli.ui import APP; "
        "at = AppTest.from_file(str(APP), default_timeout=120).run(); "
        "assert not at.exception, [e.value for e in at.exception]; print(at.sidebar.radio[0].options)"
    )], work, {**env, "ECHOSEARCH_HOME": str(data)})  # fmt: skip
    assert "Search" in ui.stdout and "Index status" in ui.stdout
    assert _files(package) == before
