"""Study reports in the echo reporting-template style, built only from the demo vocabulary.

Every sentence of a report is one phrase of ``echosearch/data/demo_vocab/template_vocab.txt`` with its
``<#>`` slots filled by a number or a severity word, so the demo model's template tokenizer sees one
token per phrase plus its variables, exactly as EchoCLIP-R does with its own vocabulary.

Two styles: ``template`` writes every statement in one fixed wording and order (what the shipped demo
model was trained on); ``varied`` writes each in one of several equivalent wordings (:data:`WORDINGS`,
abbreviations and synonyms included), with severity adverbs and a shuffled order of chambers and of
valves/devices, the way real reports differ between readers. The facts stated are the same in both.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from echosearch.paths import package_data
from echosearch.synth.anatomy import SEVERITIES, Findings
from echosearch.synth.views import VIEW_SPECS

SLOT = "<#>"
EFFUSION_WORDS = ("NONE", "MILD", "MODERATE", "SEVERE")  # small / moderate / large, as severities
REGURGITATION_WORDS = ("MILD", "MILD", "MODERATE")  # TRACE is no variable token
VIEW_PHRASES = {code: spec.phrase for code, spec in VIEW_SPECS.items()}  # a clip's view, as a sentence


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


REPORT_STYLES = ("template", "varied")

# Equivalent wordings of each statement, all phrases of the demo vocabulary. The first is the
# reporting template's own (style "template" only ever writes it); style "varied" picks one per report,
# as real reports vary between readers and sites. Severity slots take MILD/MODERATE/SEVERE, or before
# DILATED/ENLARGED/REDUCED also the adverbs MILDLY/... that the report cleaner maps back to them.
WORDINGS: dict[str, tuple[str, ...]] = {
    "quality": ("TECHNICALLY ADEQUATE TRANSTHORACIC STUDY.",),
    "heart_rate": ("HEART RATE DURING THE STUDY IS <#> BPM.", "HR <#> BPM."),
    "lv_normal": (
        "NORMAL LEFT VENTRICULAR CAVITY SIZE.",
        "NORMAL LV SIZE.",
        "THE LEFT VENTRICLE IS NORMAL IN SIZE.",
    ),
    "lv_dilated": ("<#> DILATED LEFT VENTRICLE.", "THE LEFT VENTRICLE IS <#> ENLARGED.", "<#> LV DILATION."),
    "lv_thin": ("THE LEFT VENTRICULAR WALLS ARE THIN.", "THIN LV WALLS."),
    "lvf_normal": ("LEFT VENTRICULAR SYSTOLIC FUNCTION IS NORMAL.", "NORMAL LV SYSTOLIC FUNCTION."),
    "lvf_reduced": (
        "<#> REDUCED LEFT VENTRICULAR SYSTOLIC FUNCTION.",
        "LEFT VENTRICULAR SYSTOLIC FUNCTION IS <#> REDUCED.",
        "<#> REDUCED LV SYSTOLIC FUNCTION.",
        "LV SYSTOLIC FUNCTION IS <#> REDUCED.",
    ),
    "ef": (
        "THE LEFT VENTRICULAR EJECTION FRACTION IS <#>%.",
        "VISUALLY ESTIMATED EJECTION FRACTION OF <#>%.",
        "LVEF IS <#>%.",
        "LV EJECTION FRACTION IS <#>%.",
    ),
    "lv_hypokinetic": ("THE LEFT VENTRICLE IS GLOBALLY HYPOKINETIC.", "GLOBAL LV HYPOKINESIS."),
    "rv_normal": ("NORMAL RIGHT VENTRICULAR CAVITY SIZE.", "NORMAL RV SIZE."),
    "rv_dilated": (
        "<#> DILATED RIGHT VENTRICLE.",
        "THE RIGHT VENTRICLE IS <#> ENLARGED.",
        "<#> RV DILATION.",
    ),
    "la_normal": ("NORMAL LEFT ATRIAL SIZE.", "NORMAL LA SIZE."),
    "la_dilated": ("<#> DILATED LEFT ATRIUM.", "THE LEFT ATRIUM IS <#> ENLARGED.", "<#> LA ENLARGEMENT."),
    "ra_normal": ("NORMAL RIGHT ATRIAL SIZE.", "NORMAL RA SIZE."),
    "ra_dilated": ("<#> DILATED RIGHT ATRIUM.", "THE RIGHT ATRIUM IS <#> ENLARGED.", "<#> RA ENLARGEMENT."),
    "mitraclip": (
        "A MITRACLIP DEVICE IS ATTACHED TO THE MITRAL LEAFLETS.",
        "STATUS POST TRANSCATHETER EDGE-TO-EDGE MITRAL REPAIR.",
        "S/P MITRACLIP.",
    ),
    "residual_mr": ("THERE IS <#> RESIDUAL MITRAL REGURGITATION AFTER CLIP REPAIR.", "<#> RESIDUAL MR."),
    "mv_normal": ("THE MITRAL VALVE LEAFLETS OPEN WELL.", "NORMAL MITRAL VALVE."),
    "tavr": (
        "A TRANSCATHETER AORTIC VALVE PROSTHESIS IS PRESENT.",
        "STATUS POST TRANSCATHETER AORTIC VALVE REPLACEMENT.",
        "S/P TAVR.",
    ),
    "tavr_stable": ("THE TRANSCATHETER VALVE IS STABLE IN POSITION.", "THE TAVR IS WELL SEATED."),
    "av_normal": ("THE AORTIC VALVE HAS THREE THIN CUSPS THAT OPEN FULLY.", "NORMAL AORTIC VALVE."),
    "pacer": (
        "A PACEMAKER LEAD IS SEEN IN THE RIGHT ATRIUM AND RIGHT VENTRICLE.",
        "A DEVICE LEAD TRAVERSES THE TRICUSPID VALVE INTO THE RIGHT VENTRICULAR APEX.",
        "PERMANENT PACEMAKER LEAD IN THE RV.",
        "PACER WIRE IN THE RA AND RV.",
    ),
    "effusion_none": ("NO PERICARDIAL EFFUSION IS SEEN.", "NO PERICARDIAL EFFUSION."),
    "effusion_1": ("THERE IS A <#> PERICARDIAL EFFUSION.", "A SMALL PERICARDIAL EFFUSION IS PRESENT."),
    "effusion_2": ("THERE IS A <#> PERICARDIAL EFFUSION.", "A <#> PERICARDIAL EFFUSION IS PRESENT."),
    "effusion_3": ("THERE IS A <#> PERICARDIAL EFFUSION.", "A LARGE PERICARDIAL EFFUSION IS PRESENT."),
    "no_tamponade": ("NO ECHOCARDIOGRAPHIC EVIDENCE OF TAMPONADE PHYSIOLOGY.", "NO TAMPONADE PHYSIOLOGY."),
    "no_prior": ("THE PRIOR STUDY IS NOT AVAILABLE FOR COMPARISON.", "NO PRIOR STUDY FOR COMPARISON."),
    "no_change": (
        "COMPARED WITH THE PRIOR STUDY, THERE IS NO SIGNIFICANT CHANGE.",
        "NO SIGNIFICANT CHANGE FROM THE PRIOR STUDY.",
    ),
    "normal_heart": ("STRUCTURALLY NORMAL HEART.", "NORMAL STUDY."),
}
ADVERBS = {"MILD": "MILDLY", "MODERATE": "MODERATELY", "SEVERE": "SEVERELY"}
_ADVERB_SLOT = re.compile(re.escape(SLOT) + r" (?:DILATED|ENLARGED|REDUCED)\b")


class _Writer:
    """Says each statement in the report's style: the template wording, or a seeded random one."""

    def __init__(self, style: str, rng: np.random.Generator | None):
        if style not in REPORT_STYLES:
            raise ValueError(f"unknown report style {style!r}; choose from {', '.join(REPORT_STYLES)}")
        self.varied = style == "varied"
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def say(self, key: str, *values: object) -> str:
        options = WORDINGS[key]
        phrase = options[int(self.rng.integers(len(options)))] if self.varied else options[0]
        values = values if SLOT in phrase else ()  # "A SMALL ... EFFUSION" says its grade in words
        if self.varied and values and _ADVERB_SLOT.search(phrase) and self.rng.random() < 0.5:
            values = tuple(ADVERBS.get(str(v), v) for v in values)
        return fill(phrase, *values)

    def order(self, groups: list[list[str]]) -> list[str]:
        """Sentences of a section; in varied reports the groups (and nothing inside them) are shuffled."""
        if self.varied and len(groups) > 1:
            groups = [groups[i] for i in self.rng.permutation(len(groups))]
        return [s for g in groups for s in g]


