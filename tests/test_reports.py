"""Report cleaning and variable extraction: each rule on a small case, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from echosearch.reports import SLOT, clean_report, extract_variables


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("lv function was normal", "LV FUNCTION IS NORMAL "),  # upper case, WAS -> IS, one trailing space
        ("leaflets were thin", "LEAFLETS ARE THIN "),
        ("pericardial effusion and/or thickening", "PERICARDIAL EFFUSION AND THICKENING "),
        ("severely dilated, mildly reduced", "SEVERE DILATED, MILD REDUCED "),
        ("moderately dilated, normally sized", "MODERATE DILATED, NORMAL SIZED "),
        ("pulmonary artery pressure", "PA PRESSURE "),
        ("normal size.normal function", "NORMAL SIZE. NORMAL FUNCTION "),  # in-text period split
        ("ef is 55.5%", "EF IS 55.5% "),  # a decimal point is not a sentence end
        ("normal [see note] size", "NORMAL SEE NOTE SIZE "),
        ("a^b CRLF c‡d", "AB CD "),  # ^, CRLF and ‡ removed, spaces collapsed
        ("study 01/02/2020 done", "STUDY DONE "),  # dates removed
        ("study 01.02.2020 done", "STUDY DONE "),
        ("I25.10 coronary disease", "CORONARY DISEASE "),  # ICD-like code removed
        ("gradient is 20 mmhg", "GRADIENT IS 20MMHG "),  # no space before a unit
        ("size 4 cm, ef 50 %", "SIZE 4CM, EF 50% "),
        ("normal size .", "NORMAL SIZE. "),
        ("  lots   of\t\nspace  ", "LOTS OF SPACE "),
        ("pressure 5 + cvp mmhg", "PRESSURE 5MMHG "),  # "+CVPMMHG" -> "MMHG"
        ("it`s", "IT'S "),
        ("normal size..", "NORMAL SIZE. "),  # runs of periods become one
    ],
)
def test_clean_report_rules(raw: str, cleaned: str) -> None:
    assert clean_report(raw) == cleaned


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("LV ejection fraction is 55%", "LV EJECTION FRACTION IS 55%. "),
        ("the IVC diameter is 21 mm", "THE IVC DIAMETER IS 21MM. "),
        ("estimated PA pressure is 40.0 mmHg", "ESTIMATED PA PRESSURE IS 40.0MMHG. "),
        ("resting segmental wall motion analysis", "RESTING SEGMENTAL WALL MOTION ANALYSIS. "),
        ("LV ejection fraction is 55%.", "LV EJECTION FRACTION IS 55%. "),  # already has one: no second
    ],
)
def test_clean_report_adds_missing_periods(raw: str, cleaned: str) -> None:
    assert clean_report(raw) == cleaned


@pytest.mark.parametrize("raw", ["", "a", " ", "5"])
def test_clean_report_leaves_texts_of_one_character(raw: str) -> None:
    assert clean_report(raw) == raw


@pytest.mark.parametrize(
    ("text", "variables", "slotted"),
    [
        ("LV EJECTION FRACTION IS 55%. ", ["55"], "LV EJECTION FRACTION IS <#>%. "),
        ("MILD DILATED LEFT ATRIUM. ", ["MILD"], "<#> DILATED LEFT ATRIUM. "),
        ("THERE IS MILD/MODERATE MR. ", ["MILD/MODERATE"], "THERE IS <#> MR. "),
        ("MODERATE/SEVERE TR. ", ["MODERATE/SEVERE"], "<#> TR. "),
        ("VERY SEVERE AS. ", ["VERY SEVERE"], "<#> AS. "),
        ("SCORE IS 2.29. AREA 1.5 TO 2CM. ", ["2.29", "1.5", "2"], "SCORE IS <#>. AREA <#> TO <#>CM. "),
        ("XMILD IS NOT A SEVERITY. ", [], "XMILD IS NOT A SEVERITY. "),  # a letter before: not a word
        ("NO VALUES HERE. ", [], "NO VALUES HERE. "),
    ],
)
def test_extract_variables(text: str, variables: list[str], slotted: str) -> None:
    assert extract_variables(text) == (variables, slotted)


@given(st.text())
def test_clean_report_never_raises_and_is_tidy(text: str) -> None:
    cleaned = clean_report(text)
    if len(text) > 1:
        assert cleaned.endswith(" ")
        assert not any(c in cleaned for c in "^‡[]")
        assert not any(a.isspace() and b.isspace() for a, b in zip(cleaned, cleaned[1:], strict=False))


@given(st.text().filter(lambda t: SLOT not in t))
def test_extract_variables_puts_back_what_it_took(text: str) -> None:
    cleaned = clean_report(text)
    variables, slotted = extract_variables(cleaned)
    parts = slotted.split(SLOT)
    assert len(parts) == len(variables) + 1
    rebuilt = parts[0] + "".join(v + p for v, p in zip(variables, parts[1:], strict=True))
    assert rebuilt == cleaned
