"""A single-process training loop (DESIGN 7, ``backend="local"``), reading like the algorithm.

Epochs of ``env_steps_per_epoch`` collected steps then ``updates_per_epoch`` QR-SAC updates; the networks
are reinitialised at ``reset_epoch`` (paper III-E). The next issue adds the CLI, Ray and checkpoints.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from .networks import as_dict_space
from .presets import Preset
from .qrsac import QRSACAgent
from .replay import SequenceReplay


def train_local(envs: gym.vector.VectorEnv | str, preset: Preset, seed: int = 0, device: str = "cpu",
                epochs: int | None = None, log: Callable[[dict], None] | None = None,
                **env_kwargs) -> tuple[QRSACAgent, SequenceReplay, list[dict]]:
    """Train ``preset`` on ``envs`` (a VectorEnv with NEXT_STEP autoreset, or an id for ``gym.make_vec``).

    Returns the agent, its replay and one metrics dict per epoch (``charts/episode_return`` is the mean return of the
    episodes that ended in the epoch, NaN if none did).
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
    episode_return = np.zeros(n)
    history = []
    for epoch in range(cfg.epochs if epochs is None else epochs):
        t0, finished, metrics = time.perf_counter(), [], {}
        for _ in range(max(1, cfg.env_steps_per_epoch // n)):
            action, next_hidden = agent.act(obs, hidden)
            next_obs, reward, terminated, truncated, _ = envs.step(action)
            replay.add(obs, hidden, action, reward, terminated, truncated, next_obs)
            episode_return += np.where(prev_done, 0.0, reward)
            done = ~prev_done & (terminated | truncated)
            finished += episode_return[done].tolist()
            episode_return[done] = 0.0
            # After the autoreset step, next_obs is a new episode's first observation: its state starts at zero.
            hidden = torch.where(torch.as_tensor(prev_done, device=agent.device)[:, None], 0.0, next_hidden)
            prev_done, obs = done, next_obs
        if len(replay) >= cfg.learning_starts:
            for _ in range(cfg.updates_per_epoch):
                metrics = agent.update(replay.sample())
        if cfg.reset_epoch is not None and epoch + 1 == cfg.reset_epoch:
            agent.reinitialise()  # Paper III-E, IV-B: reinitialise networks (and optimisers) at epoch 2000
        record = {"epoch": epoch + 1, "charts/transitions": len(replay),
                  "charts/episode_return": float(np.mean(finished)) if finished else float("nan"),
                  "charts/epoch_s": time.perf_counter() - t0, **metrics}
        history.append(record)
        if log is not None:
            log(record)
    return agent, replay, history
