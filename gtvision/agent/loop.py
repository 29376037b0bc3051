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
``train/penalty_scale``        with a penalty ramp (``TrainConfig.penalty_ramp_epochs``): the scale of the
                               penalty weights the learner used this epoch
=============================  ==========================================================================
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from ..rewards import TERM_NAMES, RewardConfig, weight_vector
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


class PenaltyRamp:
    """The reward the learner trains on under ``TrainConfig.penalty_ramp_epochs``: the environment's eight
    terms with the penalty weights scaled by ``TrainConfig.penalty_scale(epoch)``."""

    def __init__(self, cfg, reward: RewardConfig | None):
        if reward is None:
            raise ValueError(f"penalty_ramp_epochs={cfg.penalty_ramp_epochs} needs a gtvision racing "
                             "environment (its info carries the eight reward terms); use 0 for other "
                             "environments")
        self.cfg, self.reward = cfg, reward

    @staticmethod
    def terms(info: dict) -> np.ndarray:
        """(n, 8) float32: the unweighted terms of a vector step, in ``TERM_NAMES`` order."""
        return np.stack([np.asarray(info[f"reward_{t}"], np.float32) for t in TERM_NAMES], axis=-1)

    def weights(self, epoch: int) -> np.ndarray:
        return weight_vector(self.reward, self.cfg.penalty_scale(epoch))


def reward_config_of(envs) -> RewardConfig | None:
    """The ``RewardConfig`` of a gtvision racing vector environment, else None."""
    batch = getattr(getattr(envs, "unwrapped", envs), "batch", None)
    return getattr(batch, "reward_cfg", None)


class LocalTrainer:
    """The single-process loop as an object whose whole state can be saved and restored.

    ``run_epoch()`` collects ``env_steps_per_epoch`` steps with the current policy, stores them, then runs
    ``updates_per_epoch`` updates (once the buffer holds ``learning_starts``), and reinitialises the
    networks at ``reset_epoch``. :meth:`state_dict` / :meth:`load_state_dict` hold everything the next
    epoch depends on (networks, optimisers, targets, counters, RNG states, the environments and the
    episode in progress), so a restored trainer continues step for step; the replay is saved apart
    (:meth:`SequenceReplay.save`).
    """

    def __init__(self, envs: gym.vector.VectorEnv, preset: Preset, seed: int = 0, device: str = "cpu"):
        cfg = preset.train
        self.envs, self.preset, self.cfg, self.seed = envs, preset, cfg, seed
        torch.manual_seed(seed)
        n = self.num_envs = envs.num_envs
        self.agent = QRSACAgent(envs.single_observation_space, envs.single_action_space, preset.agent, device,
                                burn_in=preset.replay.burn_in)
        self.ramp = PenaltyRamp(cfg, reward_config_of(envs)) if cfg.penalty_ramp_epochs > 0 else None
        self.replay = SequenceReplay(as_dict_space(envs.single_observation_space), self.agent.replay_keys,
                                     self.agent.action_dim, self.agent.hidden_size, n, preset.replay,
                                     preset.agent.gamma, preset.agent.n_step, device, seed=seed,
                                     reward_terms=len(TERM_NAMES) if self.ramp else 0)
        self.obs, _ = envs.reset(seed=seed)
        self.hidden = self.agent.initial_hidden(n)
        self.prev_done = np.zeros(n, bool)
        self.stats = _EpisodeStats(n)
        self.epoch, self.env_steps, self.updates, self.wall_s = 0, 0, 0, 0.0

    def run_epoch(self) -> dict:
        """One epoch; returns its metrics record (see the module docstring)."""
        cfg, agent, n = self.cfg, self.agent, self.num_envs
        t0, metrics = time.perf_counter(), {}
        for _ in range(max(1, cfg.env_steps_per_epoch // n)):
            action, next_hidden = agent.act(self.obs, self.hidden)
            next_obs, reward, terminated, truncated, info = self.envs.step(action)
            self.replay.add(self.obs, self.hidden, action, reward, terminated, truncated, next_obs,
                            terms=self.ramp.terms(info) if self.ramp else None)
            done = ~self.prev_done & (terminated | truncated)
            self.stats.add(reward, info, ~self.prev_done, done)  # an autoreset step belongs to no episode
            # After the autoreset step, next_obs is a new episode's first observation: its state starts at zero.
            self.hidden = torch.where(torch.as_tensor(self.prev_done, device=agent.device)[:, None], 0.0, next_hidden)
            self.prev_done, self.obs = done, next_obs
            self.env_steps += n
        if len(self.replay) >= cfg.learning_starts:
            weights = self.ramp.weights(self.epoch) if self.ramp else None
            for _ in range(cfg.updates_per_epoch):
                metrics = agent.update(self.replay.sample(reward_weights=weights))
                self.updates += 1
        if self.ramp:
            metrics["train/penalty_scale"] = cfg.penalty_scale(self.epoch)
        self.epoch += 1
        if cfg.reset_epoch is not None and self.epoch == cfg.reset_epoch:
            agent.reinitialise()  # Paper III-E, IV-B: reinitialise networks (and optimisers) at epoch 2000
        self.wall_s += time.perf_counter() - t0
        return {"epoch": self.epoch, "charts/env_steps": self.env_steps, "charts/updates": self.updates,
                "charts/transitions": len(self.replay), "charts/wall_s": self.wall_s,
                "charts/sps": self.env_steps / max(self.wall_s, 1e-9), **self.stats.summary(), **metrics}

    def close(self):
        self.envs.close()

    def state_dict(self) -> dict:
        """Everything but the replay: networks, optimisers, counters, RNG states, environments, episodes."""
        return {"agent": self.agent.state_dict(), "epoch": self.epoch, "env_steps": self.env_steps,
                "updates": self.updates, "wall_s": self.wall_s, "torch_rng": torch.get_rng_state(),
                "obs": self.obs, "hidden": self.hidden.cpu(), "prev_done": self.prev_done, "stats": self.stats,
                "envs": _picklable_envs(self.envs)}

    def load_state_dict(self, state: dict):
        self.agent.load_state_dict(state["agent"])
        self.epoch, self.env_steps, self.updates, self.wall_s = (state["epoch"], state["env_steps"],
                                                                 state["updates"], state["wall_s"])
        torch.set_rng_state(state["torch_rng"])
        self.obs, self.prev_done, self.stats = state["obs"], state["prev_done"], state["stats"]
        self.hidden = state["hidden"].to(self.agent.device)
        if state["envs"] is not None:
            self.envs.close()
            self.envs = state["envs"]
        else:  # environments that cannot be pickled start new episodes, seeded by the epoch
            self.obs, _ = self.envs.reset(seed=self.seed + 1_000_003 * self.epoch)
            self.hidden = self.agent.initial_hidden(self.num_envs)
            self.prev_done = np.zeros(self.num_envs, bool)
            self.stats = _EpisodeStats(self.num_envs)


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
    before a resume) or ``max_seconds`` of training time have passed; a progress bar on request."""
    bar = tqdm(total=epochs, initial=trainer.epoch, desc="epochs", unit="epoch", disable=not progress,
               dynamic_ncols=True)
    last_return = math.nan
    while trainer.epoch < epochs:
        record = trainer.run_epoch()
        if math.isfinite(record["charts/episodic_return"]):
            last_return = record["charts/episodic_return"]
        bar.update(1)
        bar.set_postfix(steps=trainer.env_steps, updates=trainer.updates,
                        ret="-" if math.isnan(last_return) else f"{last_return:.1f}")
        yield record
        if max_seconds is not None and trainer.wall_s >= max_seconds:
            break
    bar.close()


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
