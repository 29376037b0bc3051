"""The reward of paper III-C: eight atomic terms and their weights.

    r_t = lambda^p r^p + lambda^o r^o + lambda^w r^w + lambda^v r^v + lambda^c r^c
          + lambda^s r^s + lambda^t r^t + lambda^h r^h

One function per term, named after it (grep ``overtaking`` to find r^t), over batched tensors:
``(R,)`` per race (one learner car each) or ``(R, C)`` per car of a race. :func:`reward_terms`
computes all eight from the simulator states before and after a control step; :func:`combine` weighs
them (terms x weights), the one place where the reward is assembled: the environment calls it with the
weights of its :class:`RewardConfig`, and the replay calls it to relabel stored terms with the weights of
the moment (a penalty ramp, ``gtvision.agent.config.TrainConfig``). Units: metres, seconds, radians, m/s.

=================  ======  ==========================================================================
term               symbol  what it pays (before weighting)
=================  ======  ==========================================================================
progress           r^p     metres of course progress this step
off_course         r^o     minus (seconds with >= 3 tyres off the track this step) x speed (m/s)
wall               r^w     minus (seconds touching a barrier this step) x speed (m/s)
car_velocity       r^v     minus the squared speed difference at each new car contact ((m/s)^2)
car_fixed          r^c     minus 1 for a step with any car contact
overtaking         r^t     metres gained on each car within [c_r, c_f] of the learner along the course
steering_change    r^s     minus |steering angle change| (rad)
steering_history   r^h     minus a logistic of the size of a steering reversal (0 to 1)
=================  ======  ==========================================================================
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch

from .sim.core import SimState

TERM_NAMES = ("progress", "off_course", "wall", "car_velocity", "car_fixed", "overtaking",
              "steering_change", "steering_history")
"""The eight terms of paper III-C, in the paper's order of definition."""
PENALTY_TERMS = ("off_course", "wall", "car_velocity", "car_fixed", "steering_change", "steering_history")
"""The terms that only ever cost (all but progress and overtaking)."""
CONTACT_TERMS = ("car_velocity", "car_fixed")
"""The terms that cost contact with other cars (r^v, r^c)."""


@dataclass(frozen=True)
class RewardConfig:
    """Weights (lambda) and constants (c) of paper III-C, as printed there."""

    lambda_p: float = 1.0
    """Weight of r^p, course progress (paper III-C)."""
    lambda_o: float = 10.0
    """Weight of r^o, off-course penalty (paper III-C)."""
    lambda_w: float = 20.0
    """Weight of r^w, wall collision penalty (paper III-C)."""
    lambda_v: float = 0.5
    """Weight of r^v, car velocity-based collision penalty (paper III-C)."""
    lambda_c: float = 6.0
    """Weight of r^c, car collision fixed penalty (paper III-C)."""
    lambda_s: float = 0.5
    """Weight of r^s, steering change penalty (paper III-C)."""
    lambda_t: float = 3.0
    """Weight of r^t, overtaking progress (paper III-C)."""
    lambda_h: float = 5.0
    """Weight of r^h, steering history penalty (paper III-C)."""
    c_r: float = -20.0
    """r^t: a car counts when its course position minus the learner's is above c_r (m; paper III-C)."""
    c_f: float = 40.0
    """r^t: ... and below c_f (m; paper III-C)."""
    c_s: float = 182.883569
    """r^h: slope of the logistic (1/rad; paper III-C)."""
    c_o: float = 0.034
    """r^h: offset of the logistic (rad; paper III-C)."""
    c_d: float = 0.014
    """r^h: dead band, a steering change smaller than this is no reversal (rad; paper III-C)."""

    @classmethod
    def from_value(cls, value: RewardConfig | Mapping | None) -> RewardConfig:
        """The configuration a racing environment's ``reward`` keyword names: None (the paper's), a
        ``RewardConfig``, or a dict of its fields (``--env-arg 'reward={"lambda_w": 2.0}'``); anything else
        raises, naming the valid fields."""
        if value is None:
            return cls()
        if isinstance(value, Mapping):
            valid = [f.name for f in fields(cls)]
            unknown = sorted(set(value) - set(valid))
            if unknown:
                raise ValueError(f"reward: unknown weights {unknown}; valid: {', '.join(valid)}")
            bad = {k: v for k, v in value.items() if isinstance(v, bool) or not isinstance(v, (int, float))}
            if bad:
                raise ValueError(f"reward: weights and constants are numbers, got {bad}")
            return cls(**value)
        if not isinstance(value, cls):
            raise TypeError(f"reward must be a gtvision.rewards.RewardConfig or a dict of its fields, "
                            f"got {type(value).__name__}")
        return value

    def weights(self) -> dict[str, float]:
        """lambda of each term, keyed by :data:`TERM_NAMES`."""
        return {"progress": self.lambda_p, "off_course": self.lambda_o, "wall": self.lambda_w,
                "car_velocity": self.lambda_v, "car_fixed": self.lambda_c, "overtaking": self.lambda_t,
                "steering_change": self.lambda_s, "steering_history": self.lambda_h}


