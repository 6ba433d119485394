"""Echo report text: normalisation and variable extraction, EchoCLIP-compatible.

EchoCLIP-R was trained on reports put through one particular normalisation (upper case, unified
verb tenses and severity adverbs, dates and ICD codes removed, periods added where the reporting
software often omits them). A query or report must go through the *same* steps, or its phrases will
not match the template vocabulary the model knows; so these rules are fixed by compatibility, not
taste, and the golden tests pin them down.

:func:`extract_variables` then pulls out the numbers and severity words, leaving ``<#>`` slots: the
template vocabulary is written with those slots, and the values travel as separate tokens.
"""

from __future__ import annotations

import re

#: The placeholder the template vocabulary uses where a number or severity word goes.
SLOT = "<#>"

#: Severity words that become variables, in the order the alternation tries them.
SEVERITY_WORDS = ("MODERATE/SEVERE", "MILD/MODERATE", "MILD", "MODERATE", "SEVERE", "VERY SEVERE")

_NUMBER = r"\d+\.?\d*"

# Phrases after which the reporting software tends to leave out the full stop. ``<#>`` is a number.
_NEEDS_PERIOD = (
    "THE PEAK TRANSAORTIC GRADIENT IS <#>MMHG",
    "THE MEAN TRANSAORTIC GRADIENT IS <#>MMHG",
    "LV EJECTION FRACTION IS <#>%",
    "ESTIMATED PA PRESSURE IS <#>MMHG",
    "RESTING SEGMENTAL WALL MOTION ANALYSIS",
    "THE IVC DIAMETER IS <#>MM",
    "EST RV/RA PRESSURE GRADIENT IS <#>MMHG",
    "ESTIMATED PEAK RVSP IS <#>MMHG",
    "HEART FAILURE, UNSPECIFIED",
    "CHEST PAIN, UNSPECIFIED",
    "SINUS OF VALSALVA: <#>CM",
    "THE PEAK TRANSMITRAL GRADIENT IS <#>MMHG",
    "THE MEAN TRANSMITRAL GRADIENT IS <#>MMHG",
    "ASCENDING AORTA <#>CM",
    "ESTIMATED PA SYSTOLIC PRESSURE IS <#>MMHG",
    "ICD_CODE SHORTNESS BREATH",
    "ICD_CODE ABNORMAL ELECTROCARDIOGRAM ECG EKG",
    "SHORTNESS BREATH",
    "ABNORMAL ELECTROCARDIOGRAM ECG EKG",
    "THE LEFT ATRIAL APPENDAGE IS NORMAL IN APPEARANCE WITH NO EVIDENCE OF THROMBUS",
)


def _phrase_pattern(phrase: str) -> str:
    """A phrase as a regex where each ``<#>`` slot accepts a number, not followed by a period."""
    body = _NUMBER.join(re.escape(part) for part in phrase.split(SLOT))
    return f"(?:{body})(?!\\.)"


# The cleaning steps, applied in this order (order matters: e.g. periods are split before dates go).
_STEPS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\^|CRLF|‡", ""),  # markup and the variable separator never come from the text
        (r"(?<=\D)\.|\.(?=\D)", ". "),  # a period not inside a number ends a sentence
        (r"[\[\]]", ""),
        (r"\bWAS\b", "IS"),  # tense and wording variants the vocabulary writes one way
        (r"\bWERE\b", "ARE"),
        (r"\bAND/OR\b", "AND"),
        (r"NORMALLY", "NORMAL"),
        (r"MILDLY", "MILD"),
        (r"MODERATELY", "MODERATE"),
        (r"SEVERELY", "SEVERE"),
        (r"PULMONARY ARTERY", "PA"),
        (r"\d{2}/\d{2}/\d{4}", ""),  # dates carry no finding
        (r"\d{2}\.\d{2}\.\d{4}", ""),
        (r"[A-Z](\d+\.\d*\b)", ""),  # ICD-10-like codes (I25.10)
        (r"\s+(MMHG|MM|CM|%)", r"\1"),  # "20 MMHG" -> "20MMHG", as in the vocabulary
        (r"\s\.", "."),
        (r"\s+", " "),
        (r"\s\+\s", "+"),
        (r"\+CVPMMHG", "MMHG"),
    )
)
_ADD_PERIOD = re.compile("(" + "|".join(_phrase_pattern(p) for p in _NEEDS_PERIOD) + ")")
_PERIOD_RUNS = re.compile(r"\.+")

_VARIABLE = re.compile(f"({_NUMBER})|((?<![A-Za-z])(?:{'|'.join(re.escape(w) for w in SEVERITY_WORDS)}))")


def clean_report(text: str) -> str:
    """Normalise report or query text the way EchoCLIP's training reports were normalised.

    The result is upper case, single-spaced and ends with one space (vocabulary phrases end with a
    space too, so the last phrase can match). Texts of at most one character are returned as they
    are, as the reference does; they never match a phrase anyway.
    """
    if len(text) <= 1:
        return text
    text = text.upper().strip().replace("`", "'")
    for pattern, replacement in _STEPS:
        text = pattern.sub(replacement, text)
    text = text.strip() + " "
    text = _ADD_PERIOD.sub(r"\1.", text)
    return _PERIOD_RUNS.sub(".", text)


def extract_variables(text: str) -> tuple[list[str], str]:
    """Split cleaned text into its variables and the text with a ``<#>`` slot for each.

    Variables are numbers (``20``, ``2.29``) and severity words (``MILD``, ``MODERATE/SEVERE``), in
    the order they appear; the model sees them as separate tokens after the phrase they belong to.
    """
    variables = [m.group(1) or m.group(2) for m in _VARIABLE.finditer(text)]
    return variables, _VARIABLE.sub(SLOT, text)


# The EF a report states: "LV EJECTION FRACTION IS 55%", "LVEF 50-55 %", "EF: ~35%", "ejection fraction
# of 60 to 65%". A few words may stand between the name and the number, never a sentence end.
_REPORT_EF = re.compile(
    r"(?:EJECTION\s+FRACTION|\bLVEF\b|\bEF\b)[^.%\d]{0,30}?(\d{1,2}(?:\.\d+)?)"
    r"(?:\s*(?:-|–|TO)\s*(\d{1,2}(?:\.\d+)?))?\s*%",
    re.IGNORECASE,
)


def report_ef(text: str | None) -> tuple[float, float] | None:
    """The ejection fraction a report states, as (low, high) percent (equal for a single value), or
    None when it states none. The first statement counts (a report's own EF comes before any
    comparison with a prior)."""
    for m in _REPORT_EF.finditer(text or ""):
        low = float(m.group(1))
        high = float(m.group(2)) if m.group(2) else low
        if 1 <= low <= high <= 95:
            return low, high
    return None
