"""The paper's three scenarios (Table I): a track, a car and its tyre compound."""
from __future__ import annotations

from dataclasses import dataclass

from .cars import CarSpec, get_car


@dataclass(frozen=True)
class Scenario:
    """One row of the paper's Table I."""

    name: str
    """Scenario id: 'tokyo', 'spa' or 'sarthe'."""
    track: str
    """Track id (``gtvision.sim.circuits.TRACK_NAMES``)."""
    car: str
    """Car id (``gtvision.sim.cars.CAR_NAMES``); its spec carries the tyre compound."""
    paper_track: str
    """The track as the paper names it."""

    @property
    def car_spec(self) -> CarSpec:
        return get_car(self.car)


SCENARIOS = {
    # Paper Table I.
    "tokyo": Scenario("tokyo", "tokyo", "audi_tt_cup_16", "Tokyo Expressway - Central Clockwise, Japan"),
    "spa": Scenario("spa", "spa", "alfa_romeo_4c_14", "Circuit de Spa-Francorchamps, Belgium"),
    "sarthe": Scenario("sarthe", "sarthe", "hyundai_n_2025_vgt_gr1", "24 Heures du Mans race track, France"),
}
SCENARIO_NAMES = tuple(SCENARIOS)


def get_scenario(name: str) -> Scenario:
    """The :class:`Scenario` called ``name``; raises ``ValueError`` naming the valid ones."""
    key = str(name).lower()
    if key not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; valid scenarios: {', '.join(SCENARIO_NAMES)}")
    return SCENARIOS[key]
