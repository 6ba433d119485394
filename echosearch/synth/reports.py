"""Study reports in the echo reporting-template style, built only from the demo vocabulary.

Every sentence of a report is one phrase of ``echosearch/data/demo_vocab/template_vocab.txt`` with its
``<#>`` slots filled by a number or a severity word, so the demo model's template tokenizer sees one
token per phrase plus its variables, exactly as EchoCLIP-R does with its own vocabulary.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from echosearch.paths import package_data
from echosearch.synth.anatomy import SEVERITIES, Findings

SLOT = "<#>"
EFFUSION_WORDS = ("NONE", "MILD", "MODERATE", "SEVERE")  # small / moderate / large, as severities
REGURGITATION_WORDS = ("MILD", "MILD", "MODERATE")  # TRACE is no variable token
VIEW_PHRASES = {"A4C": "APICAL FOUR CHAMBER VIEW.", "PLAX": "PARASTERNAL LONG AXIS VIEW."}


def vocab_path() -> Path:
    return package_data() / "demo_vocab" / "template_vocab.txt"


@lru_cache(maxsize=4)
def load_vocabulary(path: Path | None = None) -> tuple[str, ...]:
    """The template phrases (stripped), in file order."""
    text = Path(path or vocab_path()).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def fill(phrase: str, *values: object) -> str:
    """A vocabulary phrase with its slots filled in order; checks the phrase exists."""
    if phrase not in load_vocabulary():
        raise KeyError(f"not a demo vocabulary phrase: {phrase!r}")
    if phrase.count(SLOT) != len(values):
        raise ValueError(f"{phrase!r} has {phrase.count(SLOT)} slots, got {len(values)} values")
    for v in values:
        phrase = phrase.replace(SLOT, str(v), 1)
    return phrase


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Regex matching a phrase with any number or upper-case word(s) in its slots."""
    parts = [re.escape(p) for p in phrase.split(SLOT)]
    return re.compile(r"(\d+(?:\.\d+)?|[A-Z]+(?: TO [A-Z]+)?)".join(parts))


def sentences(report: str) -> list[str]:
    """Split a report into its phrases (every phrase ends with a period followed by a space or the end)."""
    return [s.strip() + "." for s in re.split(r"\.(?:\s+|$)", report.strip()) if s.strip()]


def match_phrase(sentence: str) -> str | None:
    """The vocabulary phrase this sentence instantiates, or None."""
    for phrase in load_vocabulary():
        if phrase_pattern(phrase).fullmatch(sentence):
            return phrase
    return None


def _chamber(normal: str, dilated: str, grade: int) -> str:
    return fill(normal) if grade == 0 else fill(dilated, SEVERITIES[grade])


