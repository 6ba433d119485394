"""`echosearch demo`: synthesise, index with the bundled demo model, say what to try; rerun is a no-op."""

from __future__ import annotations

import json
import shlex

import pytest

from echosearch.models import list_models


@pytest.mark.slow
def test_demo_indexes_a_small_archive_and_reruns_incrementally(tmp_path, cli):
    if not any(m["name"] == "echosearch-demo" and m["status"] == "ready" for m in list_models()):
        pytest.skip("the bundled demo model is not built in this checkout")
    data = tmp_path / "demo"
    first = cli("demo", "--no-ui", "--patients", "2", "--data", str(data), "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["index"]["new"] > 0 and doc["index"]["failed"] == 0
    assert any(line.startswith("echosearch search") for line in doc["try"])
    second = cli("demo", "--no-ui", "--patients", "2", "--data", str(data), "--json")
    again = json.loads(second.stdout)["index"]
    assert again["new"] == 0 and again["unchanged"] == doc["index"]["new"]
    search = cli("search", "SEVERE DILATED LEFT VENTRICLE.", "-k", "3", "--data", str(data), "--json")
    assert search.returncode == 0 and len(json.loads(search.stdout)["results"]) == 3
    built = [
        m["name"] for m in list_models() if m["name"].startswith("echosearch-demo") and m["status"] == "ready"
    ]
    assert doc["models"] == [m for m in ("echosearch-demo", "echosearch-demo-bpe") if m in built]
    # every search the demo suggests, in a clinician's words and for each model, finds clips or
    # says why not (a 2-patient archive may have no clip with an EF under 30)
    for line in doc["try"]:
        args = shlex.split(line)
        if args[1] == "search":
            done = cli(*args[1:], "-k", "3", "--json")
            assert done.returncode == 0, done.stderr
            found = json.loads(done.stdout)
            explained = any("filters" in n or "(from the query)" in n for n in found["notes"])
            assert found["results"] or explained, line  # an empty list always says why
            assert found["interpretation"]["unmatched"] == [], line
