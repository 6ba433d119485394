"""The CLI contract: exit codes and one-line errors."""

import json

import pytest


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_unknown_command_is_usage_error(cli):
    result = cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_version(cli):
    result = cli("--version")
    assert result.returncode == 0
    assert "echosearch" in result.stdout


def test_interpret_prints_the_documented_json(cli):
    done = cli("interpret", "severe LV dysfunction, no pacer", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert {"query", "phrases", "negatives", "filters", "unmatched"} <= set(doc)
    # the demo vocabulary has the template wording and the abbreviated one: both, sharing the weight
    assert {"text": "SEVERE REDUCED LEFT VENTRICULAR SYSTOLIC FUNCTION.", "weight": 0.5} in doc["phrases"]
    assert sum(p["weight"] for p in doc["phrases"]) == pytest.approx(1.0)
    assert doc["filters"] and doc["negatives"]


def test_interpret_for_a_vocabulary_file_and_a_bad_lexicon(cli, tmp_path):
    from echosearch.synth.reports import vocab_path

    done = cli("interpret", "dilated RV", "--vocab", str(vocab_path()))
    assert done.returncode == 0 and "MILD DILATED RIGHT VENTRICLE." in done.stdout
    done = cli("interpret", "dilated RV", "--lexicon", "nope")
    assert done.returncode == 2 and "unknown lexicon" in done.stderr and "Traceback" not in done.stderr
