"""The standard transthoracic views the synthetic archive can draw, as data.

Each view says which structures it shows, because that decides which findings a sonographer sees in
it (a pacemaker lead only where the right heart is cut, a MitraClip only where the mitral valve is, a
TAVR only where the aortic valve is, EF only where the LV cavity is); the renderer and the tests
read the same table, so "where is a finding drawn" has one answer. ``weight`` is how common the view
is in a real study (how often a study's clips sample it); ``pose`` places the heart of the view in
the sector (depth of the heart's origin in pixels, extra tilt in degrees, size factor).

An archive draws all eight views by default (the demo models 0.5.0 / demo-bpe 0.1.0 were trained on
them); ``LEGACY_VIEWS`` (A4C and PLAX, asked for explicitly) reproduces the draw of the archives the
demo models up to 0.4.0 were trained on: every study an A4C and a PLAX clip, their pixels unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from echosearch.errors import UsageError

# what a view can show; findings are drawn only in views that show their structure
LV, RV, LA, RA, MV, AV, TV = "LV", "RV", "LA", "RA", "MV", "AV", "TV"
APEX = "LV apex"  # the apical views cut the LV apex, where a mural thrombus sits


@dataclass(frozen=True)
class ViewSpec:
    code: str  # the manifest's / DICOM SeriesDescription's view code
    phrase: str  # the demo vocabulary's sentence for the view
    weight: float  # relative frequency in a study
    shows: frozenset[str]
    pose: tuple[float, float, float]  # (origin depth px, extra tilt deg, scale)

    @property
    def lv_motion(self) -> bool:
        """EF, LV size and LV wall motion are drawn (the LV cavity is cut)."""
        return LV in self.shows

    @property
    def right_heart(self) -> bool:
        """A pacemaker lead is drawn (RA or RV is cut)."""
        return bool({RA, RV} & self.shows)


def _spec(code, phrase, weight, shows, pose) -> ViewSpec:
    return ViewSpec(code, phrase, weight, frozenset(shows), pose)


# The A4C keeps its TAVR ring (the LVOT of a slightly anteriorly angled A4C, as drawn since 0.1) so
# its pixels stay those the shipped demo model learnt; A5C is where the valve is seen properly.
VIEW_SPECS: dict[str, ViewSpec] = {
    s.code: s
    for s in (
        _spec("A4C", "APICAL FOUR CHAMBER VIEW.", 1.0, (LV, RV, LA, RA, MV, TV, AV, APEX), (188.0, 0.0, 1.0)),
        _spec("PLAX", "PARASTERNAL LONG AXIS VIEW.", 1.0, (LV, RV, LA, MV, AV), (150.0, -8.0, 1.0)),
        _spec("A2C", "APICAL TWO CHAMBER VIEW.", 0.8, (LV, LA, MV, APEX), (188.0, 0.0, 1.0)),
        _spec("A3C", "APICAL THREE CHAMBER VIEW.", 0.6, (LV, LA, MV, AV, APEX), (188.0, 0.0, 1.0)),
        _spec("A5C", "APICAL FIVE CHAMBER VIEW.", 0.5, (LV, RV, LA, RA, MV, TV, AV, APEX), (188.0, 0.0, 1.0)),
        _spec(
            "PSAX-PM",
            "PARASTERNAL SHORT AXIS VIEW AT THE PAPILLARY MUSCLE LEVEL.",
            0.8,
            (LV, RV),
            (165.0, 0.0, 0.9),
        ),
        _spec(
            "PSAX-AV",
            "PARASTERNAL SHORT AXIS VIEW AT THE AORTIC VALVE LEVEL.",
            0.6,
            (RV, LA, RA, AV, TV),
            (130.0, 0.0, 1.0),
        ),
        _spec(
            "SC4C", "SUBCOSTAL FOUR CHAMBER VIEW.", 0.4, (LV, RV, LA, RA, MV, TV, APEX), (185.0, 72.0, 0.8)
        ),
    )
}
ALL_VIEWS = tuple(VIEW_SPECS)

#: The structures a view must cut before a finding of the manifest can be seen in it (the renderer
#: draws each finding only there): a lead in the RA or RV, a MitraClip at the MV, a TAVR at the AV,
#: EF, LV size and LV function in the LV, an LV thrombus at the apex (apical and subcostal views).
#: Other findings (effusion) show in every view.
FINDING_STRUCTURES: dict[str, frozenset[str]] = {
    "pacer": frozenset({RA, RV}),
    "mitraclip": frozenset({MV}),
    "tavr": frozenset({AV}),
    "ef": frozenset({LV}),
    "lv_size": frozenset({LV}),
    "lv_function": frozenset({LV}),
    "lv_thrombus": frozenset({APEX}),
}


def shows_finding(view: str | None, column: str) -> bool:
    """Whether a clip of this view can show the finding of this manifest column (True for an
    unknown view or a finding every view shows): ground truth a sonographer could read off the clip."""
    spec = VIEW_SPECS.get(view or "")
    needs = FINDING_STRUCTURES.get(column)
    return spec is None or needs is None or bool(needs & spec.shows)


DEFAULT_VIEWS = ALL_VIEWS
#: the two views of the archives before 0.5.0 (asked for explicitly, they draw as those archives did)
LEGACY_VIEWS = ("A4C", "PLAX")


def parse_views(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``"all"``, a comma list of view codes, or a sequence of codes -> the codes, in table order."""
    if value is None:
        return DEFAULT_VIEWS
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return ALL_VIEWS
        value = [v for v in value.split(",")]
    codes = [v.strip().upper() for v in value if v.strip()]
    bad = [v for v in codes if v not in VIEW_SPECS]
    if not codes or bad:
        what = f"unknown views {', '.join(bad)}" if bad else "no views given"
        raise UsageError(f"{what}; choose 'all' or a comma list of {','.join(ALL_VIEWS)}")
    return tuple(v for v in ALL_VIEWS if v in codes)
