"""The training loop of both backends, reading like the algorithm; the single-process backend.

An epoch: collect ``env_steps_per_epoch`` environment steps with the current policy into the replay, run
``updates_per_epoch`` QR-SAC updates (once the buffer holds ``learning_starts``), and reinitialise the
networks at ``reset_epoch`` (paper III-E). :class:`Trainer` holds what both backends share (the agent,
the replay, the penalty ramp, the counters, the epoch); :class:`LocalTrainer` collects in this process,
``gtvision.agent.distributed.RayTrainer`` on Ray rollout workers while the learner updates. Both collect
with :class:`gtvision.agent.rollout.Rollout`. ``gtvision.training`` wraps them in a run directory.

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
``train/penalty_scale``        with a penalty ramp (``TrainConfig.penalty_ramp_epochs``) or a contact boost:
                               the scale of the penalty weights the learner used this epoch
``train/contact_scale``        ... and that of the car-contact weights (``TrainConfig.contact_boost``)
=============================  ==========================================================================
"""
from __future__ import annotations

import abc
import copy
import dataclasses
import math
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from ..rewards import TERM_NAMES, RewardConfig, stack_terms, weight_vector
from .distill import policy_labels
from .networks import as_dict_space
from .presets import Preset
from .qrsac import QRSACAgent
from .replay import SequenceReplay, concat_batches
from .rollout import EpisodeStats, Rollout, Step

_EpisodeStats = EpisodeStats  # the name checkpoints written before gtvision.agent.rollout pickled


class PenaltyRamp:
    """The reward the learner trains on under ``TrainConfig.penalty_ramp_epochs`` or ``contact_boost``: the
    environment's eight terms with the penalty weights scaled by ``TrainConfig.penalty_scale(epoch)`` and the
    car-contact weights, in addition, by ``TrainConfig.contact_scale(epoch)``."""

    def __init__(self, cfg, reward: RewardConfig | None):
        if reward is None:
            what = ("penalty_ramp_epochs" if cfg.penalty_ramp_epochs > 0 else "contact_boost_epochs")
            raise ValueError(f"{what}={getattr(cfg, what)} needs a gtvision racing environment (its info carries "
                             "the eight reward terms); use 0 for other environments")
        self.cfg, self.reward = cfg, reward

    def weights(self, epoch: int) -> np.ndarray:
        return weight_vector(self.reward, self.cfg.penalty_scale(epoch), self.cfg.contact_scale(epoch))