def study_report(f: Findings, prior: Findings | None, rng: np.random.Generator) -> str:
    """The report of one study; the order follows a real template (indication, chambers, valves, ...)."""
    out: list[str] = []
    if f.pacer:
        out.append(fill("EVALUATION OF PACEMAKER LEAD POSITION."))
    elif f.mitraclip or f.tavr:
        out.append(fill("FOLLOW UP AFTER VALVE INTERVENTION."))
    elif f.effusion:
        out.append(fill("EVALUATION OF PERICARDIAL EFFUSION."))
    else:
        out.append(fill("EVALUATION OF LEFT VENTRICULAR FUNCTION."))
    out.append(fill("TECHNICALLY ADEQUATE TRANSTHORACIC STUDY."))
    out.append(fill("HEART RATE DURING THE STUDY IS <#> BPM.", f.heart_rate))
    out.append(_chamber("NORMAL LEFT VENTRICULAR CAVITY SIZE.", "<#> DILATED LEFT VENTRICLE.", f.lv_size))
    if f.ef < 40:
        out.append(fill("THE LEFT VENTRICULAR WALLS ARE THIN."))
    if f.lv_function == 0:
        out.append(fill("LEFT VENTRICULAR SYSTOLIC FUNCTION IS NORMAL."))
    else:
        out.append(fill("<#> REDUCED LEFT VENTRICULAR SYSTOLIC FUNCTION.", SEVERITIES[f.lv_function]))
    out.append(fill("THE LEFT VENTRICULAR EJECTION FRACTION IS <#>%.", f.ef))
    if f.ef < 40:
        out.append(fill("THE LEFT VENTRICLE IS GLOBALLY HYPOKINETIC."))
    out.append(_chamber("NORMAL RIGHT VENTRICULAR CAVITY SIZE.", "<#> DILATED RIGHT VENTRICLE.", f.rv_size))
    out.append(_chamber("NORMAL LEFT ATRIAL SIZE.", "<#> DILATED LEFT ATRIUM.", f.la_size))
    out.append(_chamber("NORMAL RIGHT ATRIAL SIZE.", "<#> DILATED RIGHT ATRIUM.", f.ra_size))
    if f.mitraclip:
        out.append(fill("A MITRACLIP DEVICE IS ATTACHED TO THE MITRAL LEAFLETS."))
        out.append(
            fill(
                "THERE IS <#> RESIDUAL MITRAL REGURGITATION AFTER CLIP REPAIR.",
                REGURGITATION_WORDS[int(rng.integers(0, 3))],
            )
        )
    else:
        out.append(fill("THE MITRAL VALVE LEAFLETS OPEN WELL."))
    if f.tavr:
        out.append(fill("A TRANSCATHETER AORTIC VALVE PROSTHESIS IS PRESENT."))
        out.append(fill("THE TRANSCATHETER VALVE IS STABLE IN POSITION."))
    else:
        out.append(fill("THE AORTIC VALVE HAS THREE THIN CUSPS THAT OPEN FULLY."))
    if f.pacer:
        out.append(fill("A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE."))
    if f.effusion:
        out.append(fill("THERE IS A <#> PERICARDIAL EFFUSION.", EFFUSION_WORDS[f.effusion]))
        if f.effusion < 3:
            out.append(fill("NO ECHOCARDIOGRAPHIC EVIDENCE OF TAMPONADE PHYSIOLOGY."))
    else:
        out.append(fill("NO PERICARDIAL EFFUSION IS SEEN."))
    out.extend(_comparison(f, prior))
    if _is_normal(f):
        out.append(fill("STRUCTURALLY NORMAL HEART."))
    elif f.ef < 40:
        out.append(fill("HEART FAILURE WITH REDUCED EJECTION FRACTION."))
    return " ".join(out)


def _is_normal(f: Findings) -> bool:
    sizes = (f.lv_size, f.rv_size, f.la_size, f.ra_size, f.effusion)
    return f.lv_function == 0 and not any(sizes) and not (f.pacer or f.mitraclip or f.tavr)


def _comparison(f: Findings, prior: Findings | None) -> list[str]:
    if prior is None:
        return [fill("THE PRIOR STUDY IS NOT AVAILABLE FOR COMPARISON.")]
    out = []
    if f.ef - prior.ef >= 8:
        out.append(fill("COMPARED WITH THE PRIOR STUDY, THE EJECTION FRACTION HAS IMPROVED."))
    elif prior.ef - f.ef >= 8:
        out.append(fill("COMPARED WITH THE PRIOR STUDY, THE EJECTION FRACTION HAS DECREASED."))
    if f.pacer and not prior.pacer:
        out.append(fill("A PACEMAKER LEAD HAS BEEN PLACED SINCE THE PRIOR STUDY."))
    if f.effusion and not prior.effusion:
        out.append(fill("THE PERICARDIAL EFFUSION IS NEW SINCE THE PRIOR STUDY."))
    elif prior.effusion and not f.effusion:
        out.append(fill("THE PERICARDIAL EFFUSION HAS RESOLVED SINCE THE PRIOR STUDY."))
    return out or [fill("COMPARED WITH THE PRIOR STUDY, THERE IS NO SIGNIFICANT CHANGE.")]
