"""The Ray backend (``backend="ray"``): rollout workers as Ray actors, one learner.

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

import numpy as np
import torch

from .loop import Trainer
from .presets import Preset
from .qrsac import QRSACAgent
from .rollout import EpisodeStats, Rollout


class RolloutWorker:
    """One worker: ``num_envs`` sub-environments of ``env_id`` and a CPU copy of the actor (Ray actor body)."""

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict, preset: Preset, seed: int, threads: int = 1):
        import gymnasium as gym

        import gtvision  # noqa: F401  (registers the racing environments in this process)
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        envs = gym.make_vec(env_id, num_envs=num_envs, **env_kwargs)
        self.agent = QRSACAgent(envs.single_observation_space, envs.single_action_space, preset.agent, "cpu",
                                burn_in=preset.replay.burn_in, acting_only=True)
        self.rollout = Rollout(envs, self.agent, seed=seed)
        self.version = -1
        self.fresh = True
        """New environments (a first collection, or the first after a restart)."""

    def pid(self) -> int:
        return os.getpid()

    def weights_version(self) -> int:
        return self.version

    def collect(self, steps: int, actor_state: dict, version: int) -> dict:
        """``steps`` vector steps with the weights ``actor_state`` (loaded unless already held): the steps
        (``gtvision.agent.rollout.Step``, as the learner stores them), the records of the episodes that
        ended, the weights' version, and whether the environments are fresh."""
        if version != self.version:
            self.agent.actor.load_state_dict(actor_state)
            self.version = version
        out = [self.rollout.step() for _ in range(steps)]
        fresh, self.fresh = self.fresh, False
        return {"steps": out, "episodes": self.rollout.stats.take(), "version": self.version, "fresh": fresh}


class RayTrainer(Trainer):
    """The learner of the Ray backend: :class:`gtvision.agent.loop.Trainer` with its collection on rollout
    workers, which drive while the learner updates. The learner's state is checkpointed; the workers'
    environments are not (a resumed run starts new episodes). ``reward``: by default the racing
    environment's reward configuration named by ``env_id`` and ``env_kwargs``."""

    def __init__(self, env_id: str, env_kwargs: dict, preset: Preset, workers: int, envs_per_worker: int,
                 seed: int = 0, device: str = "cpu", address: str | None = None, worker_threads: int = 1,
                 reward=None):
        import ray

        from ..env import env_spaces, reward_config

        if workers < 1 or envs_per_worker < 1:
            raise ValueError(f"workers and envs per worker must be >= 1, got {workers} and {envs_per_worker}")
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=None if address else max(os.cpu_count() or 1, workers),
                     include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        self.ray = ray
        space, act_space = env_spaces(env_id, env_kwargs)
        reward = reward if reward is not None else reward_config(env_id, env_kwargs)
        super().__init__(space, act_space, preset, workers * envs_per_worker, seed, device, reward)
        self.num_workers, self.envs_per_worker = workers, envs_per_worker
        remote = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)(RolloutWorker)
        self.workers = [remote.remote(env_id, envs_per_worker, env_kwargs, preset, seed + 7919 * (i + 1),
                                      worker_threads) for i in range(workers)]
        self._stats = EpisodeStats(0)
        self.version, self.restarts, self.stale = 0, 0, 0
        self.collections = np.zeros(workers, np.int64)
        self._broadcast()

    @property
    def stats(self) -> EpisodeStats:
        return self._stats

    def streams(self, worker: int) -> np.ndarray:
        return np.arange(worker * self.envs_per_worker, (worker + 1) * self.envs_per_worker)

    def _broadcast(self):
        """Put the actor's weights once in the object store; the workers' next collections take them."""
        self.weights = self.ray.put({k: v.detach().cpu() for k, v in self.agent.actor.state_dict().items()})

    def start_collection(self, steps: int):
        """Ask every worker for ``steps`` vector steps with the current weights; the learner updates meanwhile."""
        return steps, [w.collect.remote(steps, self.weights, self.version) for w in self.workers]

    def finish_collection(self, pending) -> dict:
        """Store the workers' steps, one replay stream per worker environment."""
        ray = self.ray
        steps, futures = pending
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
            for step in result["steps"]:
                self.store(step, streams=self.streams(i))
            self._stats.ended += result["episodes"]
            self.env_steps += steps * self.envs_per_worker
        return {"ray/workers_lost": lost, "ray/worker_restarts": self.restarts, "ray/stale_collections": self.stale}

    def end_epoch(self):
        """The epoch's weights (after its updates and any reset) go to the workers' next collections."""
        self.version += 1
        self._broadcast()

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
