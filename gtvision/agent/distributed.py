"""The Ray backend (DESIGN 7, ``backend="ray"``): rollout workers as Ray actors, one learner.

Paper IV-B trains asynchronously: rollout workers drive with a copy of the policy and send experience
to a learner that owns the replay and updates continuously; the workers take the newest policy at the
end of every epoch. Here, per epoch:

1. every worker is asked for ``env_steps_per_epoch / workers`` vector steps (its own ``make_vec``
   environments, its CPU copy of the actor), and returns them as whole steps;
2. meanwhile the learner runs the epoch's ``updates_per_epoch`` updates on the replay it holds;
3. the workers' steps go into the replay, one stream per worker environment;
4. the actor's weights are put once in the object store (``ray.put``); every worker's next collection
   takes that reference and loads the weights before it drives.

A worker whose process dies is restarted by Ray (``max_restarts=-1``) with fresh environments, and its
collection is retried there (``max_task_retries=-1``): the weights come with the call, so the restarted
worker drives with the current ones; the replay streams of its lost episodes are cut
(``SequenceReplay.restart_streams``). The run goes on. ``ray.init()`` starts a local
Ray sized to the machine's cores, or joins a cluster (``address="auto"`` after ``ray start``).

Unlike the local backend this one is not deterministic: workers run concurrently with the learner.
"""
from __future__ import annotations

import os
import time

import gymnasium as gym
import numpy as np
import torch

from ..rewards import TERM_NAMES
from .loop import PenaltyRamp, _EpisodeStats, reward_config_of
from .networks import as_dict_space
from .presets import Preset
from .qrsac import QRSACAgent
from .replay import SequenceReplay


class RolloutWorker:
    """One worker: ``num_envs`` sub-environments of ``env_id`` and a CPU copy of the actor (Ray actor body)."""

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict, preset: Preset, seed: int, threads: int = 1):
        import gtvision  # noqa: F401  (registers the racing environments in this process)
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.envs = gym.make_vec(env_id, num_envs=num_envs, **env_kwargs)
        self.agent = QRSACAgent(self.envs.single_observation_space, self.envs.single_action_space, preset.agent,
                                "cpu", burn_in=preset.replay.burn_in, acting_only=True)
        self.obs, _ = self.envs.reset(seed=seed)
        self.hidden = self.agent.initial_hidden(num_envs)
        self.prev_done = np.zeros(num_envs, bool)
        self.stats = _EpisodeStats(num_envs)
        self.store_terms = preset.train.penalty_ramp_epochs > 0
        """Return each step's reward terms too (a penalty ramp relabels the rewards)."""
        self.version = -1
        self.fresh = True
        """New environments (a first collection, or the first after a restart)."""

    def pid(self) -> int:
        return os.getpid()

    def weights_version(self) -> int:
        return self.version

    def collect(self, steps: int, actor_state: dict, version: int) -> dict:
        """``steps`` vector steps with the weights ``actor_state`` (loaded unless already held): the steps
        (each as ``SequenceReplay.add`` takes it), the records of the episodes that ended, the weights'
        version, and whether the environments are fresh."""
        if version != self.version:
            self.agent.actor.load_state_dict(actor_state)
            self.version = version
        out = []
        for _ in range(steps):
            action, next_hidden = self.agent.act(self.obs, self.hidden)
            next_obs, reward, terminated, truncated, info = self.envs.step(action)
            terms = PenaltyRamp.terms(info) if self.store_terms else None
            out.append((self.obs, self.hidden.numpy().copy(), action, reward, terminated, truncated, next_obs,
                        terms))
            done = ~self.prev_done & (terminated | truncated)
            self.stats.add(reward, info, ~self.prev_done, done)
            self.hidden = torch.where(torch.as_tensor(self.prev_done)[:, None], 0.0, next_hidden)
            self.prev_done, self.obs = done, next_obs
        ended, self.stats.ended = self.stats.ended, []
        fresh, self.fresh = self.fresh, False
        return {"steps": out, "episodes": ended, "version": self.version, "fresh": fresh}