def _chamber(w: _Writer, name: str, grade: int) -> str:
    return w.say(f"{name}_normal") if grade == 0 else w.say(f"{name}_dilated", SEVERITIES[grade])


def study_report(
    f: Findings,
    prior: Findings | None,
    rng: np.random.Generator,
    style: str = "template",
    wording_rng: np.random.Generator | None = None,
) -> str:
    """The report of one study: indication first, then chambers, valves and devices, comparison, summary.

    ``rng`` draws what the report states beyond the ground truth (the residual regurgitation grade);
    ``wording_rng`` only how it is said (style ``"varied"``: wording, severity adverbs, the order of
    chambers and of valves/devices), so an archive's content does not depend on its report style.
    """
    w = _Writer(style, wording_rng)
    out: list[str] = []
    if f.pacer:
        out.append(fill("EVALUATION OF PACEMAKER LEAD POSITION."))
    elif f.mitraclip or f.tavr:
        out.append(fill("FOLLOW UP AFTER VALVE INTERVENTION."))
    elif f.effusion:
        out.append(fill("EVALUATION OF PERICARDIAL EFFUSION."))
    else:
        out.append(fill("EVALUATION OF LEFT VENTRICULAR FUNCTION."))
    out += w.order([[w.say("quality")], [w.say("heart_rate", f.heart_rate)]])
    lv = [_chamber(w, "lv", f.lv_size)]
    if f.ef < 40:
        lv.append(w.say("lv_thin"))
    lvf = w.say("lvf_normal") if f.lv_function == 0 else w.say("lvf_reduced", SEVERITIES[f.lv_function])
    lv += [lvf, w.say("ef", f.ef)]
    if f.ef < 40:
        lv.append(w.say("lv_hypokinetic"))
    out += w.order([lv, [_chamber(w, "rv", f.rv_size)], [_chamber(w, "la", f.la_size)],
                    [_chamber(w, "ra", f.ra_size)]])  # fmt: skip
    if f.mitraclip:
        mitral = [w.say("mitraclip"), w.say("residual_mr", REGURGITATION_WORDS[int(rng.integers(0, 3))])]
    else:
        mitral = [w.say("mv_normal")]
    aortic = [w.say("tavr"), w.say("tavr_stable")] if f.tavr else [w.say("av_normal")]
    out += w.order([mitral, aortic] + ([[w.say("pacer")]] if f.pacer else []))
    if f.effusion:
        out.append(w.say(f"effusion_{f.effusion}", EFFUSION_WORDS[f.effusion]))
        if f.effusion < 3:
            out.append(w.say("no_tamponade"))
    else:
        out.append(w.say("effusion_none"))
    out.extend(_comparison(w, f, prior))
    if _is_normal(f):
        out.append(w.say("normal_heart"))
    elif f.ef < 40:
        out.append(fill("HEART FAILURE WITH REDUCED EJECTION FRACTION."))
    return " ".join(out)


def _is_normal(f: Findings) -> bool:
    sizes = (f.lv_size, f.rv_size, f.la_size, f.ra_size, f.effusion)
    return f.lv_function == 0 and not any(sizes) and not (f.pacer or f.mitraclip or f.tavr)


def _comparison(w: _Writer, f: Findings, prior: Findings | None) -> list[str]:
    if prior is None:
        return [w.say("no_prior")]
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
    return out or [w.say("no_change")]
