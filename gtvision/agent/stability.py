"""A stability aid: no lifting while the rear axle slides, on on-board information alone.

Paper: none. The paper's agents race GT7's cars as the game sets them up; ours race a simulator whose front-driven
Tokyo car (``gtvision.sim.cars``: the Audi TT Cup, front-driven, 60% of its weight on the front axle, three quarters
of its braking on the front wheels) spins when it lifts or brakes with its rear axle already sliding: the load goes
forward, the rear tyres lose the grip they had, and the tail comes round. The two-teacher vision students spin about
once a race in the pack, in the braking zones after the straights (LOG.md, "A stability aid"), and a spin is how
most of their unfinished races begin.

The aid (``AgentConfig.stability``, off by default; a safety layer in the sense of :mod:`gtvision.agent.shield`, in
training and in racing, and ``gtvision export --set agent.stability=true`` gives it to a trained agent) reads three
``proprio`` features, the forward and lateral speed and the yaw rate (an on-board IMU), and where the car's rear axle
lies (its own geometry, :func:`rear_axle_m`). Where the rear axle's slip angle ``atan2(v_y - b r, |v_x|)`` is past
``stability_slip_deg`` at a forward speed above ``stability_min_mps``, it holds the pedal at ``stability_throttle``
or more (the brake released, some throttle on), and leaves the steering to the policy. Road cars' stability and
traction controls act on the same readings (with the brakes of single wheels, which our simulator does not have).

Measured (LOG.md, "A stability aid"): E3, the two-teacher students' ensemble, spins 81 times in 100 races of the
selection seed without the aid and 9 times with it (3 degrees, 0.5: the defaults, chosen there among six settings),
and finishes 100 of them instead of 88; on six held-out seeds it wins 96 to 100 of 100, every race it finishes, with
3.8 to 4.0 s of car contact a race. Steering towards the front axle's direction of travel as well (counter-steer)
made the same student spin more than twice as often, and is not here.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..env.observations import PROPRIO_LAYOUT

_BLOCKS = {name: start for name, start, _, _ in PROPRIO_LAYOUT}
FORWARD_SPEED = _BLOCKS["v"]
"""Index in ``proprio`` of the forward speed (m/s); the lateral speed (m/s, left +) follows it."""
LATERAL_SPEED = _BLOCKS["v"] + 1
YAW_RATE = _BLOCKS["omega"] + 2
"""Index in ``proprio`` of the yaw rate (rad/s, left +)."""


def rear_axle_m(car) -> float:
    """Distance (m) from the centre of mass to the rear axle of ``car`` (a ``gtvision.sim.cars.CarSpec``), as the
    simulator's tyre model places it."""
    return car.wheelbase_m * car.front_weight_frac


def envs_car(envs):
    """The ``CarSpec`` of a gtvision racing environment (vector or single), or None for another environment."""
    batch = getattr(getattr(envs, "unwrapped", envs), "batch", None)
    params = getattr(batch, "params", None)
    return getattr(params, "car", None)


class StabilityAid:
    """The aid's override of the pedal for a batch of cars (see the module). Call it with each step's actions (N, 2)
    in the action space's units (steering rate, throttle/brake) and the observations' ``proprio`` (N, 18); it keeps
    no state but a count of the steps it acted on per car (``acted``), which :meth:`reset` clears."""

    def __init__(self, num_envs: int, rear_axle_m: float, slip_deg: float, throttle: float, min_mps: float):
        for name, value in (("rear_axle_m", rear_axle_m), ("slip_deg", slip_deg), ("min_mps", min_mps)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"stability {name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= throttle <= 1.0:
            raise ValueError(f"stability throttle must be in [0, 1], got {throttle!r}")
        self.rear_axle_m, self.slip_rad = rear_axle_m, math.radians(slip_deg)
        self.throttle, self.min_mps = throttle, min_mps
        self.acted = torch.zeros(num_envs, dtype=torch.long)
        """How many steps the aid has acted on each car since its last :meth:`reset`."""

    @classmethod
    def for_agent(cls, agent, num_envs: int, car) -> "StabilityAid | None":
        """The aid of ``agent``'s configuration (``config.stability``) for ``car``, or None (off, or no configuration).
        ``car`` None with the aid on: ``ValueError`` (the aid needs the car's geometry)."""
        config = getattr(agent, "config", None)
        if config is None or not getattr(config, "stability", False):
            return None
        if car is None:
            raise ValueError("agent.stability=True needs a gtvision racing environment (the car's geometry: where "
                             "its rear axle is)")
        return cls(num_envs, rear_axle_m(car), config.stability_slip_deg, config.stability_throttle,
                   config.stability_min_mps)

    def sliding(self, proprio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N,) bool: the cars whose rear axle slides past the aid's angle above its speed."""
        p = torch.as_tensor(proprio).float().cpu()
        vx, vy, r = p[:, FORWARD_SPEED], p[:, LATERAL_SPEED], p[:, YAW_RATE]
        rear_slip = torch.atan2(vy - self.rear_axle_m * r, vx.abs().clamp(min=1.0))
        return (rear_slip.abs() > self.slip_rad) & (vx > self.min_mps)

    def __call__(self, action: np.ndarray | torch.Tensor, proprio: np.ndarray | torch.Tensor):
        """The actions (same type and shape as ``action``) with the pedal raised to the aid's throttle where the
        rear axle slides."""
        on = self.sliding(proprio)
        self.acted += on.long()
        if not bool(on.any()):
            return action
        out = torch.as_tensor(action).clone()
        out[:, 1] = torch.where(on.to(out.device), out[:, 1].clamp(min=self.throttle), out[:, 1])
        return out if torch.is_tensor(action) else out.numpy().astype(np.asarray(action).dtype)

    def reset(self, mask: np.ndarray | torch.Tensor) -> None:
        """Clear the counts of the cars in ``mask`` (N,) bool (their episode ended)."""
        self.acted[torch.as_tensor(np.asarray(mask), dtype=torch.bool)] = 0

    def state_dict(self) -> dict:
        return {"acted": self.acted.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.acted = state["acted"].clone()
