"""One rollout step: act -> step -> autoreset -> hidden reset -> episode statistics.

Every loop that drives a vector environment uses :class:`Rollout`: the local trainer and the Ray rollout
workers (``gtvision.agent.loop``, ``gtvision.agent.distributed``), policy evaluation
(:func:`evaluate_policy`), evaluation races and race recordings (``gtvision.evaluation``) and attribution
(``gtvision.attribution``).

The environments autoreset in gymnasium's ``AutoresetMode.NEXT_STEP``: the step that ends an episode
returns its final observation with ``terminated`` or ``truncated``, and the *next* step of that
sub-environment ignores its action and returns the first observation of a new episode (reward 0, not
terminated). So per sub-environment and step:

=============  =============================================================================================
``live``       the step belongs to an episode (it is not an autoreset step)
``done``       the step ended an episode (:func:`episode_ends`)
hidden         the actor's recurrent state entering the next observation: after an autoreset step that
               observation starts an episode, so its state is zero
=============  =============================================================================================

The driver is an agent's policy (``QRSACAgent.act``: sampled, or its mean with ``eval_mode``), through its
recovery reflex and then its stability aid when its configuration has them (``config.recovery``,
:mod:`gtvision.agent.recovery`; ``config.stability``, :mod:`gtvision.agent.stability`), or, when
:meth:`Rollout.step` is given actions, whoever chose them (the BIAI in the agent's seat).

Episode statistics (:class:`EpisodeStats`) gather the return, the length, the sum of every reward term
(``info["reward_<term>"]``) and, at the end, the racing environment's ``EPISODE_END_KEYS``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .recovery import RecoveryReflex
from .stability import StabilityAid, envs_car

EPISODE_END_KEYS = ("progress_m", "laps_done", "place", "wall_time_s", "car_contact_time_s",
                    "off_course_time_s", "margin_m")
"""``info`` keys reported at an episode's end as ``episode/<key>`` (when the environment gives them)."""


