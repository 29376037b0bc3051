"""Gymnasium environments of the paper's three scenarios (paper III-A, III-C, IV-B).

Importing ``gtvision`` (or this package) registers, for each scenario of Table I,

==================  ===========================================================================
id                  scenario
==================  ===========================================================================
gtvision/Tokyo-v0   Tokyo Expressway, Audi TT Cup '16
gtvision/Spa-v0     Spa-Francorchamps, Alfa Romeo 4C
gtvision/Sarthe-v0  Le Mans (Circuit de la Sarthe), Hyundai N 2025 Vision GT Gr.1
==================  ===========================================================================

with an ``entry_point`` (:class:`~gtvision.env.racing.RacingEnv`, a ``gymnasium.Env``) and a
``vector_entry_point`` (:class:`~gtvision.env.racing.RacingVectorEnv`, a native
``gymnasium.vector.VectorEnv`` over the batched simulator)::

    import gymnasium as gym, gtvision
    env = gym.make("gtvision/Spa-v0")                                   # a training episode (IV-B)
    envs = gym.make_vec("gtvision/Spa-v0", num_envs=64, **gtvision.env.RACE)  # 4-lap races (IV-D)

``observations`` documents the observation, ``gtvision.rewards`` the reward, ``episodes`` the
episodes, ``racing`` the step and the autoreset contract. The classes are imported on first use, so
registering costs no simulator import.
"""
from __future__ import annotations

import gymnasium as gym

from ..scenarios import SCENARIO_NAMES

ENV_IDS = {name: f"gtvision/{name.capitalize()}-v0" for name in SCENARIO_NAMES}
"""Scenario name -> registered gymnasium id."""

for _name, _id in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="gtvision.env.racing:RacingEnv",
                     vector_entry_point="gtvision.env.racing:RacingVectorEnv", kwargs={"scenario": _name})

_LAZY = {
    "RacingEnv": "racing", "RacingVectorEnv": "racing", "RaceBatch": "racing", "observation_space": "racing",
    "action_space": "racing", "EpisodeConfig": "episodes", "TRAINING": "episodes", "RACE": "episodes",
    "CURRICULUM_OPPONENTS": "episodes",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