# ---------------------------------------------------------------------------- the eight terms


def progress(p_now_m: torch.Tensor, p_prev_m: torch.Tensor) -> torch.Tensor:
    """r^p = p_t - p_{t-1}: course progress (m), p the position projected on the centerline."""
    return p_now_m - p_prev_m


def off_course(time_now_s: torch.Tensor, time_prev_s: torch.Tensor, speed_mps: torch.Tensor) -> torch.Tensor:
    """r^o = -(s^o_t - s^o_{t-1}) |v_t|, s^o the accumulated time with >= 3 tyres off the track (s)."""
    return -(time_now_s - time_prev_s) * speed_mps.abs()


def wall(time_now_s: torch.Tensor, time_prev_s: torch.Tensor, speed_mps: torch.Tensor) -> torch.Tensor:
    """r^w = -(s^w_t - s^w_{t-1}) |v_t|, s^w the accumulated time touching a barrier (s)."""
    return -(time_now_s - time_prev_s) * speed_mps.abs()


def car_velocity(dv_sq_now: torch.Tensor, dv_sq_prev: torch.Tensor) -> torch.Tensor:
    """r^v = -|Delta v^x_t|^2: squared speed difference with the other car at a collision ((m/s)^2).

    Paper: III-C does not say how collisions within one step add up. The simulator accumulates, per
    car, |relative velocity|^2 at every contact onset (``SimState.contact_dv_sq``); r^v is minus what
    this step added, so two new contacts in one step both count.
    """
    return -(dv_sq_now - dv_sq_prev)


def car_fixed(contact_time_now_s: torch.Tensor, contact_time_prev_s: torch.Tensor) -> torch.Tensor:
    """r^c = -1 for a control step in which the car touched another car, else 0.

    Paper: III-C, "a constant penalty for any contact with opponent cars"; we read it per control step
    in contact (a long push costs more than a touch), not per contact onset.
    """
    return -((contact_time_now_s - contact_time_prev_s) > 0).to(contact_time_now_s.dtype)


def overtaking(gap_now_m: torch.Tensor, gap_prev_m: torch.Tensor, counted: torch.Tensor,
               c_r: float = RewardConfig.c_r, c_f: float = RewardConfig.c_f) -> torch.Tensor:
    """r^t = sum_i I[c_r < p^i_t - p_t < c_f] ((p_t - p^i_t) - (p_{t-1} - p^i_{t-1})).

    Args:
        gap_now_m, gap_prev_m: (R, C) p^i - p of every car i of the race, now and a step before (m,
            along the course; positive = car i ahead of the learner).
        counted: (R, C) bool, the cars i of the sum (the learner's opponents in the race).
    Returns (R,): metres gained this step on the cars inside the window; negative when losing ground.
    """
    inside = counted & (gap_now_m > c_r) & (gap_now_m < c_f)
    return torch.where(inside, gap_prev_m - gap_now_m, torch.zeros_like(gap_now_m)).sum(-1)


def steering_change(theta_now_rad: torch.Tensor, theta_prev_rad: torch.Tensor) -> torch.Tensor:
    """r^s = -|theta^s_t - theta^s_{t-1}|, theta^s the steering angle (rad).

    Paper: III-C gives no unit for theta^s; we use the road-wheel steering angle in radians, the unit
    in which c^d and c^o of r^h make sense (one control step moves it at most 3 deg = 0.052 rad).
    """
    return -(theta_now_rad - theta_prev_rad).abs()


def steering_history(delta_now_rad: torch.Tensor, delta_prev_rad: torch.Tensor,
                     c_s: float = RewardConfig.c_s, c_o: float = RewardConfig.c_o,
                     c_d: float = RewardConfig.c_d) -> torch.Tensor:
    """r^h = -m_t / (1 + exp(-c^s (Delta_t - c^o))): a penalty in [-1, 0] for a steering reversal.

    delta_t = theta_t - theta_{t-1} (rad), Delta_t = |delta_t| + |delta_{t-1}|, and m_t = 1 when the
    last two steering changes are both larger than c^d and of opposite signs (a zig-zag), else 0.

    Paper: III-C prints r^h = -m_t (1 + exp(-c^s (Delta_t - c^o))), which punishes the smallest
    reversal (Delta = 2 c^d = 0.028 rad: 4.0) four times more than the largest (Delta = 0.105 rad, two
    full 3-degree steps: 1.0). We read it as the logistic above, which grows with the size of the
    oscillation, from 0.25 at the smallest reversal to 1.0 at the largest.
    Paper: III-C also prints m_t = I[delta_t > c^d] I[delta_{t-1} > c^d] I[sgn delta_t != sgn delta_{t-1}],
    which is always 0 (two changes above c^d > 0 share a sign); we read the first two as |delta| > c^d.
    """
    big = (delta_now_rad.abs() > c_d) & (delta_prev_rad.abs() > c_d)
    reversal = torch.sign(delta_now_rad) != torch.sign(delta_prev_rad)
    m = (big & reversal).to(delta_now_rad.dtype)
    size = delta_now_rad.abs() + delta_prev_rad.abs()
    return -m * torch.sigmoid(c_s * (size - c_o))