class RayTrainer:
    """The learner of the Ray backend, with the interface of ``LocalTrainer`` (``run_epoch``, counters,
    ``state_dict``): the learner's state is checkpointed; the workers' environments are not (a resumed
    run starts new episodes)."""

    def __init__(self, env_id: str, env_kwargs: dict, preset: Preset, workers: int, envs_per_worker: int,
                 seed: int = 0, device: str = "cpu", address: str | None = None, worker_threads: int = 1):
        import ray

        if workers < 1 or envs_per_worker < 1:
            raise ValueError(f"workers and envs per worker must be >= 1, got {workers} and {envs_per_worker}")
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else max(os.cpu_count() or 1, workers),
                     include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        self.ray = ray
        self.preset, self.cfg, self.seed = preset, preset.train, seed
        torch.manual_seed(seed)
        probe = gym.make_vec(env_id, num_envs=1, **env_kwargs)
        space, act_space = probe.single_observation_space, probe.single_action_space
        ramped = self.cfg.penalty_ramp_epochs > 0
        self.ramp = PenaltyRamp(self.cfg, reward_config_of(probe)) if ramped else None
        probe.close()
        self.num_workers, self.envs_per_worker = workers, envs_per_worker
        self.num_envs = workers * envs_per_worker
        self.agent = QRSACAgent(space, act_space, preset.agent, device, burn_in=preset.replay.burn_in)
        self.replay = SequenceReplay(as_dict_space(space), self.agent.replay_keys, self.agent.action_dim,
                                     self.agent.hidden_size, self.num_envs, preset.replay, preset.agent.gamma,
                                     preset.agent.n_step, device, seed=seed,
                                     reward_terms=len(TERM_NAMES) if self.ramp else 0)
        remote = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(RolloutWorker)
        self.workers = [remote.remote(env_id, envs_per_worker, env_kwargs, preset, seed + 7919 * (i + 1),
                                      worker_threads) for i in range(workers)]
        self.stats = _EpisodeStats(0)
        self.epoch, self.env_steps, self.updates, self.wall_s = 0, 0, 0, 0.0
        self.version, self.restarts, self.stale = 0, 0, 0
        self.collections = np.zeros(workers, np.int64)
        self._broadcast()

    def streams(self, worker: int) -> np.ndarray:
        return np.arange(worker * self.envs_per_worker, (worker + 1) * self.envs_per_worker)

    def _broadcast(self):
        """Put the actor's weights once in the object store; the workers' next collections take them."""
        self.weights = self.ray.put({k: v.detach().cpu() for k, v in self.agent.actor.state_dict().items()})

    def run_epoch(self) -> dict:
        cfg, ray = self.cfg, self.ray
        t0, metrics = time.perf_counter(), {}
        steps = max(1, cfg.env_steps_per_epoch // self.num_envs)
        futures = [w.collect.remote(steps, self.weights, self.version) for w in self.workers]
        if len(self.replay) >= cfg.learning_starts:  # the learner updates while the workers drive
            weights = self.ramp.weights(self.epoch) if self.ramp else None
            for _ in range(cfg.updates_per_epoch):
                metrics = self.agent.update(self.replay.sample(reward_weights=weights))
                self.updates += 1
        if self.ramp:
            metrics["train/penalty_scale"] = cfg.penalty_scale(self.epoch)
        lost = 0
        for i, fut in enumerate(futures):
            try:
                result = ray.get(fut)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                lost += 1  # the worker could not be restarted in time: its steps of this epoch are lost
                continue
            if result["fresh"]:  # new environments: the episodes stored for this worker were cut short
                self.restarts += int(self.collections[i] > 0)
                self.replay.restart_streams(self.streams(i))
            self.collections[i] += 1
            self.stale += int(result["version"] != self.version)
            for *step, terms in result["steps"]:
                self.replay.add(*step, streams=self.streams(i), terms=terms)
            self.stats.ended += result["episodes"]
            self.env_steps += steps * self.envs_per_worker
        self.epoch += 1
        if cfg.reset_epoch is not None and self.epoch == cfg.reset_epoch:
            self.agent.reinitialise()  # Paper III-E, IV-B: reinitialise networks (and optimisers)
        self.version += 1
        self._broadcast()
        self.wall_s += time.perf_counter() - t0
        return {"epoch": self.epoch, "charts/env_steps": self.env_steps, "charts/updates": self.updates,
                "charts/transitions": len(self.replay), "charts/wall_s": self.wall_s,
                "charts/sps": self.env_steps / max(self.wall_s, 1e-9), "ray/workers_lost": lost,
                "ray/worker_restarts": self.restarts, "ray/stale_collections": self.stale,
                **self.stats.summary(), **metrics}

    def worker_versions(self) -> list[int]:
        """The weights' version each worker holds now (after the calls made so far)."""
        return self.ray.get([w.weights_version.remote() for w in self.workers])

    def worker_pids(self) -> list[int]:
        return self.ray.get([w.pid.remote() for w in self.workers])

    def state_dict(self) -> dict:
        return {"agent": self.agent.state_dict(), "epoch": self.epoch, "env_steps": self.env_steps,
                "updates": self.updates, "wall_s": self.wall_s, "torch_rng": torch.get_rng_state(),
                "version": self.version, "envs": None}

    def load_state_dict(self, state: dict):
        self.agent.load_state_dict(state["agent"])
        self.epoch, self.env_steps, self.updates, self.wall_s = (state["epoch"], state["env_steps"],
                                                                 state["updates"], state["wall_s"])
        torch.set_rng_state(state["torch_rng"])
        self.version = state.get("version", self.epoch)
        self._broadcast()

    def close(self):
        """Stop the workers (and their environments)."""
        for w in self.workers:
            self.ray.kill(w, no_restart=True)
        self.workers = []