def episode_ends(autoreset: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """(n,) bool: the steps that ended an episode, given which sub-environments were on their autoreset step
    (those that ended an episode the step before: their flags belong to no episode)."""
    return ~np.asarray(autoreset, bool) & (np.asarray(terminated, bool) | np.asarray(truncated, bool))


class EpisodeStats:
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

    def take(self) -> list[dict]:
        """The records of the episodes ended since the last call (and forget them)."""
        ended, self.ended = self.ended, []
        return ended

    def summary(self) -> dict:
        """Means over the episodes ended since the last call (and forget them)."""
        ended = self.take()
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


@dataclass
class Step:
    """One vector step of a :class:`Rollout`; every array has a leading axis of ``num_envs``."""

    obs: dict | np.ndarray
    """o_t, the observation acted on."""
    hidden: torch.Tensor | None
    """(n, H) the actor's state entering o_t (None without an agent)."""
    action: np.ndarray
    """a_t, in the action space's units."""
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: dict | np.ndarray
    """o_{t+1}: a final observation where ``done``, a new episode's first after an autoreset step."""
    info: dict
    live: np.ndarray
    """(n,) bool: not an autoreset step."""
    done: np.ndarray
    """(n,) bool: the step ended an episode."""


class Rollout:
    """A vector environment driven step by step, with the actor's recurrent state and episode statistics.

    ``envs``: a ``gymnasium.vector.VectorEnv`` with NEXT_STEP autoreset. ``agent``: a ``QRSACAgent`` (or
    anything with ``act(obs, hidden, eval_mode)`` and ``initial_hidden(n)``), or None when every step is
    given its actions. ``seed``: passed to ``envs.reset``.
    """

    def __init__(self, envs, agent=None, seed: int | None = None, eval_mode: bool = False):
        self.envs, self.agent, self.eval_mode = envs, agent, eval_mode
        self.num_envs = envs.num_envs
        self.reflex = RecoveryReflex.for_agent(agent, self.num_envs)
        """The agent's recovery reflex (``config.recovery``), which overrides its actions where it acts; or None."""
        self.stability = StabilityAid.for_agent(agent, self.num_envs, envs_car(envs))
        """The agent's stability aid (``config.stability``), which raises its pedal where the rear slides; or None."""
        self.reset(seed)

    def reset(self, seed: int | None = None):
        """Start new episodes in every sub-environment."""
        n = self.num_envs
        self.obs, self.info = self.envs.reset(seed=seed)
        self.hidden = self.agent.initial_hidden(n) if self.agent is not None else None
        self.autoreset = np.zeros(n, bool)
        """Sub-environments whose next step is an autoreset step (their last step ended an episode)."""
        for layer in (self.reflex, self.stability):
            if layer is not None:
                layer.reset(np.ones(n, bool))
        self.stats = EpisodeStats(n)

    def step(self, action: np.ndarray | None = None) -> Step:
        """One vector step: the agent's action for the current observation, or ``action`` when given (another
        driver's); the agent's recurrent state then rides along on the same observations (its mean action,
        unused: no random draw)."""
        obs, hidden = self.obs, self.hidden
        next_hidden = None
        if action is None:
            if self.agent is None:
                raise ValueError("a Rollout without an agent needs the actions of every step")
            action, next_hidden = self.agent.act(obs, hidden, eval_mode=self.eval_mode)
            if self.reflex is not None:
                action = self.reflex(action, obs["proprio"], obs.get("image"))
                if self.reflex.forget and next_hidden.shape[-1] > 0:   # the policy takes the wheel back afresh
                    back = self.reflex.handing_back().to(next_hidden.device)[:, None]
                    next_hidden = torch.where(back, torch.zeros_like(next_hidden), next_hidden)
            if self.stability is not None:
                action = self.stability(action, obs["proprio"])
        elif self.agent is not None and hidden.shape[-1] > 0:  # a memoryless actor has no state to carry
            _, next_hidden = self.agent.act(obs, hidden, eval_mode=True)
        next_obs, reward, terminated, truncated, info = self.envs.step(action)
        live = ~self.autoreset
        done = episode_ends(self.autoreset, terminated, truncated)
        self.stats.add(reward, info, live, done)  # an autoreset step belongs to no episode
        for layer in (self.reflex, self.stability):
            if layer is not None:
                layer.reset(done | self.autoreset)
        if next_hidden is not None:
            # After the autoreset step, next_obs is a new episode's first observation: its state starts at zero.
            self.hidden = torch.where(torch.as_tensor(self.autoreset, device=next_hidden.device)[:, None], 0.0,
                                      next_hidden)
        self.autoreset, self.obs, self.info = done, next_obs, info
        return Step(obs, hidden, action, reward, terminated, truncated, next_obs, info, live, done)

    def state_dict(self) -> dict:
        """The episodes in progress (the environments themselves are saved apart)."""
        return {"obs": self.obs, "hidden": None if self.hidden is None else self.hidden.cpu(),
                "prev_done": self.autoreset, "stats": self.stats,
                **({} if self.reflex is None else {"reflex": self.reflex.state_dict()}),
                **({} if self.stability is None else {"stability": self.stability.state_dict()})}

    def load_state_dict(self, state: dict):
        self.obs, self.autoreset, self.stats = state["obs"], state["prev_done"], state["stats"]
        if state["hidden"] is not None:
            self.hidden = state["hidden"].to(self.agent.device)
        if self.reflex is not None and "reflex" in state:
            self.reflex.load_state_dict(state["reflex"])
        if self.stability is not None and "stability" in state:
            self.stability.load_state_dict(state["stability"])


def evaluate_policy(agent, envs, episodes: int, seed: int = 0) -> np.ndarray:
    """Returns of ``episodes`` episodes of the deterministic policy (the Gaussian's mean, squashed).

    ``envs``: a VectorEnv with NEXT_STEP autoreset; each sub-environment plays episodes until
    ``episodes`` have ended in all.
    """
    rollout = Rollout(envs, agent, seed=seed, eval_mode=True)
    returns: list[float] = []
    while len(returns) < episodes:
        rollout.step()
        returns += [e["return"] for e in rollout.stats.take()]
    return np.asarray(returns[:episodes])