# ---------------------------------------------------------------------------- from simulator states


def course_gap_m(s_m: torch.Tensor, s_ego_m: torch.Tensor, length_m: float) -> torch.Tensor:
    """Arc length from the learner to each car, wrapped into [-length/2, length/2) (m; + = ahead).

    ``s_m`` (R, C), ``s_ego_m`` (R, 1). Positions on a closed course: a car a lap down but just ahead
    on the track is ahead.
    """
    return torch.remainder(s_m - s_ego_m + length_m / 2, length_m) - length_m / 2


def reward_terms(prev: SimState, now: SimState, steer_rad: torch.Tensor, opponents: torch.Tensor,
                 length_m: float, cfg: RewardConfig = RewardConfig(),
                 ego: int = 0) -> dict[str, torch.Tensor]:
    """The eight unweighted terms of one control step, each (R,), for the car ``ego`` of each race.

    Args:
        prev, now: simulator states before and after the step.
        steer_rad: (R, 3) steering angles theta_t, theta_{t-1}, theta_{t-2} of the learner (rad; the
            commanded road-wheel angle at the end of each control step).
        opponents: (R, C) bool, the cars racing against the learner (not the learner, not parked cars).
        length_m: lap length (m), to wrap positions along the closed course.
    """
    speed = now.speed_mps[:, ego]
    gap_now = course_gap_m(now.s_m, now.s_m[:, ego:ego + 1], length_m)
    gap_prev = course_gap_m(prev.s_m, prev.s_m[:, ego:ego + 1], length_m)
    delta_now = steer_rad[:, 0] - steer_rad[:, 1]
    delta_prev = steer_rad[:, 1] - steer_rad[:, 2]
    return {
        "progress": progress(now.progress_m[:, ego], prev.progress_m[:, ego]),
        "off_course": off_course(now.off_course_time_s[:, ego], prev.off_course_time_s[:, ego], speed),
        "wall": wall(now.wall_time_s[:, ego], prev.wall_time_s[:, ego], speed),
        "car_velocity": car_velocity(now.contact_dv_sq[:, ego], prev.contact_dv_sq[:, ego]),
        "car_fixed": car_fixed(now.car_contact_time_s[:, ego], prev.car_contact_time_s[:, ego]),
        "overtaking": overtaking(gap_now, gap_prev, opponents, cfg.c_r, cfg.c_f),
        "steering_change": steering_change(steer_rad[:, 0], steer_rad[:, 1]),
        "steering_history": steering_history(delta_now, delta_prev, cfg.c_s, cfg.c_o, cfg.c_d),
    }


def weight_vector(cfg: RewardConfig = RewardConfig(), penalty_scale: float = 1.0,
                  contact_scale: float = 1.0) -> np.ndarray:
    """(8,) float32 lambda of each term in :data:`TERM_NAMES` order, those of :data:`PENALTY_TERMS` times
    ``penalty_scale`` and those of :data:`CONTACT_TERMS` times ``contact_scale`` as well."""
    weights = cfg.weights()
    return np.array([weights[t] * (penalty_scale if t in PENALTY_TERMS else 1.0)
                     * (contact_scale if t in CONTACT_TERMS else 1.0) for t in TERM_NAMES], np.float32)


def stack_terms(terms: Mapping[str, torch.Tensor | np.ndarray]) -> torch.Tensor | np.ndarray:
    """(..., 8) the terms of a ``{name: (...)}`` dict in :data:`TERM_NAMES` order; the keys may carry the
    ``reward_`` prefix of an environment's ``info``. Tensors stay tensors; anything else becomes float32."""
    values = [terms[name] if name in terms else terms[f"reward_{name}"] for name in TERM_NAMES]
    if isinstance(values[0], torch.Tensor):
        return torch.stack(values, dim=-1)
    return np.stack([np.asarray(v, np.float32) for v in values], axis=-1)


def combine(terms: torch.Tensor | np.ndarray, weights: np.ndarray) -> torch.Tensor | np.ndarray:
    """r = sum_k lambda_k r^k (paper III-C): ``terms`` (..., 8) stacked in :data:`TERM_NAMES` order (a torch
    tensor or a numpy array), ``weights`` (8,) (:func:`weight_vector`) -> (...)."""
    if isinstance(terms, torch.Tensor):
        return terms @ torch.as_tensor(weights, dtype=terms.dtype, device=terms.device)
    return np.asarray(terms, np.float32) @ np.asarray(weights, np.float32)


def weighted_sum(terms: Mapping[str, torch.Tensor], cfg: RewardConfig = RewardConfig()) -> torch.Tensor:
    """r_t of a ``{term: (R,)}`` dict with the weights of ``cfg`` (:func:`combine`), (R,)."""
    return combine(stack_terms(terms), weight_vector(cfg))
