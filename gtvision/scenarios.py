"""The paper's three scenarios (Table I), defined with the simulator (``gtvision.sim.scenarios``) and
importable from here: ``from gtvision.scenarios import get_scenario``."""
from .sim.scenarios import SCENARIO_NAMES, SCENARIOS, Scenario, get_scenario

__all__ = ["SCENARIOS", "SCENARIO_NAMES", "Scenario", "get_scenario"]
