"""Query understanding: clinicians' words -> vocabulary phrases, filters, preferences (configs/lexicon)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echosearch.errors import ConfigError, UsageError
from echosearch.query import interpret, load_lexicon
from echosearch.query.lexicon import lexicon_for
from echosearch.synth.reports import vocab_path
from echosearch.tokenizers import TemplateTokenizer


@pytest.fixture(scope="module")
def demo():
    return load_lexicon("demo"), TemplateTokenizer.from_files(None, vocab_path(), 32)


@pytest.fixture(scope="module")
def real(echoclip_ref):
    return load_lexicon("echoclip-r"), TemplateTokenizer.from_files(None, echoclip_ref / "template_vocab.txt")


def _reads_fully(tokenizer, phrase: str) -> bool:
    ex = tokenizer.explain(phrase)
    return len(ex.phrases) >= 1 and not ex.unmatched


def test_every_demo_lexicon_phrase_is_read_whole_by_the_demo_vocabulary(demo):
    lex, tok = demo
    bad = [p for p in lex.phrases() if not _reads_fully(tok, p)]
    assert not bad


def test_every_echoclip_r_lexicon_phrase_is_read_whole_by_the_real_vocabulary(real):
    lex, tok = real
    bad = [p for p in lex.phrases() if not _reads_fully(tok, p)]
    assert not bad


# query -> (phrases that must all be there, phrases that must not)
DEMO_TABLE = {
    "severe LV dysfunction": ["SEVERE REDUCED LEFT VENTRICULAR SYSTOLIC FUNCTION."],
    "pacemaker": ["A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE."],
    "PPM": ["A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE."],
    "pacmaker": ["A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE."],
    "MitraClip": ["A MITRACLIP DEVICE IS ATTACHED TO THE MITRAL LEAFLETS."],
    "s/p TEER": ["A MITRACLIP DEVICE IS ATTACHED TO THE MITRAL LEAFLETS."],
    "TAVI": ["A TRANSCATHETER AORTIC VALVE PROSTHESIS IS PRESENT."],
    "fluid around the heart": ["THERE IS A MODERATE PERICARDIAL EFFUSION."],
    "small effusion": ["THERE IS A MILD PERICARDIAL EFFUSION."],
    "large pericardial effusion": ["THERE IS A SEVERE PERICARDIAL EFFUSION."],
    "dilated RV": ["MILD DILATED RIGHT VENTRICLE.", "SEVERE DILATED RIGHT VENTRICLE."],
    "severely enlarged left ventricle": ["SEVERE DILATED LEFT VENTRICLE."],
    "moderate to severe LV dilation": ["MODERATE DILATED LEFT VENTRICLE.", "SEVERE DILATED LEFT VENTRICLE."],
    "dilated LV and RV": ["SEVERE DILATED LEFT VENTRICLE.", "SEVERE DILATED RIGHT VENTRICLE."],
    "biatrial enlargement": ["MILD DILATED LEFT ATRIUM.", "MILD DILATED RIGHT ATRIUM."],
    "normal LV function": ["LEFT VENTRICULAR SYSTOLIC FUNCTION IS NORMAL."],
    "EF 25%": ["THE LEFT VENTRICULAR EJECTION FRACTION IS 25%."],
    "A4C": ["APICAL FOUR CHAMBER VIEW."],
    "HFpEF": ["LEFT VENTRICULAR SYSTOLIC FUNCTION IS NORMAL."],
    "hyperdynamic LV": ["LEFT VENTRICULAR SYSTOLIC FUNCTION IS NORMAL."],
    "moderate LAE": ["MODERATE DILATED LEFT ATRIUM."],
    "transcatheter AVR": ["A TRANSCATHETER AORTIC VALVE PROSTHESIS IS PRESENT."],
    "permanent pacemaker": ["A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE."],
    "mod LV dysfx": ["MODERATE REDUCED LEFT VENTRICULAR SYSTOLIC FUNCTION."],
    "LVSD": ["SEVERE REDUCED LEFT VENTRICULAR SYSTOLIC FUNCTION."],
    "tiny effusion": ["THERE IS A MILD PERICARDIAL EFFUSION."],
    "apical 4 chamber view with pacer": [
        "APICAL FOUR CHAMBER VIEW.",
        "A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE.",
    ],
}


@pytest.mark.parametrize("query", sorted(DEMO_TABLE))
def test_clinical_words_become_filled_demo_phrases(demo, query):
    lex, tok = demo
    plan = interpret(query, lex, tok)
    texts = [p.text for p in plan.phrases]
    assert set(DEMO_TABLE[query]) <= set(texts), plan.summary()
    assert not any("<#>" in t for t in texts)
    assert not plan.unmatched


# EchoCLIP-R's real vocabulary: each query must give at least one acceptable phrase (and no other finding)
REAL_TABLE = {
    "pacemaker": {"ECHO DENSITY IN RIGHT VENTRICLE SUGGESTIVE OF CATHETER, PACER LEAD, OR ICD LEAD."},
    "ICD lead in RV": {"ECHO DENSITY IN RIGHT VENTRICLE SUGGESTIVE OF CATHETER, PACER LEAD, OR ICD LEAD."},
    "s/p mitraclip": {"ONE MITRACLIP IS SEEN ON THE ANTERIOR AND POSTERIOR LEAFLETS OF THE MITRAL VALVE."},
    "TAVR": {"A BIOPROSTHETIC STENT-VALVE IS PRESENT IN THE AORTIC POSITION."},
    "severe LV dysfunction": {"SEVERE DEPRESSED LEFT VENTRICULAR SYSTOLIC FUNCTION."},
    "moderately dilated left ventricle": {"MODERATE DILATED LEFT VENTRICLE."},
    "large effusion": {"LARGE PERICARDIAL EFFUSION."},
    "small pericardial effusion": {"SMALL PERICARDIAL EFFUSION."},
    "moderate to large effusion": {"MODERATE TO LARGE PERICARDIAL EFFUSION."},
    "LVEF 35%": {"LV EJECTION FRACTION IS 35%."},
    "no effusion": {"NORMAL PERICARDIUM WITH NO PERICARDIAL EFFUSION."},
    "normal RV size": {"NORMAL RIGHT VENTRICULAR SIZE."},
    "severely dilated LA": {"SEVERE DILATED LEFT ATRIUM."},
    "mild RA enlargement": {"MILD DILATED RIGHT ATRIUM."},
    "mild to moderate LV dilation": {"MILD/MODERATE DILATED LEFT VENTRICLE."},
    "severe AS": {"SEVERE AORTIC VALVE STENOSIS."},
    "moderate MR": {
        "THERE IS MODERATE MITRAL REGURGITATION.",
        "THERE IS MODERATE MITRAL VALVE REGURGITATION.",
    },
    "severe tricuspid regurgitation": {"THERE IS SEVERE TRICUSPID REGURGITATION."},
    "mild aortic insufficiency": {"MILD AORTIC REGURGITATION."},
    "no MR": {"NO MITRAL REGURGITATION SEEN."},
    "reduced RV function": {"MODERATE DEPRESSED RIGHT VENTRICULAR SYSTOLIC FUNCTION."},
    "moderate LVH": {"MODERATE LEFT VENTRICULAR HYPERTROPHY."},
    "afib": {"THE PATIENT IS IN ATRIAL FIBRILLATION DURING THE STUDY."},
    "LVAD": {"A LEFT VENTRICULAR ASSIST DEVICE CANNULA IS SEEN IN THE LEFT VENTRICULAR APEX."},
    "LA thrombus": {"LEFT ATRIAL THROMBUS SEEN."},
    "severe pulmonary hypertension": {
        "PA SYSTOLIC PRESSURE IS CONSISTENT WITH SEVERE PULMONARY HYPERTENSION."
    },
    "transcatheter AV prosthesis": {"A BIOPROSTHETIC STENT-VALVE IS PRESENT IN THE AORTIC POSITION."},
    "sm pericardial eff": {"SMALL PERICARDIAL EFFUSION."},
    "HFmrEF": {"MILD DEPRESSED LEFT VENTRICULAR SYSTOLIC FUNCTION."},
    "nl LA and RA size": {"NORMAL RIGHT ATRIAL SIZE AND MORPHOLOGY."},
    "LV size is not enlarged": {"NORMAL LEFT VENTRICULAR SIZE."},
}


@pytest.mark.parametrize("query", sorted(REAL_TABLE))
def test_clinical_words_become_real_echoclip_r_phrases(real, query):
    lex, tok = real
    plan = interpret(query, lex, tok)
    texts = {p.text for p in plan.phrases}
    assert texts & REAL_TABLE[query], plan.summary()
    assert all(_reads_fully(tok, t) for t in texts)


def test_numbers_become_a_phrase_and_a_filter_on_the_ef_label(demo):
    lex, tok = demo
    for query, low, high in (("LVEF < 30%", None, 30), ("EF under 40", None, 40), ("ef >= 55", 55, None),
                             ("EF 30-40%", 30, 40), ("EF of 25 %", 15, 35)):  # fmt: skip
        plan = interpret(query, lex, tok)
        assert [(f.task, f.low, f.high) for f in plan.filters] == [("ejection_fraction", low, high)], query
        assert plan.phrases and all(re.search(r"IS \d+%\.$", p.text) for p in plan.phrases)


def test_a_label_that_measures_the_finding_better_joins_the_ranking(demo):
    plan = interpret("severe LV dysfunction", *demo)
    prefs = {(c.kind, c.task) for c in plan.preferences}
    assert prefs == {("label", "lv_function"), ("range", "ejection_fraction"), ("text_grade", None)}
    ef = next(c for c in plan.preferences if c.kind == "range")
    assert (ef.low, ef.high) == (0, 30)


def test_a_graded_finding_also_asks_for_its_degree_read_off_each_grades_phrases(demo):
    lex, tok = demo
    plan = interpret("severely dilated RV", lex, tok)
    (cond,) = [c for c in plan.preferences if c.kind == "text_grade"]
    assert (
        cond.finding == "rv_size" and cond.grades == ["severe"] and cond.weight == lex.text_grade_weight > 0
    )
    assert list(cond.grade_phrases) == ["normal", "mild", "moderate", "severe"]
    assert "NORMAL RIGHT VENTRICULAR CAVITY SIZE." in cond.grade_phrases["normal"]
    assert "MODERATE DILATED RIGHT VENTRICLE." in cond.grade_phrases["moderate"]
    assert all(_reads_fully(tok, p) for ps in cond.grade_phrases.values() for p in ps)
    assert "(graded by sentence likeness)" in plan.summary()
    dilated = next(c for c in interpret("RV enlargement", lex, tok).preferences if c.kind == "text_grade")
    assert dilated.grades == ["mild", "moderate", "severe"]
    # a "no" is the absent phrase's and the stored label's job; an ungraded finding has no degree
    assert not [c for c in interpret("no RV dilation", lex, tok).preferences if c.kind == "text_grade"]
    assert not [c for c in interpret("pacemaker", lex, tok).preferences if c.kind == "text_grade"]
    off = replace(lex, text_grade_weight=0.0)
    assert not [c for c in interpret("severely dilated RV", off, tok).preferences if c.kind == "text_grade"]


def test_negation_is_a_negative_term_and_a_filter_never_a_wiped_query(demo):
    plan = interpret("A4C, not pacer", *demo)
    assert [p.text for p in plan.phrases] == ["APICAL FOUR CHAMBER VIEW."]  # no "no pacer" sentence
    assert "A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE." in [
        p.text for p in plan.negatives
    ]
    kinds = {(c.kind, c.task, tuple(c.grades)) for c in plan.filters}
    assert ("label", "pacemaker", ("normal",)) in kinds and any(c.kind == "view" for c in plan.filters)
    # an unknown negated word does not empty a valid query
    plan = interpret("pacemaker, not foobar", *demo)
    assert plan.phrases and plan.unmatched == ["foobar"]


def test_a_negation_after_the_finding_negates_its_clause(demo):
    for query in ("pacer absent", "pacemaker not seen", "absent pacemaker", "pacer ruled out"):
        plan = interpret(query, *demo)
        assert [(m.finding, m.negated) for m in plan.mentions] == [("pacemaker", True)], query
        assert not plan.unmatched
    plan = interpret("dilated LV, effusion absent", *demo)
    assert [(m.finding, m.negated) for m in plan.mentions] == [
        ("lv_size", False),
        ("pericardial_effusion", True),
    ]


def _read(query: str, lex) -> list[tuple[str, str | None, bool]]:
    return [(m.finding, m.grade, m.negated) for m in interpret(query, lex).mentions]


def test_a_negation_after_what_is_measured_negates_that_clause_not_a_new_one(demo):
    lex = demo[0]
    assert _read("LV size is not enlarged", lex) == [("lv_size", None, True)]
    assert _read("EF not reduced", lex) == [("lv_function", None, True)]
    plan = interpret("EF not reduced", lex)
    assert not plan.notes and not plan.unmatched  # not "'EF': give a value"
    # a negation before another finding still opens its own clause
    assert _read("pacemaker without effusion", lex) == [
        ("pacemaker", None, False),
        ("pericardial_effusion", None, True),
    ]
    assert _read("LV no effusion", lex)[-1] == ("pericardial_effusion", None, True)


def test_a_grade_said_once_for_chambers_joined_by_and_grades_each(demo):
    lex = demo[0]
    assert _read("nl LA and RA size", lex) == [("la_size", "normal", False), ("ra_size", "normal", False)]
    assert _read("severely dilated LV and RV", lex) == [
        ("lv_size", "severe", False),
        ("rv_size", "severe", False),
    ]
    assert _read("severe LV and RV dilation", lex) == [
        ("lv_size", "severe", False),
        ("rv_size", "severe", False),
    ]
    assert _read("LV and RV dilated", lex) == [("lv_size", None, False), ("rv_size", None, False)]
    # a comma is a list, not one phrase: each clause keeps its own (absent) grade
    assert _read("severe LV dysfunction, RV dilated", lex) == [
        ("lv_function", "severe", False),
        ("rv_size", None, False),
    ]


def test_a_group_word_means_each_of_its_findings(demo):
    lex = demo[0]
    devices = [("pacemaker", None, True), ("mitraclip", None, True), ("tavr", None, True)]
    assert _read("no devices", lex) == devices
    assert _read("without any device", lex) == devices
    assert [f for f, _, neg in _read("any device", lex) if not neg] == ["pacemaker", "mitraclip", "tavr"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("mild LVE", [("lv_size", "mild", False)]),
        ("sm pericardial eff", [("pericardial_effusion", "mild", False)]),
        ("nl LV fxn", [("lv_function", "normal", False)]),
        ("dil RV", [("rv_size", None, False)]),
        ("HFmrEF", [("lv_function", "mild", False)]),
        ("transcatheter AV prosthesis", [("tavr", None, False)]),
        ("prosthetic aortic valve", [("tavr", None, False)]),
        ("subxiphoid 4 chamber", [("view_sc4c", None, False)]),
        ("large effusion r/o tamponade", [("pericardial_effusion", "severe", False)]),
        ("findings c/w dilated cardiomyopathy", [("lv_size", None, False), ("lv_function", None, False)]),
        (
            "biventricular dilation w/ reduced EF",
            [("lv_size", None, False), ("rv_size", None, False), ("lv_function", None, False)],
        ),
    ],
)
def test_shorthand_clinicians_type_is_understood(demo, query, expected):
    plan = interpret(query, demo[0])
    assert [(m.finding, m.grade, m.negated) for m in plan.mentions] == expected
    assert not plan.unmatched and not plan.notes


def test_chambers_joined_by_a_slash_a_shared_state_and_a_borrowed_chamber(demo):
    lex = demo[0]
    assert _read("LV/RV dilated", lex) == [("lv_size", None, False), ("rv_size", None, False)]
    assert _read("dilated RA/RV", lex) == [("ra_size", None, False), ("rv_size", None, False)]
    assert _read("s/p mild/moderate MR", lex) == [("mitral_regurgitation", "mild-moderate", False)]
    assert _read("normal LV size and function", lex) == [
        ("lv_size", "normal", False),
        ("lv_function", "normal", False),
    ]
    assert [f for f, g, _ in _read("normal biventricular size and function", lex) if g == "normal"] == [
        "lv_size",
        "rv_size",
        "lv_function",
        "rv_function",
    ]
    # a function word after a chamber is that chamber's; an EF is always the LV's
    assert _read("dilated RV with reduced function", lex) == [
        ("rv_size", None, False),
        ("rv_function", None, False),
    ]
    assert _read("dilated RV, reduced EF", lex) == [("rv_size", None, False), ("lv_function", None, False)]
    assert _read("right heart enlargement", lex) == [("rv_size", None, False), ("ra_size", None, False)]


def test_a_value_beside_a_graded_ef_word_is_used_and_sizes_in_mm_are_not_values(demo):
    lex = demo[0]
    plan = interpret("reduced LVEF (30%)", lex)
    assert [(m.finding, m.number.describe() if m.number else None) for m in plan.mentions] == [
        ("lv_function", None),
        ("ejection_fraction", "30"),
    ]
    assert not plan.notes
    plan = interpret("TAVR 26mm Sapien", lex)
    assert [m.finding for m in plan.mentions] == ["tavr"] and not plan.unmatched and not plan.notes
    assert _read("no significant effusion", lex) == [("pericardial_effusion", None, True)]
    assert _read("EF approx 40%", lex) == [("ejection_fraction", None, False)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("no pacer severe LV dysfunction", [("pacemaker", None, True), ("lv_function", "severe", False)]),
        ("no effusion pacer", [("pericardial_effusion", None, True), ("pacemaker", None, False)]),
        ("LV not dilated reduced EF", [("lv_size", None, True), ("lv_function", None, False)]),
        ("RV dilated LV normal", [("rv_size", None, False), ("lv_size", "normal", False)]),
        ("normal LV dilated RV", [("lv_size", "normal", False), ("rv_size", None, False)]),
        ("small effusion dilated LV", [("pericardial_effusion", "mild", False), ("lv_size", None, False)]),
        ("effusion large pacer", [("pericardial_effusion", "severe", False), ("pacemaker", None, False)]),
        # one finding, however many words: no split
        ("EF severely reduced", [("lv_function", "severe", False)]),
        ("large pericardial effusion", [("pericardial_effusion", "severe", False)]),
        ("pacer lead in RV", [("pacemaker", None, False)]),
        ("severely dilated LA", [("la_size", "severe", False)]),
    ],
)
def test_a_query_without_commas_is_split_where_a_second_finding_begins(demo, query, expected):
    assert _read(query, demo[0]) == expected


def test_chambers_that_say_where_a_device_is_are_not_findings(demo):
    lex = demo[0]
    for query in ("A device lead is seen in the right atrium and right ventricle.", "lead in RA and RV"):
        assert _read(query, lex) == [("pacemaker", None, False)], query
    assert _read("MitraClip device in place.", lex) == [("mitraclip", None, False)]


def test_a_complication_negated_does_not_negate_its_finding(demo):
    lex = demo[0]
    assert _read("moderate pericardial effusion without tamponade physiology", lex) == [
        ("pericardial_effusion", "moderate", False)
    ]
    assert _read("resolved pericardial effusion", lex) == [("pericardial_effusion", None, True)]
    assert _read("pre-TAVR", lex) == [("tavr", None, True)]
    assert _read("Prior MitraClip.", lex) == [("mitraclip", None, False)]


@pytest.mark.parametrize(
    ("query", "number"),
    [
        ("LVEF 0.35", "35"),
        ("EF less than or equal to 35", "< 35"),
        ("EF greater than or equal to 55", "> 55"),
        ("EF 35 percent or less", "< 35"),
        ("ef 35/40", "35-40"),
        ("ef 35 40", "35-40"),
        ("ef45", "45"),
        ("EF 55±5%", "50-60"),
        ("EF＜40", "< 40"),
        ("ＥＦ ３５％", "35"),
        ("an ejection fraction of about thirty five percent", "35"),
        ("reduced ejection fraction below 35 percent", "< 35"),
        ("EF 55+", "> 55"),
    ],
)
def test_ef_values_however_written(demo, query, number):
    plan = interpret(query, demo[0])
    assert [m.number.describe() for m in plan.mentions if m.number] == [number]
    assert not plan.unmatched and not plan.notes


def test_a_single_ef_value_asks_for_the_grade_it_lies_in(demo):
    plan = interpret("ef 60", demo[0])
    assert [c.grades for c in plan.preferences if c.task == "lv_function"] == [["normal"]]


@pytest.mark.parametrize(
    ("query", "findings"),
    [
        ("apical views with EF 20", ["view_apical", "ejection_fraction"]),
        ("parasternal effusion", ["pericardial_effusion", "view_parasternal"]),
        ("PSAX AV TAVR", ["tavr", "view_psax_av"]),
        ("PSAX PM LV dysfunction", ["lv_function", "view_psax_pm"]),
        ("A4 pacer", ["pacemaker", "view_a4c"]),
        ("cardiomyopathy EF 20%", ["ejection_fraction", "lv_function"]),
        ("atrial enlargement", ["la_size", "ra_size"]),
        ("all four chambers are dilated", ["lv_size", "rv_size", "la_size", "ra_size"]),
        ("large pcE", ["pericardial_effusion"]),
    ],
)
def test_views_groups_and_words_of_the_second_author(demo, query, findings):
    plan = interpret(query, demo[0])
    assert sorted(m.finding for m in plan.mentions) == sorted(findings)
    assert not plan.unmatched


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cannot exclude small pericardial effusion", [("pericardial_effusion", "mild", False)]),
        ("excluding patients with a MitraClip", [("mitraclip", None, True)]),
        ("neither pacemaker nor TAVR", [("pacemaker", None, True), ("tavr", None, True)]),
        ("pacemaker-free patients", [("pacemaker", None, True)]),
        ("everything but TAVR", [("tavr", None, True)]),
        ("the ventricle right is big", [("rv_size", None, False)]),
        (
            "mild MR normal right ventricle",
            [
                ("mitral_regurgitation", "mild", False),
                ("rv_size", "normal", False),
                ("rv_function", "normal", False),
            ],
        ),
        ("left atrial dilatation, moderate", [("la_size", "moderate", False)]),
        ("pericardial collection, small", [("pericardial_effusion", "mild", False)]),
        ("moderate or severe mitral regurgitation", [("mitral_regurgitation", "moderate-severe", False)]),
        ("a moderate or larger pericardial effusion", [("pericardial_effusion", "moderate-severe", False)]),
        ("mitral regurgitation of any severity", [("mitral_regurgitation", None, False)]),
        ("MR 3+", [("mitral_regurgitation", "moderate-severe", False)]),
        ("TR 2/4", [("tricuspid_regurgitation", "moderate", False)]),
        ("TR grade II", [("tricuspid_regurgitation", "moderate", False)]),
    ],
)
def test_hedges_exceptions_word_order_and_valve_grades_of_the_third_author(demo, query, expected):
    plan = interpret(query, demo[0])
    assert [(m.finding, m.grade, m.negated) for m in plan.mentions] == expected
    assert not plan.unmatched and not plan.notes


def test_rule_out_asks_for_the_finding_and_ruled_out_negates_it(demo):
    lex = demo[0]
    assert _read("r/o pericardial effusion", lex) == [("pericardial_effusion", None, False)]
    assert _read("effusion ruled out", lex) == [("pericardial_effusion", None, True)]


def test_worse_and_better_than_are_bounds(demo):
    lex = demo[0]
    assert [m.number.describe() for m in interpret("EF worse than 30", lex).mentions] == ["< 30"]
    assert [m.number.describe() for m in interpret("LVEF better than 50%", lex).mentions] == ["> 50"]


def test_ranges_and_bounds_are_read_in_words_too(demo):
    for query, bounds in (
        ("EF between 40 and 50", (40, 50)),
        ("EF from 40 to 50%", (40, 50)),
        ("ef 40 to 50", (40, 50)),
        ("EF in the 30s", (30, 39)),
        ("EF 50's", (50, 59)),
        ("EF no more than 35", (None, 35)),
        ("EF 35% or less", (None, 35)),
        ("EF 55%+", (55, None)),
        ("EF 55 or higher", (55, None)),
        ("EF 45 %", (35, 55)),
    ):
        plan = interpret(query, *demo)
        assert [(f.low, f.high) for f in plan.filters] == [bounds], query
        assert not plan.unmatched, query
    assert interpret("ejection fraction 30 percent", *demo).unmatched == []
    assert [m.finding for m in interpret("pacer + TAVR", *demo).mentions] == ["pacemaker", "tavr"]


def test_negation_carries_over_or_and_graded_negation_means_normal(demo):
    plan = interpret("no pacer or ICD", *demo)
    assert [m.negated for m in plan.mentions] == [True]
    plan = interpret("no LV dilation", *demo)
    assert "NORMAL LEFT VENTRICULAR CAVITY SIZE." in [p.text for p in plan.phrases]
    assert all("DILATED" not in p.text for p in plan.phrases)
    plan = interpret("no effusion", *demo)
    assert "NO PERICARDIAL EFFUSION IS SEEN." in [p.text for p in plan.phrases]


def test_typos_are_corrected_and_reported(demo):
    plan = interpret("severly dilatd left ventrical", *demo)
    assert "SEVERE DILATED LEFT VENTRICLE." in [p.text for p in plan.phrases]
    assert plan.corrections


def test_short_everyday_words_are_not_corrected_into_findings(demo):
    lex = demo[0]
    for query in ("heart rate 80", "normal flow", "TAVR placed", "trial of therapy", "nine clips"):
        plan = interpret(query, lex)
        assert not plan.corrections, (query, plan.corrections)
    assert [m.finding for m in interpret("TAVR placed", lex).mentions] == ["tavr"]


def test_unknown_words_are_reported_and_nothing_understood_says_so(demo):
    plan = interpret("xyzzy flurb", *demo)
    assert not plan.understood and plan.unmatched == ["xyzzy", "flurb"]
    assert plan.summary() == "nothing understood"


def test_an_exact_template_sentence_is_read_as_typed(demo):
    text = "A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE."
    plan = interpret(text, *demo)
    assert plan.exact and [p.text for p in plan.phrases] == [text]
    assert plan.preferences  # the label still helps


def test_several_findings_are_weighted_equally(demo):
    plan = interpret("pacemaker, TAVR and large effusion", *demo)
    by_finding: dict[str, float] = {}
    for p in plan.phrases:
        by_finding[p.finding] = by_finding.get(p.finding, 0) + p.weight
    assert by_finding == pytest.approx({"pacemaker": 1.0, "tavr": 1.0, "pericardial_effusion": 1.0})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_interprets_without_error_and_never_yields_a_raw_slot(text):
    lex = load_lexicon("demo")
    plan = interpret(text, lex)
    assert not any("<#>" in p.text for p in plan.phrases + plan.negatives)
    json.dumps(plan.to_dict())


def test_the_registry_names_each_models_lexicon():
    assert lexicon_for("echosearch-demo").name == "demo"
    assert lexicon_for("echoclip-r").name == "echoclip-r"
    assert lexicon_for("echoclip").name == "echoclip-r"


def test_a_template_model_without_a_registry_entry_gets_the_lexicon_its_vocabulary_holds(demo):
    assert lexicon_for("some-local-bundle", demo[1]).name == "demo"


def test_lexicon_files_are_validated_strictly(tmp_path):
    clinical = (
        load_lexicon("demo").source and __import__("pathlib").Path(load_lexicon("demo").source)
    ).parent
    (tmp_path / "clinical.yaml").write_text((clinical / "clinical.yaml").read_text())
    model = (clinical / "demo.yaml").read_text()
    (tmp_path / "typo.yaml").write_text(model.replace("  lv_size:\n    present:", "  lv_size:\n    presnt:"))
    with pytest.raises(ConfigError, match="presnt"):
        load_lexicon(tmp_path / "typo.yaml")
    (tmp_path / "unknown.yaml").write_text(model.replace("  tavr:\n", "  tavr_valve:\n"))
    with pytest.raises(ConfigError, match="tavr_valve"):
        load_lexicon(tmp_path / "unknown.yaml")
    (tmp_path / "clinical.yaml").write_text(
        (clinical / "clinical.yaml").read_text().replace('negations: ["no",', "negations: [no,")
    )
    (tmp_path / "fine.yaml").write_text(model)
    with pytest.raises(ConfigError, match="quote"):
        load_lexicon(tmp_path / "fine.yaml")
    (tmp_path / "clinical.yaml").write_text(
        (clinical / "clinical.yaml").read_text().replace("all_normal: [lv_size,", "all_normal: [lv_sise,")
    )
    with pytest.raises(ConfigError, match="lv_sise"):
        load_lexicon(tmp_path / "fine.yaml")


def test_a_normal_study_asks_every_finding_it_covers_to_be_normal_unless_the_query_names_it(demo):
    lex, tok = demo
    plan = interpret("structurally normal heart", lex, tok)
    grades = {(c.task or c.finding, c.kind): c.grades for c in plan.preferences if c.kind != "range"}
    assert grades[("pacemaker", "label")] == ["normal"] and grades[("tavr", "label")] == ["normal"]
    assert grades[("lv_size", "label")] == ["normal"] and grades[("rv_size", "text_grade")] == ["normal"]
    assert not plan.filters  # preferences: one label's error never hides a normal study
    assert all(not c.present for c in plan.preferences if c.kind != "range")
    paced = interpret("normal echo with pacemaker", lex, tok)
    pacer = [c for c in paced.preferences if c.task == "pacemaker"]
    assert len(pacer) == 1 and pacer[0].present  # what the query names wins over "normal"
    assert [c.finding for c in interpret("not a normal study", lex, tok).preferences] == []


def test_an_unknown_lexicon_name_is_a_usage_error():
    with pytest.raises(UsageError, match="demo"):
        load_lexicon("no-such-lexicon")


def test_a_function_word_goes_to_the_chamber_the_clause_names(demo):
    plan = interpret("reduced RV function", *demo)
    assert [m.finding for m in plan.mentions] == ["rv_function"]
    plan = interpret("RV dysfunction, severe AS", load_lexicon("echoclip-r"))
    assert [m.finding for m in plan.mentions] == ["rv_function", "aortic_stenosis"]
    assert plan.mentions[1].grade == "severe"


def test_upper_case_only_abbreviations_do_not_fire_on_ordinary_words(demo):
    assert [m.finding for m in interpret("AS", *demo).mentions] == ["aortic_stenosis"]
    assert interpret("as", *demo).mentions == []


def test_phrases_an_older_models_vocabulary_lacks_are_dropped_not_sent_empty():
    from echosearch.models import resolve_bundle
    from echosearch.tokenizers import load_tokenizer

    bundle = resolve_bundle("echosearch-demo")
    tok = load_tokenizer(bundle.tokenizer_spec, base_dir=bundle.path, context_length=bundle.context_length)
    plan = interpret("dilated LV, A5C", load_lexicon("demo"), tok)
    for p in plan.phrases:
        ex = tok.explain(p.text)
        assert ex.phrases and not ex.unmatched, p.text
    lv = [p for p in plan.phrases if p.finding == "lv_size"]
    assert lv and sum(p.weight for p in lv) == pytest.approx(1.0)
