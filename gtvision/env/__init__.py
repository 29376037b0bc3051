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

from ..sim.scenarios import SCENARIO_NAMES

ENV_IDS = {name: f"gtvision/{name.capitalize()}-v0" for name in SCENARIO_NAMES}
"""Scenario name -> registered gymnasium id."""

for _name, _id in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="gtvision.env.racing:RacingEnv",
                     vector_entry_point="gtvision.env.racing:RacingVectorEnv", kwargs={"scenario": _name})



def reward_config(env_id: str, env_kwargs: dict | None = None):
    """The ``gtvision.rewards.RewardConfig`` of the racing environment ``env_id`` made with ``env_kwargs`` (its
    ``reward`` keyword, else the paper's weights); None when ``env_id`` is not one of :data:`ENV_IDS` (another
    task's reward has no terms to weigh). A vector environment's ``envs.spec.id`` and ``envs.spec.kwargs``
    name it."""
    if env_id not in ENV_IDS.values():
        return None
    from ..rewards import RewardConfig
    return RewardConfig.from_value((env_kwargs or {}).get("reward"))


def env_kwargs_for(env_id: str, env_kwargs: dict, agent_config) -> dict:
    """``env_kwargs`` for a learner with ``agent_config`` (``gtvision.agent.config.AgentConfig``): a racing
    environment renders no image when no network reads one (``render_image=False``, unless given)."""
    if env_id in ENV_IDS.values() and "render_image" not in env_kwargs and not agent_config.reads("image"):
        return {**env_kwargs, "render_image": False}
    return env_kwargs


def env_spaces(env_id: str, env_kwargs: dict | None = None) -> tuple[gym.Space, gym.Space]:
    """(observation space, action space) of one sub-environment of ``gymnasium.make_vec(env_id, **env_kwargs)``;
    for the racing ids without building a simulator."""
    env_kwargs = env_kwargs or {}
    if env_id in ENV_IDS.values():
        import math

        from ..sim.scenarios import get_scenario
        from .racing import IMAGE_SIZE, action_space, observation_space
        scenario = next(name for name, i in ENV_IDS.items() if i == env_id)
        lock = math.radians(get_scenario(scenario).car_spec.max_steer_deg)
        return observation_space(env_kwargs.get("image_size", IMAGE_SIZE), lock), action_space()
    envs = gym.make_vec(env_id, num_envs=1, **env_kwargs)
    try:
        return envs.single_observation_space, envs.single_action_space
    finally:
        envs.close()


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
