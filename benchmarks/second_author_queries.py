"""A second author's 90 queries for `clinical_queries.py`, written without reading the lexicon, the
other query lists or the tests, in five styles: lowercase search-box fragments, report impression
sentences, sonographer shorthand, combinations with negations, views with findings. Each has its
truth as a predicate on a manifest row ("EF 35%" means 30-40). Used once to find misreadings (run-on
queries without commas, device locations read as chamber findings, EF written as 0.35 or 35/40...),
never to tune weights.
"""

from __future__ import annotations

from collections.abc import Callable

Row = dict[str, float | str]


def ef_between(lo, hi):
    return lambda r: lo <= r["ef"] <= hi


def ef_about(x):  # "EF 35%" -> 30..40
    return ef_between(x - 5, x + 5)


def all_of(*preds):
    return lambda r: all(p(r) for p in preds)


def col(name, *values):
    return lambda r: r[name] in values


def ge(name, g):
    return lambda r: r[name] >= g


def view(*codes):
    return lambda r: r["view"] in codes


NO_DEVICE = all_of(col("pacer", 0), col("mitraclip", 0), col("tavr", 0))

SECOND_AUTHOR_WORDINGS: list[tuple[str, Callable[[Row], bool]]] = [
    # ---- (a) lowercase search-box fragments -------------------------------------------
    ("lv dilated ef 30", all_of(ge("lv_size", 1), ef_about(30))),
    ("pacer tavr", all_of(col("pacer", 1), col("tavr", 1))),
    ("large pericardial effusion", col("effusion", 3)),
    ("small effusion", col("effusion", 1)),
    ("normal lv function", col("lv_function", 0)),
    ("dilated right ventricle", ge("rv_size", 1)),
    ("biatrial enlargement", all_of(ge("la_size", 1), ge("ra_size", 1))),
    ("severely dilated left atrium", col("la_size", 3)),
    ("icd lead", col("pacer", 1)),
    ("tavr normal ef", all_of(col("tavr", 1), col("lv_function", 0))),
    ("mitraclip dilated la", all_of(col("mitraclip", 1), ge("la_size", 1))),
    ("ef 15", ef_about(15)),
    ("low ef", ge("lv_function", 1)),
    ("hfref pacemaker", all_of(lambda r: r["ef"] <= 40, col("pacer", 1))),
    ("moderate to large effusion", ge("effusion", 2)),
    ("dilated cardiomyopathy", all_of(ge("lv_size", 1), ge("lv_function", 1))),
    ("ef 60", ef_about(60)),
    ("big right atrium", ge("ra_size", 1)),
    # ---- (b) impression-section report phrases ----------------------------------------
    (
        "Moderately reduced left ventricular systolic function with an estimated ejection fraction of 35%.",
        all_of(col("lv_function", 2), ef_about(35)),
    ),
    (
        "Normal biventricular size and systolic function.",
        all_of(col("lv_size", 0), col("rv_size", 0), col("lv_function", 0)),
    ),
    ("Status post transcatheter aortic valve replacement with a well-seated prosthesis.", col("tavr", 1)),
    (
        "Severely dilated left ventricle with severely reduced systolic function.",
        all_of(col("lv_size", 3), col("lv_function", 3)),
    ),
    (
        "Small circumferential pericardial effusion without echocardiographic evidence of tamponade.",
        col("effusion", 1),
    ),
    ("No pericardial effusion.", col("effusion", 0)),
    ("Mildly dilated right ventricle.", col("rv_size", 1)),
    ("The left atrium is moderately dilated.", col("la_size", 2)),
    ("A pacemaker lead is seen in the right heart.", col("pacer", 1)),
    ("MitraClip in place across the mitral valve.", col("mitraclip", 1)),
    ("Left ventricular ejection fraction is estimated at 55-60%.", ef_between(55, 60)),
    ("Mildly reduced LV systolic function, LVEF 45-50%.", all_of(col("lv_function", 1), ef_between(45, 50))),
    ("Large pericardial effusion.", col("effusion", 3)),
    ("Both atria are severely enlarged.", all_of(col("la_size", 3), col("ra_size", 3))),
    (
        "Normal left ventricular size with preserved ejection fraction.",
        all_of(col("lv_size", 0), col("lv_function", 0)),
    ),
    ("The right atrium is mildly dilated.", col("ra_size", 1)),
    ("Severe global left ventricular hypokinesis.", col("lv_function", 3)),
    ("Moderate pericardial effusion without tamponade physiology.", col("effusion", 2)),
    # ---- (c) sonographer shorthand and misspellings -----------------------------------
    ("mod dil LA", col("la_size", 2)),
    ("sev LVSD", col("lv_function", 3)),
    ("pericardal effusion", ge("effusion", 1)),
    ("mitral clip s/p", col("mitraclip", 1)),
    ("ef 20-25", ef_between(20, 25)),
    ("sev dil RV", col("rv_size", 3)),
    ("RAE", ge("ra_size", 1)),
    ("s/p PPM", col("pacer", 1)),
    ("TAVI", col("tavr", 1)),
    ("mod-sev LV dysfn", ge("lv_function", 2)),
    ("sm peri eff", col("effusion", 1)),
    ("LVEF <30%", lambda r: r["ef"] < 30),
    ("nl LV fxn", col("lv_function", 0)),
    ("dilted LV", ge("lv_size", 1)),
    ("pacmaker lead", col("pacer", 1)),
    ("effusion lrg", col("effusion", 3)),
    ("EF 35-40%", ef_between(35, 40)),
    ("sev biatrial enlgmt", all_of(col("la_size", 3), col("ra_size", 3))),
    # ---- (d) two or three findings with negations -------------------------------------
    ("RV dilated without pacemaker", all_of(ge("rv_size", 1), col("pacer", 0))),
    ("no effusion but severe LV dysfunction", all_of(col("effusion", 0), col("lv_function", 3))),
    ("TAVR without pericardial effusion", all_of(col("tavr", 1), col("effusion", 0))),
    ("dilated LA, no mitraclip", all_of(ge("la_size", 1), col("mitraclip", 0))),
    ("pacemaker lead and moderate effusion", all_of(col("pacer", 1), col("effusion", 2))),
    ("normal EF but dilated RV", all_of(col("lv_function", 0), ge("rv_size", 1))),
    ("reduced EF no device", all_of(ge("lv_function", 1), NO_DEVICE)),
    ("severe LA dilation with normal LV size", all_of(col("la_size", 3), col("lv_size", 0))),
    ("no pacemaker, no TAVR, LVEF under 30", all_of(col("pacer", 0), col("tavr", 0), lambda r: r["ef"] < 30)),
    ("large effusion without LV dysfunction", all_of(col("effusion", 3), col("lv_function", 0))),
    ("MitraClip and TAVR", all_of(col("mitraclip", 1), col("tavr", 1))),
    ("mitraclip but no pacemaker", all_of(col("mitraclip", 1), col("pacer", 0))),
    ("RA and RV dilated, ICD lead present", all_of(ge("ra_size", 1), ge("rv_size", 1), col("pacer", 1))),
    ("non-dilated LV with severely reduced EF", all_of(col("lv_size", 0), col("lv_function", 3))),
    ("absent pericardial effusion, mildly dilated LV", all_of(col("effusion", 0), col("lv_size", 1))),
    ("EF below 40 without ICD", all_of(lambda r: r["ef"] < 40, col("pacer", 0))),
    ("left atrium not dilated, TAVR", all_of(col("la_size", 0), col("tavr", 1))),
    (
        "preserved EF, moderate effusion, no pacer",
        all_of(col("lv_function", 0), col("effusion", 2), col("pacer", 0)),
    ),
    # ---- (e) views with findings --------------------------------------------------------
    ("A4C with lead", all_of(view("A4C"), col("pacer", 1))),
    ("parasternal long axis TAVR", all_of(view("PLAX"), col("tavr", 1))),
    ("apical four chamber dilated RV", all_of(view("A4C"), ge("rv_size", 1))),
    ("subcostal pericardial effusion", all_of(view("SC4C"), ge("effusion", 1))),
    ("PLAX large effusion", all_of(view("PLAX"), col("effusion", 3))),
    ("short axis papillary muscle level reduced LV function", all_of(view("PSAX-PM"), ge("lv_function", 1))),
    ("PSAX at the aortic valve level with TAVR", all_of(view("PSAX-AV"), col("tavr", 1))),
    ("2 chamber view EF 25", all_of(view("A2C"), ef_about(25))),
    ("apical 3 chamber mitraclip", all_of(view("A3C"), col("mitraclip", 1))),
    ("5 chamber TAVR", all_of(view("A5C"), col("tavr", 1))),
    ("subxiphoid view pacer wire", all_of(view("SC4C"), col("pacer", 1))),
    ("A2C severe LV dysfunction", all_of(view("A2C"), col("lv_function", 3))),
    ("apical 4ch biatrial enlargement", all_of(view("A4C"), ge("la_size", 1), ge("ra_size", 1))),
    ("PLAX dilated LA", all_of(view("PLAX"), ge("la_size", 1))),
    ("PSAX mid-papillary normal LV function", all_of(view("PSAX-PM"), col("lv_function", 0))),
    ("A4C no effusion", all_of(view("A4C"), col("effusion", 0))),
    ("apical long axis MitraClip", all_of(view("A3C"), col("mitraclip", 1))),
    ("SC4C RV dilation", all_of(view("SC4C"), ge("rv_size", 1))),
]
