"""The three circuit facsimiles: Tokyo Expressway (Central Clockwise), Spa-Francorchamps, Le Mans.

Each circuit is a :class:`~gtvision.sim.track.TrackSpec`: a turtle-graphics list of straights
``('S', length_m)`` and arcs ``('L'|'R', radius_m, angle_deg)`` that starts on the start/finish line
in the racing direction, plus widths, run-off, elevation knots and scenery. The layouts are built
from public facts about the real circuits (corner sequence and direction, approximate radii and
turning angles, straight lengths, track widths, elevation changes); they are facsimiles, close
enough in shape, length and character to pose the same racing problem, not surveys.
:func:`~gtvision.sim.track.build_track` closes each loop (nudging the straights) and scales it to
the published lap length.

Use :func:`load_track` to get a built :class:`~gtvision.sim.track.Track` (cached per name)::

    track = load_track("spa", device="cuda")
"""
from __future__ import annotations

import functools

from gtvision.sim.track import Surface, Track, TrackSpec, build_track

__all__ = ["TRACK_NAMES", "TRACK_SPECS", "TOKYO", "SPA", "SARTHE", "load_track"]

_GRASS, _GRAVEL, _TARMAC = Surface.GRASS, Surface.GRAVEL, Surface.TARMAC_RUNOFF


# --------------------------------------------------------------------------- Tokyo Expressway
TOKYO = TrackSpec(
    name="tokyo",
    display_name="Tokyo Expressway - Central Clockwise",
    real_length_m=4400.0,
    segments=(
        ("S", 750.0),            # start/finish straight on the elevated ring (heading east)
        ("R", 300.0, 10.0),      # Ginza kink, flat out
        ("S", 150.0),
        ("R", 120.0, 80.0),      # Kyobashi junction: the long right off the main straight
        ("S", 150.0),
        ("L", 60.0, 40.0),       # Takaracho S-bend, left ...
        ("R", 60.0, 40.0),       # ... right
        ("S", 250.0),
        ("R", 50.0, 90.0),       # Edobashi junction: tight right onto the back straight
        ("S", 300.0),            # back straight along the canal (heading west)
        ("L", 40.0, 30.0),       # Nihonbashi chicane, left ...
        ("R", 40.0, 60.0),       # ... right ...
        ("L", 40.0, 30.0),       # ... left
        ("S", 300.0),
        ("L", 300.0, 20.0),      # Shintomi kink, left
        ("S", 250.0),
        ("R", 300.0, 20.0),      # Tsukiji kink, right
        ("S", 350.0),
        ("R", 80.0, 110.0),      # Hamazakibashi junction: the long tightening right
        ("S", 250.0),
        ("L", 70.0, 45.0),       # Shiodome S-bend, left ...
        ("S", 80.0),
        ("R", 45.0, 80.0),       # ... and the tight right under the Shiodome towers
        ("S", 200.0),
        ("R", 200.0, 35.0),      # Yurakucho sweeper, back onto the main straight
        ("S", 150.0),
    ),
    width_m=10.5,
    width_overrides=(
        (0.965, 0.175, 12.0),    # the main straight is the widest part
        (0.360, 0.385, 9.5),     # Edobashi junction
        (0.445, 0.478, 9.0),     # narrow through the Nihonbashi chicane
        (0.865, 0.890, 9.5),     # Shiodome right
    ),
    runoff_m=(0.0, 0.0),         # walls at both track edges everywhere
    runoff_surface=(Surface.WALL, Surface.WALL),
    elevation=(
        (0.00, 18.0),            # main straight, high on the elevated ring
        (0.25, 14.0),            # Kyobashi, descending
        (0.30, 8.0),             # Takaracho S-bend, under the overpass
        (0.37, 10.0),            # Edobashi
        (0.50, 4.0),             # along the canal: the lowest part
        (0.60, 6.0),
        (0.75, 10.0),            # Hamazakibashi, climbing
        (0.86, 14.0),            # Shiodome
        (0.95, 17.0),            # Yurakucho
    ),
    wall_height_m=1.2,
    scenery="skyline",
    curb_min_curvature=1.0 / 250.0,
    description=(
        "GT7's Tokyo Expressway - Central Clockwise is a fictional street circuit on the Shuto "
        "Expressway's C1 inner loop around Ginza; GT7 lists it at 4.4 km. Public facts used: the "
        "lap length, clockwise direction, a narrow two-to-three-lane elevated expressway (9-12 m) "
        "with concrete walls at both edges and no run-off, fast straights and sweeping bends "
        "through the junctions, a few tight corners, S-bends and a chicane, and a modest "
        "elevation change (about 15 m) "
        "between the elevated sections and the dips under the overpasses. Corner names are C1 "
        "landmarks used as labels; the layout is in the C1's style, not a trace of GT7's."
    ),
)


