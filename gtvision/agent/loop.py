"""A single-process training loop (DESIGN 7, ``backend="local"``), reading like the algorithm.

Epochs of ``env_steps_per_epoch`` collected steps then ``updates_per_epoch`` QR-SAC updates; the networks
are reinitialised at ``reset_epoch`` (paper III-E). ``gtvision.training`` wraps it in a run directory;
the next issue adds Ray and checkpoints.

One metrics record per epoch, with namespaced keys:

=============================  ==========================================================================
key                            meaning
=============================  ==========================================================================
``charts/episodic_return``     mean return of the episodes that ended in the epoch (NaN if none did)
``charts/episodic_length``     their mean length (steps)
``charts/episodes``            how many ended
``charts/env_steps``           environment steps so far (all sub-environments)
``charts/updates``             gradient updates so far
``charts/sps``                 environment steps per second of wall time so far
``charts/wall_s``              seconds since the start
``losses/...``, ``values/...`` the last update's metrics (:meth:`QRSACAgent.update`)
``episode/<key>``              racing environments: the mean over ended episodes of ``info[key]`` at their
                               end (``progress_m``, ``laps_done``, ``place``, wall / contact / off-course time)
``episode/best_lap_time_s``    the best timed lap of the episodes that ended (NaN if none timed one)
``reward/<term>``              the mean per-episode sum of each reward term (``info["reward_<term>"]``)
=============================  ==========================================================================
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from .networks import as_dict_space
from .presets import Preset
from .qrsac import QRSACAgent
from .replay import SequenceReplay

EPISODE_END_KEYS = ("progress_m", "laps_done", "place", "wall_time_s", "car_contact_time_s",
                    "off_course_time_s", "margin_m")
"""``info`` keys reported at an episode's end as ``episode/<key>`` (when the environment gives them)."""