class Trainer(abc.ABC):
    """The learner's side of training, the same for both backends: agent, replay, penalty ramp, counters,
    and :meth:`run_epoch`. A backend says where the epoch's steps are collected
    (:meth:`start_collection`, :meth:`finish_collection`) and where the episode statistics gather
    (:attr:`stats`).

    ``reward``: the racing environment's reward configuration (``gtvision.env.reward_config``), which a
    penalty ramp reweighs; None for other tasks. ``teacher``: with ``TrainConfig.kickstart_weight`` > 0, the
    memoryless agent (a privileged actor, ``checkpoints.load_actor``) whose policy labels every stored row
    (:func:`gtvision.agent.distill.policy_labels`) and which the actor's loss keeps it near (kickstarting).
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, preset: Preset, num_envs: int,
                 seed: int = 0, device: str = "cpu", reward: RewardConfig | None = None,
                 teacher: QRSACAgent | None = None):
        cfg = self.cfg = preset.train
        self.preset, self.seed, self.num_envs = preset, seed, num_envs
        if (cfg.kickstart_weight > 0) != (teacher is not None):
            raise ValueError(f"train.kickstart_weight={cfg.kickstart_weight} and teacher="
                             f"{'None' if teacher is None else 'an agent'}: kickstarting needs both (a weight > 0 "
                             "and a teacher); plain RL neither")
        self.teacher = teacher
        torch.manual_seed(seed)
        self.agent = QRSACAgent(observation_space, action_space, preset.agent, device,
                                burn_in=preset.replay.burn_in)
        self.ramp = PenaltyRamp(cfg, reward) if cfg.reweighs else None
        self.observation_space = as_dict_space(observation_space)
        self.replay = SequenceReplay(self.observation_space, self.agent.replay_keys,
                                     self.agent.action_dim, self.agent.hidden_size, num_envs, preset.replay,
                                     preset.agent.gamma, preset.agent.n_step, device, seed=seed,
                                     reward_terms=len(TERM_NAMES) if self.ramp else 0, labels=self.label_size)
        self.demos: SequenceReplay | None = None
        """BIAI demonstrations (``TrainConfig.demo_steps``), filled by :meth:`add_demonstrations`."""
        self.epoch, self.env_steps, self.updates, self.wall_s = 0, 0, 0, 0.0

    def add_demonstrations(self, envs: gym.vector.VectorEnv, steps: int, seed: int = 0):
        """The BIAI drives ``steps`` steps (all sub-environments together) in the learner's seat of ``envs`` (a
        gtvision racing vector environment), stored in :attr:`demos`, a replay that collection never writes.

        The stored hidden states are the actor's own along the BIAI's observations (``Rollout.step`` with
        the BIAI's actions: no random draw, so the run's random streams are those of a run without
        demonstrations)."""
        if not hasattr(envs.unwrapped, "biai_actions"):
            raise ValueError(f"demo_steps={steps} needs a gtvision racing environment (the BIAI drives the "
                             "demonstrations); use 0 for other environments")
        n = envs.num_envs
        window = self.replay.window
        demo_cfg = dataclasses.replace(self.preset.replay, path=None,
                                       capacity=int(1.25 * steps) + 2 * window * n)  # + episodes' final rows
        self.demos = SequenceReplay(self.observation_space, self.agent.replay_keys, self.agent.action_dim,
                                    self.agent.hidden_size, n, demo_cfg, self.preset.agent.gamma,
                                    self.preset.agent.n_step, self.agent.device, seed=seed,
                                    reward_terms=len(TERM_NAMES) if self.ramp else 0, labels=self.label_size)
        rollout = Rollout(envs, self.agent, seed=seed)  # the BIAI drives; the actor's state rides along
        for _ in range(max(1, steps // n)):
            step = rollout.step(envs.unwrapped.biai_actions())
            self.demos.add(step.obs, step.hidden, step.action, step.reward, step.terminated, step.truncated,
                           step.next_obs, terms=stack_terms(step.info) if self.ramp else None,
                           labels=self.labels(step.obs))
        return self.demos

    @property
    def label_size(self) -> int:
        """Numbers per stored row that the teacher labels (its pre-tanh mean and log std); 0 without one."""
        return 2 * self.agent.action_dim if self.teacher is not None else 0

    def labels(self, obs) -> np.ndarray | None:
        """The teacher's labels (n, 2A) of a batched observation (kickstarting), or None without a teacher: its
        policy through its safety layers, or without them for an actor with a seen shield (its own layers)."""
        if self.teacher is None:
            return None
        return policy_labels(self.teacher, obs, shielded=not self.agent.config.seen_shield)

    def run_epoch(self) -> dict:
        """One epoch; returns its metrics record (see the module docstring)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        pending = self.start_collection(max(1, cfg.env_steps_per_epoch // self.num_envs))
        metrics = self.learn()
        extra = self.finish_collection(pending)
        self.epoch += 1
        if cfg.reset_epoch is not None and self.epoch == cfg.reset_epoch:
            self.agent.reinitialise()  # Paper III-E, IV-B: reinitialise networks (and optimisers) at epoch 2000
        self.end_epoch()
        self.wall_s += time.perf_counter() - t0
        return {"epoch": self.epoch, "charts/env_steps": self.env_steps, "charts/updates": self.updates,
                "charts/transitions": len(self.replay), "charts/wall_s": self.wall_s,
                "charts/sps": self.env_steps / max(self.wall_s, 1e-9), **extra, **self.stats.summary(),
                **metrics}

    def learn(self) -> dict:
        """The epoch's updates (once the replay holds ``learning_starts`` transitions); the last one's metrics."""
        cfg, metrics = self.cfg, {}
        if len(self.replay) >= cfg.learning_starts:
            weights = self.ramp.weights(self.epoch) if self.ramp else None
            for _ in range(cfg.updates_per_epoch):
                metrics = self.agent.update(self.sample(weights), kickstart_weight=cfg.kickstart_weight)
                self.updates += 1
        if self.ramp:
            metrics["train/penalty_scale"] = cfg.penalty_scale(self.epoch)
            metrics["train/contact_scale"] = cfg.contact_scale(self.epoch)
        return metrics

    def sample(self, reward_weights: np.ndarray | None = None) -> dict:
        """A batch of the replay's sequences and, with demonstrations, ``demo_share`` of them from :attr:`demos`."""
        if self.demos is None:
            return self.replay.sample(reward_weights=reward_weights)
        b = self.preset.replay.batch_sequences
        from_demos = int(round(b * self.cfg.demo_share))
        parts = [r.sample(k, reward_weights=reward_weights)
                 for r, k in ((self.demos, from_demos), (self.replay, b - from_demos)) if k > 0]
        return concat_batches(*parts)

    def store(self, step: Step, streams: np.ndarray | None = None):
        """Put one collected vector step into the replay (``streams``: the rows' streams, default all)."""
        self.replay.add(step.obs, step.hidden, step.action, step.reward, step.terminated, step.truncated,
                        step.next_obs, streams=streams, terms=stack_terms(step.info) if self.ramp else None,
                        labels=self.labels(step.obs))

    # what a backend provides
    @property
    @abc.abstractmethod
    def stats(self) -> EpisodeStats:
        """The episode statistics of the collected steps."""

    @abc.abstractmethod
    def start_collection(self, steps: int):
        """Collect ``steps`` vector steps (or start collecting them); returns what :meth:`finish_collection`
        needs."""

    def finish_collection(self, pending) -> dict:
        """Store what :meth:`start_collection` began; returns the backend's own metrics."""
        return {}

    def end_epoch(self):
        """After the epoch's updates and any reset (the Ray backend hands the weights to its workers)."""

    def close(self):
        """Release the environments or workers."""


class LocalTrainer(Trainer):
    """Training in one process, as an object whose whole state can be saved and restored.

    Each epoch collects its steps here with the current policy, then updates. :meth:`state_dict` /
    :meth:`load_state_dict` hold everything the next epoch depends on (networks, optimisers, targets,
    counters, RNG states, the environments and the episodes in progress), so a restored trainer continues
    step for step; the replay is saved apart (:meth:`SequenceReplay.save`). ``reward``: by default the
    reward configuration named by the environments' spec (``gtvision.env.reward_config``).
    """

    def __init__(self, envs: gym.vector.VectorEnv, preset: Preset, seed: int = 0, device: str = "cpu",
                 reward: RewardConfig | None = None, teacher: QRSACAgent | None = None):
        if reward is None and envs.spec is not None:
            from ..env import reward_config
            reward = reward_config(envs.spec.id, envs.spec.kwargs)
        super().__init__(envs.single_observation_space, envs.single_action_space, preset, envs.num_envs, seed,
                         device, reward, teacher)
        self.envs = envs
        self.rollout = Rollout(envs, self.agent, seed=seed)

    @property
    def stats(self) -> EpisodeStats:
        return self.rollout.stats

    def start_collection(self, steps: int):
        for _ in range(steps):
            self.store(self.rollout.step())
            self.env_steps += self.num_envs

    def close(self):
        self.envs.close()

    def state_dict(self) -> dict:
        """Everything but the replay: networks, optimisers, counters, RNG states, environments, episodes."""
        return {"agent": self.agent.state_dict(), "epoch": self.epoch, "env_steps": self.env_steps,
                "updates": self.updates, "wall_s": self.wall_s, "torch_rng": torch.get_rng_state(),
                **self.rollout.state_dict(), "envs": _picklable_envs(self.envs)}

    def load_state_dict(self, state: dict):
        self.agent.load_state_dict(state["agent"])
        self.epoch, self.env_steps, self.updates, self.wall_s = (state["epoch"], state["env_steps"],
                                                                 state["updates"], state["wall_s"])
        torch.set_rng_state(state["torch_rng"])
        if state["envs"] is not None:
            self.envs.close()
            self.envs = self.rollout.envs = state["envs"]
            self.rollout.load_state_dict(state)
        else:  # environments that cannot be pickled start new episodes, seeded by the epoch
            self.rollout.reset(seed=self.seed + 1_000_003 * self.epoch)


def _picklable_envs(envs: gym.vector.VectorEnv):
    """``envs`` if it pickles (gtvision's vector envs do); a ``SyncVectorEnv`` without its factory
    closures; else None."""
    import pickle
    try:
        pickle.dumps(envs)
        return envs
    except Exception:  # noqa: BLE001  (any pickling failure means: restart the episodes on resume)
        pass
    if isinstance(envs, gym.vector.SyncVectorEnv):
        fns, envs.env_fns = envs.env_fns, None
        try:
            pickle.dumps(envs)
            return copy.deepcopy(envs)
        except Exception:  # noqa: BLE001
            return None
        finally:
            envs.env_fns = fns
    return None


def train_local(envs: gym.vector.VectorEnv | str, preset: Preset, seed: int = 0, device: str = "cpu",
                epochs: int | None = None, max_seconds: float | None = None,
                log: Callable[[dict], None] | None = None, progress: bool = False,
                **env_kwargs) -> tuple[QRSACAgent, SequenceReplay, list[dict]]:
    """Train ``preset`` on ``envs`` (a VectorEnv with NEXT_STEP autoreset, or an id for ``gym.make_vec``).

    Stops after ``epochs`` (default: the preset's) or once ``max_seconds`` of wall time have passed, at
    the end of an epoch. Returns the agent, its replay and one metrics record per epoch (see the
    module docstring); ``log`` is called with each record as it is made.
    """
    if isinstance(envs, str):
        envs = gym.make_vec(envs, num_envs=preset.train.num_envs, **env_kwargs)
    trainer = LocalTrainer(envs, preset, seed, device)
    history = []
    for record in run_epochs(trainer, preset.train.epochs if epochs is None else epochs, max_seconds, progress):
        history.append(record)
        if log is not None:
            log(record)
    return trainer.agent, trainer.replay, history


def run_epochs(trainer: LocalTrainer, epochs: int, max_seconds: float | None = None, progress: bool = False):
    """Yield the records of ``trainer``'s epochs until it has run ``epochs`` in all (counting epochs run
    before a resume) or ``max_seconds`` of training time have passed (0: none at all); a progress bar on request."""
    bar = tqdm(total=epochs, initial=trainer.epoch, desc="epochs", unit="epoch", disable=not progress,
               dynamic_ncols=True)
    last_return = math.nan
    while trainer.epoch < epochs and (max_seconds is None or trainer.wall_s < max_seconds):
        record = trainer.run_epoch()
        if math.isfinite(record["charts/episodic_return"]):
            last_return = record["charts/episodic_return"]
        bar.update(1)
        bar.set_postfix(steps=trainer.env_steps, updates=trainer.updates,
                        ret="-" if math.isnan(last_return) else f"{last_return:.1f}")
        yield record
    bar.close()