# --------------------------------------------------------------------------- Spa-Francorchamps
SPA = TrackSpec(
    name="spa",
    display_name="Circuit de Spa-Francorchamps",
    real_length_m=7004.0,
    segments=(
        ("S", 225.0),            # start/finish straight, uphill to La Source
        ("R", 24.0, 146.0),      # T1 La Source hairpin
        ("S", 60.0),
        ("R", 800.0, 23.0),      # downhill past the old pits
        ("S", 230.0),
        ("L", 150.0, 18.0),      # T2 Eau Rouge: the left at the bottom of the valley
        ("R", 160.0, 50.0),      # T3 Raidillon: the climbing right
        ("L", 150.0, 24.0),      # T4 the blind left crest at the top of Raidillon
        ("S", 215.0),            # Kemmel straight
        ("R", 370.0, 17.0),      # Kemmel kink
        ("S", 725.0),            # Kemmel straight to Les Combes
        ("R", 60.0, 75.0),       # T5 Les Combes, right
        ("L", 55.0, 73.0),       # T6 Les Combes, left
        ("S", 80.0),
        ("R", 62.0, 69.0),       # T7 Malmedy, right
        ("S", 285.0),            # downhill to Bruxelles
        ("R", 50.0, 185.0),      # T8 Bruxelles (Rivage) hairpin, right
        ("S", 100.0),
        ("L", 66.0, 79.0),       # T9 No Name, left
        ("S", 130.0),
        ("R", 1000.0, 9.0),      # downhill kink towards Pouhon
        ("S", 100.0),
        ("L", 90.0, 74.0),       # T10 Pouhon, first apex of the fast double left
        ("L", 400.0, 9.0),       # Pouhon, between the apexes
        ("L", 165.0, 66.0),      # T11 Pouhon, second apex
        ("S", 300.0),
        ("R", 70.0, 99.0),       # T12 Fagnes, right
        ("L", 72.0, 89.0),       # T13 Fagnes, left
        ("S", 175.0),
        ("R", 62.0, 93.0),       # T14-15 Campus / Stavelot, right
        ("S", 105.0),
        ("R", 107.0, 75.0),      # T16 Courbe Paul Frere, right
        ("R", 480.0, 25.0),      # flat-out right sweeps towards Blanchimont
        ("S", 40.0),
        ("R", 450.0, 17.0),
        ("S", 200.0),
        ("L", 280.0, 38.0),      # T17 Blanchimont, first left
        ("S", 105.0),
        ("L", 178.0, 45.0),      # T18 Blanchimont, second left
        ("S", 155.0),
        ("R", 550.0, 16.0),      # slight right on the approach to the Bus Stop
        ("S", 135.0),
        ("R", 25.0, 105.0),      # T19 Bus Stop chicane, right
        ("L", 23.0, 130.0),      # T20 Bus Stop chicane, left
        ("S", 290.0),            # onto the start/finish straight
    ),
    width_m=14.0,
    width_overrides=(
        (0.975, 0.05, 15.5),     # wide start/finish straight and La Source
        (0.12, 0.17, 13.0),      # Eau Rouge / Raidillon
        (0.40, 0.44, 13.0),      # Bruxelles
        (0.62, 0.70, 12.5),      # Fagnes, Campus, Stavelot
        (0.94, 0.965, 12.5),     # Bus Stop
    ),
    runoff_m=(10.0, 10.0),
    runoff_surface=(_GRASS, _GRASS),
    runoff_overrides=(
        (0.030, 0.048, "L", 18.0, _TARMAC),   # La Source, outside
        (0.030, 0.048, "R", 5.0, _TARMAC),    # La Source, inside
        (0.128, 0.172, "L", 20.0, _TARMAC),   # Eau Rouge / Raidillon, outside of the right
        (0.315, 0.335, "L", 25.0, _GRAVEL),   # Les Combes right, outside
        (0.328, 0.345, "R", 15.0, _GRAVEL),   # Les Combes left, outside
        (0.350, 0.368, "L", 18.0, _GRAVEL),   # Malmedy, outside
        (0.402, 0.434, "L", 25.0, _GRAVEL),   # Bruxelles, outside
        (0.442, 0.460, "R", 12.0, _GRAVEL),   # No Name, outside
        (0.512, 0.575, "R", 30.0, _GRAVEL),   # Pouhon, outside
        (0.610, 0.635, "L", 20.0, _GRAVEL),   # Fagnes right, outside
        (0.630, 0.652, "R", 20.0, _GRAVEL),   # Fagnes left, outside
        (0.670, 0.692, "L", 22.0, _GRAVEL),   # Campus / Stavelot, outside
        (0.700, 0.730, "L", 20.0, _GRAVEL),   # Paul Frere, outside
        (0.808, 0.878, "R", 25.0, _GRAVEL),   # Blanchimont, outside
        (0.935, 0.962, "B", 5.0, _TARMAC),    # Bus Stop, inside
        (0.936, 0.947, "L", 14.0, _TARMAC),   # Bus Stop right, outside
        (0.949, 0.962, "R", 14.0, _TARMAC),   # Bus Stop left, outside
    ),
    elevation=(
        (0.000, 22.0),           # start line
        (0.035, 26.0),           # La Source
        (0.080, 14.0),           # down past the old pits
        (0.130, 0.0),            # Eau Rouge, bottom of the valley
        (0.165, 38.0),           # top of Raidillon
        (0.320, 100.0),          # Les Combes: the highest point
        (0.360, 94.0),           # Malmedy
        (0.410, 80.0),           # Bruxelles
        (0.460, 70.0),           # No Name
        (0.550, 50.0),           # Pouhon
        (0.630, 36.0),           # Fagnes
        (0.690, 8.0),            # Stavelot
        (0.730, 6.0),            # Paul Frere
        (0.830, 18.0),           # Blanchimont
        (0.900, 24.0),
        (0.945, 21.0),           # Bus Stop
    ),
    wall_height_m=1.0,
    scenery="treeline",
    description=(
        "Circuit de Spa-Francorchamps, Belgium, Grand Prix layout (7.004 km, clockwise). Public "
        "facts used: the published lap length; the corner sequence La Source hairpin, Eau Rouge / "
        "Raidillon, Kemmel straight, Les Combes (right-left), Malmedy, Bruxelles (Rivage) hairpin, "
        "No Name, the fast double-left Pouhon, Fagnes (right-left), Campus / Stavelot, Courbe Paul "
        "Frere, Blanchimont and the Bus Stop chicane, with their directions and approximate radii "
        "and angles as read from public maps of the circuit; a 12-16 m wide track with grass, "
        "gravel and tarmac run-off before the barriers; about 100 m of elevation change, lowest "
        "at the bottom of Eau Rouge, highest around Les Combes, descending through Pouhon to "
        "Stavelot and climbing along Blanchimont back to the Bus Stop."
    ),
)