class _EpisodeStats:
    """Per sub-environment running sums (return, length, reward terms); the records of ended episodes."""

    def __init__(self, n: int):
        self.ret, self.length, self.terms = np.zeros(n), np.zeros(n, np.int64), {}
        self.ended: list[dict] = []

    def add(self, reward: np.ndarray, info: dict, live: np.ndarray, done: np.ndarray):
        """Accumulate the step of the ``live`` sub-environments (not autoreset steps); close ``done`` ones."""
        self.ret += np.where(live, reward, 0.0)
        self.length += live
        for k, v in info.items():
            if k.startswith("reward_"):
                self.terms.setdefault(k[len("reward_"):], np.zeros_like(self.ret))
                self.terms[k[len("reward_"):]] += np.where(live, v, 0.0)
        for i in np.flatnonzero(done):
            rec = {"return": float(self.ret[i]), "length": int(self.length[i])}
            rec.update({f"reward/{t}": float(v[i]) for t, v in self.terms.items()})
            rec.update({f"episode/{k}": float(info[k][i]) for k in EPISODE_END_KEYS if k in info})
            if "best_lap_time_s" in info:
                rec["best_lap_time_s"] = float(info["best_lap_time_s"][i])
            self.ended.append(rec)
            self.ret[i], self.length[i] = 0.0, 0
            for v in self.terms.values():
                v[i] = 0.0

    def summary(self) -> dict:
        """Means over the episodes ended since the last call (and forget them)."""
        ended, self.ended = self.ended, []
        out = {"charts/episodes": len(ended),
               "charts/episodic_return": _mean([e["return"] for e in ended]),
               "charts/episodic_length": _mean([e["length"] for e in ended])}
        for k in {k for e in ended for k in e if "/" in k}:
            out[k] = _mean([e[k] for e in ended if k in e])
        laps = [e["best_lap_time_s"] for e in ended if math.isfinite(e.get("best_lap_time_s", math.nan))]
        if any("best_lap_time_s" in e for e in ended):
            out["episode/best_lap_time_s"] = min(laps) if laps else math.nan
        return out


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def train_local(envs: gym.vector.VectorEnv | str, preset: Preset, seed: int = 0, device: str = "cpu",
                epochs: int | None = None, max_seconds: float | None = None,
                log: Callable[[dict], None] | None = None, progress: bool = False,
                **env_kwargs) -> tuple[QRSACAgent, SequenceReplay, list[dict]]:
    """Train ``preset`` on ``envs`` (a VectorEnv with NEXT_STEP autoreset, or an id for ``gym.make_vec``).

    Stops after ``epochs`` (default: the preset's) or once ``max_seconds`` of wall time have passed, at
    the end of an epoch. Returns the agent, its replay and one metrics record per epoch (see the
    module docstring); ``log`` is called with each record as it is made.
    """
    cfg = preset.train
    if isinstance(envs, str):
        envs = gym.make_vec(envs, num_envs=cfg.num_envs, **env_kwargs)
    torch.manual_seed(seed)
    n = envs.num_envs
    agent = QRSACAgent(envs.single_observation_space, envs.single_action_space, preset.agent, device,
                       burn_in=preset.replay.burn_in)
    replay = SequenceReplay(as_dict_space(envs.single_observation_space), agent.replay_keys, agent.action_dim,
                            agent.hidden_size, n, preset.replay, preset.agent.gamma, preset.agent.n_step,
                            device, seed=seed)
    obs, _ = envs.reset(seed=seed)
    hidden = agent.initial_hidden(n)
    prev_done = np.zeros(n, bool)
    stats = _EpisodeStats(n)
    history, env_steps, updates = [], 0, 0
    num_epochs = cfg.epochs if epochs is None else epochs
    start = time.perf_counter()
    bar = tqdm(total=num_epochs, desc="epochs", unit="epoch", disable=not progress, dynamic_ncols=True)
    for epoch in range(num_epochs):
        metrics = {}
        for _ in range(max(1, cfg.env_steps_per_epoch // n)):
            action, next_hidden = agent.act(obs, hidden)
            next_obs, reward, terminated, truncated, info = envs.step(action)
            replay.add(obs, hidden, action, reward, terminated, truncated, next_obs)
            done = ~prev_done & (terminated | truncated)
            stats.add(reward, info, ~prev_done, done)  # an autoreset step belongs to no episode
            # After the autoreset step, next_obs is a new episode's first observation: its state starts at zero.
            hidden = torch.where(torch.as_tensor(prev_done, device=agent.device)[:, None], 0.0, next_hidden)
            prev_done, obs = done, next_obs
            env_steps += n
        if len(replay) >= cfg.learning_starts:
            for _ in range(cfg.updates_per_epoch):
                metrics = agent.update(replay.sample())
                updates += 1
        if cfg.reset_epoch is not None and epoch + 1 == cfg.reset_epoch:
            agent.reinitialise()  # Paper III-E, IV-B: reinitialise networks (and optimisers) at epoch 2000
        wall = time.perf_counter() - start
        record = {"epoch": epoch + 1, "charts/env_steps": env_steps, "charts/updates": updates,
                  "charts/transitions": len(replay), "charts/wall_s": wall, "charts/sps": env_steps / wall,
                  **stats.summary(), **metrics}
        history.append(record)
        if log is not None:
            log(record)
        bar.update(1)
        recent = [h["charts/episodic_return"] for h in history[-20:] if math.isfinite(h["charts/episodic_return"])]
        bar.set_postfix(steps=env_steps, updates=updates, ret=f"{recent[-1]:.1f}" if recent else "-")
        if max_seconds is not None and wall >= max_seconds:
            break
    bar.close()
    return agent, replay, history


def evaluate_policy(agent: QRSACAgent, envs: gym.vector.VectorEnv, episodes: int, seed: int = 0) -> np.ndarray:
    """Returns of ``episodes`` episodes of the deterministic policy (the Gaussian's mean, squashed).

    ``envs``: a VectorEnv with NEXT_STEP autoreset; each sub-environment plays episodes until
    ``episodes`` have ended in all.
    """
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    hidden = agent.initial_hidden(n)
    ret, prev_done, returns = np.zeros(n), np.zeros(n, bool), []
    while len(returns) < episodes:
        action, next_hidden = agent.act(obs, hidden, eval_mode=True)
        obs, reward, terminated, truncated, _ = envs.step(action)
        ret += np.where(prev_done, 0.0, reward)
        done = ~prev_done & (terminated | truncated)
        returns += ret[done].tolist()
        ret[done] = 0.0
        hidden = torch.where(torch.as_tensor(prev_done, device=agent.device)[:, None], 0.0, next_hidden)
        prev_done = done
    return np.asarray(returns[:episodes])
