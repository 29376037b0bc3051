"""Training runs (DESIGN 7): ``gtvision train`` and :func:`train` behind it.

A run trains a preset (``gtvision.agent.presets``) with one of its variants on a scenario's environment
or on any registered gymnasium id (the learner is generic), and writes a run directory:

==================  ========================================================================================
file                contents
==================  ========================================================================================
``config.json``     the :class:`RunConfig` and the resolved preset
``metrics.jsonl``   one record per epoch, written as it ends (keys: ``gtvision.agent.loop``)
``eval.json``       returns of the deterministic policy at the end, when ``eval_episodes`` > 0
==================  ========================================================================================

This is the local backend (one process, deterministic for a seed on CPU). Ray rollout workers,
checkpoints and ``--resume`` are the next increment of the training issue.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from .agent.loop import evaluate_policy, train_local
from .agent.presets import PRESET_NAMES, Preset, get_preset
from .scenarios import SCENARIO_NAMES

BACKENDS = ("local",)
"""Training backends available (Ray is the next increment)."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; recorded in the run directory."""

    scenario: str | None = "tokyo"
    """A scenario of Table I ('tokyo', 'spa', 'sarthe'); ignored when ``env_id`` is given."""
    env_id: str | None = None
    """Any registered gymnasium id with Box or Dict observations and Box actions, instead of a scenario."""
    preset: str = "cpu"
    """'paper', 'cpu' or 'smoke' (``gtvision.agent.presets``)."""
    variant: str = "asymmetric"
    """The agent or an ablation (``gtvision.agent.config.VARIANTS``)."""
    backend: str = "local"
    """Only 'local' so far."""
    total_steps: int | None = None
    """Stop after this many environment steps (all sub-environments); None: the preset's epochs."""
    max_minutes: float | None = None
    """Stop at the end of the epoch in which this much wall time has passed; None: no limit."""
    seed: int = 0
    device: str = "cpu"
    num_envs: int | None = None
    """Parallel sub-environments; None: the preset's."""
    env_kwargs: dict = dataclasses.field(default_factory=dict)
    """Extra keyword arguments of ``gymnasium.make_vec`` (e.g. ``num_opponents=0`` for a racing scenario)."""
    eval_episodes: int = 0
    """Episodes of the deterministic policy played at the end (``eval.json``)."""
    threads: int | None = None
    """torch intra-op threads; None: leave torch's setting."""
    overrides: dict = dataclasses.field(default_factory=dict)
    """Preset fields to change, ``{"train.updates_per_epoch": 200, "agent.gamma": 0.99, ...}``
    (sections ``agent``, ``replay``, ``train``: ``gtvision.agent.config``)."""

    def resolved_env_id(self) -> str:
        if self.env_id is not None:
            if self.env_id not in gym.registry:
                import difflib
                close = difflib.get_close_matches(self.env_id, list(gym.registry), n=5)
                raise ValueError(f"unknown env id {self.env_id!r}; registered ids include: "
                                 f"{', '.join(close) or ', '.join(list(gym.registry)[:10])}")
            return self.env_id
        if self.scenario not in SCENARIO_NAMES:
            raise ValueError(f"unknown scenario {self.scenario!r}; valid: {', '.join(SCENARIO_NAMES)}")
        from .env import ENV_IDS
        return ENV_IDS[self.scenario]


def train(config: RunConfig, out: str | os.PathLike, progress: bool = True) -> tuple[Path, list[dict]]:
    """Run ``config``, writing the run directory ``out`` (see the module docstring).

    Returns the directory and the per-epoch metrics. An existing run directory is not overwritten.
    """
    if config.backend not in BACKENDS:
        raise ValueError(f"unknown backend {config.backend!r}; valid: {', '.join(BACKENDS)}")
    if config.preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {config.preset!r}; valid: {', '.join(PRESET_NAMES)}")
    preset = apply_overrides(get_preset(config.preset, config.variant), config.overrides)
    env_id = config.resolved_env_id()
    out = Path(out)
    if (out / "metrics.jsonl").exists():
        raise FileExistsError(f"{out} already holds a run (metrics.jsonl); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    num_envs = config.num_envs or preset.train.num_envs
    train_cfg = preset.train
    epochs = train_cfg.epochs
    if config.total_steps is not None:
        steps_per_epoch = max(1, train_cfg.env_steps_per_epoch // num_envs) * num_envs
        epochs = max(1, math.ceil(config.total_steps / steps_per_epoch))
    envs = gym.make_vec(env_id, num_envs=num_envs, **config.env_kwargs)
    preset = keys_for_space(preset, envs.single_observation_space)
    (out / "config.json").write_text(json.dumps(
        {"run": dataclasses.asdict(config), "env_id": env_id, "num_envs": num_envs, "epochs": epochs,
         "preset": preset.to_dict()}, indent=2, default=str))
    with open(out / "metrics.jsonl", "w") as f:
        def log(record: dict):
            f.write(json.dumps({k: _json_number(v) for k, v in record.items()}) + "\n")
            f.flush()

        agent, _, history = train_local(
            envs, preset, seed=config.seed, device=config.device, epochs=epochs,
            max_seconds=None if config.max_minutes is None else 60.0 * config.max_minutes,
            log=log, progress=progress)
    envs.close()
    if config.eval_episodes > 0:
        eval_envs = gym.make_vec(env_id, num_envs=min(num_envs, config.eval_episodes), **config.env_kwargs)
        returns = evaluate_policy(agent, eval_envs, config.eval_episodes, seed=config.seed + 10_000)
        eval_envs.close()
        (out / "eval.json").write_text(json.dumps(
            {"episodes": len(returns), "mean_return": float(np.mean(returns)),
             "std_return": float(np.std(returns)), "returns": returns.tolist()}, indent=2))
    return out, history


def apply_overrides(preset: Preset, overrides: dict) -> Preset:
    """``preset`` with ``{"section.field": value}`` changed; unknown sections or fields raise, naming the
    valid ones."""
    sections = {"agent": preset.agent, "replay": preset.replay, "train": preset.train}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in sections:
            raise ValueError(f"override {key!r}: unknown section {section!r}; valid: {', '.join(sections)}")
        fields = [f.name for f in dataclasses.fields(sections[section])]
        if name not in fields:
            raise ValueError(f"override {key!r}: {section} has no field {name!r}; valid: {', '.join(fields)}")
        if isinstance(value, list):
            value = tuple(value)
        sections[section] = dataclasses.replace(sections[section], **{name: value})
    return dataclasses.replace(preset, **sections)


def keys_for_space(preset: Preset, space: gym.Space) -> Preset:
    """The preset with the actor and the critic on every observation key when ``space`` lacks the keys
    it names (a Box task such as Pendulum-v1, or a Dict without the racing keys): a generic task has
    no local / global split to make asymmetric."""
    names = set(space.spaces) if isinstance(space, gym.spaces.Dict) else {"obs"}
    wanted = set(preset.agent.actor_keys or ()) | set(preset.agent.critic_keys or ())
    if wanted <= names:
        return preset
    return dataclasses.replace(preset, agent=dataclasses.replace(preset.agent, actor_keys=None, critic_keys=None))


def _json_number(v):
    """JSON has no NaN: write None instead (``pandas.read_json`` reads it back as NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_metrics(run_dir: str | os.PathLike):
    """``metrics.jsonl`` of a run directory as a pandas DataFrame (one row per epoch)."""
    import pandas as pd
    return pd.read_json(Path(run_dir) / "metrics.jsonl", lines=True)