# --------------------------------------------------------------------------- Circuit de la Sarthe
SARTHE = TrackSpec(
    name="sarthe",
    display_name="Circuit de la Sarthe (24 Heures du Mans)",
    real_length_m=13626.0,
    segments=(
        ("S", 360.0),            # start/finish straight past the pits
        ("R", 230.0, 40.0),      # Dunlop curve, fast right
        ("S", 80.0),
        ("L", 48.0, 45.0),       # Dunlop chicane, left ...
        ("R", 48.0, 45.0),       # ... right, then over the crest under the Dunlop bridge
        ("S", 205.0),            # downhill to the Esses
        ("L", 105.0, 50.0),      # Esses (La Chapelle), left ...
        ("S", 35.0),
        ("R", 95.0, 60.0),       # ... right
        ("S", 195.0),
        ("R", 74.0, 95.0),       # Tertre Rouge, onto the Mulsanne straight
        ("S", 1720.0),           # Ligne droite des Hunaudieres (Mulsanne straight), part 1
        ("R", 42.0, 45.0),       # first Mulsanne chicane, right ...
        ("L", 42.0, 90.0),       # ... left ...
        ("R", 42.0, 45.0),       # ... right
        ("S", 1540.0),           # Mulsanne straight, part 2
        ("L", 42.0, 45.0),       # second Mulsanne chicane, left ...
        ("R", 42.0, 90.0),       # ... right ...
        ("L", 42.0, 45.0),       # ... left
        ("S", 1145.0),           # Mulsanne straight, part 3
        ("R", 950.0, 15.0),      # the Mulsanne kink, flat out
        ("S", 530.0),
        ("R", 37.0, 105.0),      # Mulsanne corner
        ("S", 840.0),            # the road to Indianapolis
        ("R", 630.0, 15.0),      # fast right bend
        ("S", 765.0),
        ("R", 530.0, 15.0),      # fast right bend
        ("S", 610.0),
        ("R", 265.0, 30.0),      # Indianapolis: the fast right on the approach ...
        ("S", 100.0),
        ("L", 53.0, 90.0),       # ... and the banked Indianapolis left
        ("S", 470.0),
        ("R", 30.0, 110.0),      # Arnage, the slowest corner
        ("S", 1455.0),           # the straight to the Porsche curves
        ("R", 115.0, 70.0),      # Porsche curves: the fast right ...
        ("S", 40.0),
        ("L", 105.0, 55.0),      # ... the left ...
        ("S", 85.0),
        ("L", 125.0, 45.0),      # ... Corvette corner, left ...
        ("S", 100.0),
        ("R", 160.0, 45.0),      # ... and the right out of it
        ("S", 155.0),
        ("R", 210.0, 30.0),      # Maison Blanche, right ...
        ("L", 210.0, 30.0),      # ... left
        ("S", 410.0),
        ("L", 32.0, 45.0),       # first Ford chicane, left ...
        ("R", 32.0, 45.0),       # ... right
        ("S", 85.0),
        ("L", 32.0, 45.0),       # second Ford chicane, left ...
        ("R", 32.0, 45.0),       # ... right, onto the start/finish straight
        ("S", 205.0),
    ),
    width_m=12.0,
    width_overrides=(
        (0.975, 0.030, 15.0),    # wide start/finish straight
        (0.030, 0.100, 13.0),    # Dunlop, the Esses, Tertre Rouge (permanent circuit)
        (0.110, 0.500, 11.0),    # Mulsanne straight (a public road for the rest of the year)
        (0.510, 0.690, 11.0),    # the road to Indianapolis (public road)
    ),
    runoff_m=(6.0, 6.0),
    runoff_surface=(_GRASS, _GRASS),
    runoff_overrides=(
        (0.975, 0.024, "R", 4.0, _TARMAC),    # pit wall side of the start/finish straight
        (0.024, 0.041, "L", 25.0, _GRAVEL),   # Dunlop curve, outside
        (0.042, 0.052, "B", 12.0, _TARMAC),   # Dunlop chicane
        (0.063, 0.084, "B", 15.0, _GRAVEL),   # the Esses
        (0.093, 0.108, "L", 20.0, _GRAVEL),   # Tertre Rouge, outside
        (0.227, 0.244, "B", 15.0, _TARMAC),   # first Mulsanne chicane
        (0.350, 0.367, "B", 15.0, _TARMAC),   # second Mulsanne chicane
        (0.499, 0.513, "L", 25.0, _GRAVEL),   # Mulsanne corner, outside
        (0.499, 0.513, "R", 8.0, _TARMAC),    # Mulsanne corner, inside
        (0.692, 0.705, "L", 15.0, _GRAVEL),   # Indianapolis right, outside
        (0.708, 0.720, "R", 20.0, _GRAVEL),   # Indianapolis left, outside
        (0.747, 0.761, "L", 20.0, _GRAVEL),   # Arnage, outside
        (0.860, 0.945, "B", 4.0, _GRASS),     # Porsche curves and Maison Blanche: walls close
        (0.969, 0.987, "B", 10.0, _TARMAC),   # Ford chicanes
    ),
    elevation=(
        (0.000, 22.0),           # start line
        (0.035, 26.0),           # Dunlop curve, climbing
        (0.052, 30.0),           # crest under the Dunlop bridge: the highest point
        (0.075, 18.0),           # down to the Esses
        (0.100, 14.0),           # Tertre Rouge
        (0.170, 17.0),           # Mulsanne straight
        (0.235, 16.0),           # first chicane
        (0.360, 10.0),           # second chicane
        (0.460, 8.0),            # Mulsanne kink
        (0.505, 6.0),            # Mulsanne corner
        (0.600, 9.0),
        (0.690, 5.0),            # downhill into Indianapolis
        (0.715, 2.0),            # Indianapolis
        (0.755, 0.0),            # Arnage: the lowest point
        (0.820, 4.0),
        (0.880, 12.0),           # climbing through the Porsche curves
        (0.930, 18.0),           # Maison Blanche
        (0.975, 21.0),           # Ford chicanes
    ),
    wall_height_m=1.0,
    scenery="treeline",
    description=(
        "Circuit de la Sarthe, Le Mans, France: the 24 Heures du Mans circuit (13.626 km, "
        "clockwise), part permanent circuit and part public roads. Public facts used: the "
        "published lap length; the corner sequence Dunlop curve and chicane, the Esses, Tertre "
        "Rouge, the 6 km Ligne droite des Hunaudieres (Mulsanne straight) broken by two chicanes "
        "(since 1990), the flat-out Mulsanne kink, Mulsanne corner, the fast right bends to "
        "Indianapolis (fast right then banked left), the Arnage hairpin, the Porsche curves, "
        "Maison Blanche and the two Ford chicanes; the overall shape of public maps (a long "
        "narrow loop, the Mulsanne straight heading south-south-east, the return leg north-west "
        "then north); top speeds near 340 km/h on the straights; a 11-15 m wide track with grass, "
        "gravel and tarmac run-off before the barriers, narrow verges on the public roads; and "
        "about 30 m of elevation change, the highest at the Dunlop bridge, the lowest at Arnage."
    ),
)


TRACK_NAMES = ("tokyo", "spa", "sarthe")
"""Names accepted by :func:`load_track`, in the order the paper lists the tracks."""

TRACK_SPECS = {spec.name: spec for spec in (TOKYO, SPA, SARTHE)}
"""Spec of each track, by name."""


@functools.lru_cache(maxsize=None)
def _build_cpu(name: str) -> Track:
    return build_track(TRACK_SPECS[name])


def load_track(name: str, device="cpu") -> Track:
    """The built :class:`Track` called ``name`` (case-insensitive) on ``device``.

    The CPU build is cached, so every call after the first for a name is cheap (plus the copy to
    ``device``). Raises ``ValueError`` for an unknown name.
    """
    key = str(name).strip().lower()
    if key not in TRACK_SPECS:
        raise ValueError(f"unknown track {name!r}; valid tracks: {', '.join(TRACK_NAMES)}")
    return _build_cpu(key).to(device)
