"""Safety layers: a gap keeper caps the throttle when the agent closes on a car ahead in its lane; a side keeper
steers it away from a car alongside that it closes on too fast.

Paper: none; the paper's agents have no such layer, and its reward alone (r^c, r^v) keeps them from pushing. Ours
(``AgentConfig.gap_keeper``, off by default, for agents that read ``opponent_grid``): on this simulator a learner
passes by pushing the car ahead bumper to bumper (``papermill_runs/learning/diagnostics/pushpay.py``). With the
layer on in training as well as racing, a push is no longer an action the agent can take, and the progress it wants
must come from pulling out and passing (a shield in the sense of Alshiekh et al. 2018, "Safe reinforcement learning
via shielding"). The layer is the diagnostic ``gapkeep.py``'s: for every opponent ahead in the learner's lane within
``GAP_LOOK_M`` of its bumper, the closing speed may be at most ``GAP_GAIN`` per metre of gap beyond ``GAP_HOLD_M``;
the acceleration that holds it, ``a = a_ahead + GAP_ACC_GAIN (v_max - v_closing)``, sets the throttle's ceiling
(``a / GAP_FULL_ACC``, a negative one a brake). Steering is never touched. A teacher with the layer labels the
states of DAgger with its shielded policy (:func:`gtvision.agent.distill.shielded_mean`): a vision student, which
cannot read the layer's inputs, learns its lifting and braking from its own view.

The side keeper (``AgentConfig.side_keeper``, off by default) does for a car alongside what the gap keeper does for
one ahead, with the steering: when the lateral gap to a car that overlaps the learner closes faster than
``SIDE_GAIN`` per metre beyond ``SIDE_HOLD_M``, the steering delta is bounded away from it (:func:`side_keep`).
Its settings are those of ``papermill_runs/learning/diagnostics/shield_sweep.py``'s best at racing time (LOG.md,
"A side keeper").

Both layers read privileged features, which the vision actor may not. A *seen shield* (``AgentConfig.seen_shield``)
is the vision actor's own copy: a second head on its features (image and proprio through its GRU) predicts the bounds
the teacher's layers would set (:func:`layer_bounds`: the throttle ceiling, the steering delta's lower and upper
bounds), learnt in DAgger beside the teacher's policy (:mod:`gtvision.agent.distill`), and the student's action
passes through them (:func:`keep_bounds`). Its actor's mean then learns the teacher's policy without the layers,
a smooth target, where a student of the shielded labels alone must learn the layers' sudden lifts and swerves in
its mean.

Measured (LOG.md, "A gap keeper in training"): the committed GT Sophy baseline fine-tuned 40 minutes with the layer
on wins 66 of 100 held-out races from the back of the grid with 8.7 s of car contact per race (before: 96 wins,
40.8 s); the same fine-tuning without it pushes as before (36 to 103 s). The policy itself still pushes when the layer
is taken away: the layer does the lifting, the policy has learnt to pass with it. Raced with the side keeper and a
stricter gap keeper (hold 1 m, look 5 m: ``papermill_runs/agents/tokyo_gt_sophy_shielded``), the same networks win 64
of the 100 held-out races with 4.4 s of car contact (69 and 4.6 s on 100 other seeds).
"""
from __future__ import annotations

import torch

CAR_LENGTH_M = 4.18
"""Bumper to bumper at this distance between reference points (the Table I cars are 4.2 to 4.4 m long)."""
LANE_HALF_WIDTH_M = 2.25
"""A car ahead is in the learner's lane when its lateral offset in the learner's frame is within this (m)."""
GAP_LOOK_M = 3.0
"""Opponents whose gap (bumper to bumper, m) is below this are watched."""
GAP_HOLD_M = 0.4
"""The gap (m) the layer holds when it acts."""
GAP_GAIN = 1.5
"""Largest closing speed (m/s) per metre of gap beyond ``GAP_HOLD_M``."""
GAP_ACC_GAIN = 2.0
"""Acceleration (m/s^2) asked per m/s of closing speed above the largest."""
GAP_FULL_ACC = 8.0
"""Acceleration (m/s^2) of a full throttle or brake command, for the ceiling's scale."""


def gap_ceiling(opponent_grid: torch.Tensor, proprio: torch.Tensor, hold_m: float = GAP_HOLD_M,
                look_m: float = GAP_LOOK_M) -> torch.Tensor:
    """The gap keeper's throttle ceiling (N,) in [-1, 1] (1: no car close ahead in lane; negative: a brake), which
    holds a gap of ``hold_m`` to the cars in lane within ``look_m`` (m, bumper to bumper).

    ``opponent_grid`` (N, 14, 6): the environment's (rows 0-6 the cars ahead: x, y, vx, vy, ax, ay relative to the
    learner, in its frame; empty rows zero); ``proprio`` (N, 18): the learner's own (column 3 its forward
    acceleration)."""
    ahead = opponent_grid[:, :7]
    x, y, closing_vx, ax = ahead[..., 0], ahead[..., 1], -ahead[..., 2], ahead[..., 4]
    present = ahead.abs().sum(-1) > 0
    gap = x - CAR_LENGTH_M
    in_lane = present & (x > 0) & (y.abs() < LANE_HALF_WIDTH_M) & (gap < look_m)
    closing_max = GAP_GAIN * (gap - hold_m)
    wanted = ax + proprio[:, 3:4] + GAP_ACC_GAIN * (closing_max - closing_vx)   # the car ahead's own acceleration
    return torch.where(in_lane, (wanted / GAP_FULL_ACC).clamp(-1.0, 1.0), torch.ones_like(wanted)).amin(-1)


def gap_keep(action: torch.Tensor, opponent_grid: torch.Tensor, proprio: torch.Tensor, hold_m: float = GAP_HOLD_M,
             look_m: float = GAP_LOOK_M) -> torch.Tensor:
    """``action`` (N, 2) (steering delta, throttle/brake in [-1, 1]) with the throttle capped by
    :func:`gap_ceiling`. Returns a new tensor; rows with no car close ahead in lane are unchanged."""
    out = action.clone()
    out[:, 1] = torch.minimum(out[:, 1], gap_ceiling(opponent_grid, proprio, hold_m, look_m))
    return out


CAR_WIDTH_M = 1.95
"""Side to side at this lateral distance between reference points (the Table I cars are 1.87 to 2.00 m wide)."""
SIDE_LOOK_M = 1.5
"""Opponents alongside (overlapping the learner along its heading) whose lateral gap (m) is below this are watched."""
SIDE_HOLD_M = 0.5
"""The lateral gap (m) the side keeper holds when it acts."""
SIDE_GAIN = 2.0
"""Largest lateral closing speed (m/s) per metre of lateral gap beyond ``SIDE_HOLD_M``."""
SIDE_STEER_GAIN = 0.6
"""Steering delta (in units of a full step, ``STEER_DELTA_DEG``) away from the car per m/s of lateral closing
speed above the largest."""


def side_bounds(opponent_grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The side keeper's bounds (lower, upper), each (N,) in [-1, 1], on the steering delta.

    A car alongside overlaps the learner along its heading (``|x| < CAR_LENGTH_M``) with a lateral gap (side to
    side) below ``SIDE_LOOK_M``; when the lateral closing speed exceeds ``SIDE_GAIN`` per metre of gap beyond
    ``SIDE_HOLD_M``, the steering delta may not exceed ``-SIDE_STEER_GAIN`` per m/s of the excess towards that car
    (a steer away, at least no further towards it). With cars closing on both sides the two bounds may cross: then
    both are their midpoint. No car to keep from: (-1, 1). Rows of ``opponent_grid`` as in :func:`gap_ceiling`.
    """
    x, y, vy = opponent_grid[..., 0], opponent_grid[..., 1], opponent_grid[..., 3]
    present = opponent_grid.abs().sum(-1) > 0
    gap = y.abs() - CAR_WIDTH_M
    alongside = present & (x.abs() < CAR_LENGTH_M) & (gap < SIDE_LOOK_M)
    closing = -torch.sign(y) * vy                                    # > 0: the lateral gap shrinks
    excess = (closing - SIDE_GAIN * (gap - SIDE_HOLD_M)).clamp(min=0.0)
    away = (SIDE_STEER_GAIN * excess).clamp(max=2.0)                 # how far below 0 the bound lies
    acts = alongside & (excess > 0)
    one = torch.ones_like(x)
    upper = torch.where(acts & (y > 0), -away, one).amin(-1)        # a car on the left (+y): steer right
    lower = torch.where(acts & (y < 0), away, -one).amax(-1)        # a car on the right: steer left
    lower, upper = _uncross(lower, upper)
    return lower.clamp(-1.0, 1.0), upper.clamp(-1.0, 1.0)


def _uncross(lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds that cross (lower above upper) both set to their midpoint; the others as they are."""
    crossed = lower > upper
    mid = 0.5 * (lower + upper)
    return torch.where(crossed, mid, lower), torch.where(crossed, mid, upper)


def side_keep(action: torch.Tensor, opponent_grid: torch.Tensor) -> torch.Tensor:
    """``action`` (N, 2) with the steering delta within :func:`side_bounds` (a steer away from a car alongside that
    the learner closes on). The throttle is untouched."""
    lower, upper = side_bounds(opponent_grid)
    out = action.clone()
    out[:, 0] = torch.maximum(torch.minimum(action[:, 0], upper), lower)
    return out


BOUNDS = ("throttle_ceiling", "steer_lower", "steer_upper")
"""What a layer's bounds hold, in this order (:func:`layer_bounds`, :func:`keep_bounds`)."""


def layer_bounds(opponent_grid: torch.Tensor, proprio: torch.Tensor, gap_keeper: bool, side_keeper: bool,
                 hold_m: float = GAP_HOLD_M, look_m: float = GAP_LOOK_M) -> torch.Tensor:
    """The bounds (N, 3) (:data:`BOUNDS`) that the gap keeper and side keeper set on an action (each one off:
    its bounds lie at the action space's edges, 1 and (-1, 1)); :func:`keep_bounds` applies them, as
    :func:`gap_keep` and :func:`side_keep` do. A seen shield (``AgentConfig.seen_shield``) learns them."""
    n = opponent_grid.shape[0]
    ceiling = (gap_ceiling(opponent_grid, proprio, hold_m, look_m) if gap_keeper
               else torch.ones(n, device=opponent_grid.device))
    lower, upper = side_bounds(opponent_grid) if side_keeper else (-torch.ones_like(ceiling), torch.ones_like(ceiling))
    return torch.stack([ceiling, lower, upper], -1)


def keep_bounds(action: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """``action`` (N, 2) with the throttle capped at ``bounds[:, 0]`` and the steering delta held within
    ``bounds[:, 1:3]`` (crossed bounds: their midpoint)."""
    ceiling, lower, upper = bounds.unbind(-1)
    lower, upper = _uncross(lower, upper)
    out = action.clone()
    out[:, 0] = torch.maximum(torch.minimum(action[:, 0], upper), lower)
    out[:, 1] = torch.minimum(action[:, 1], ceiling)
    return out


__all__ = ["BOUNDS", "gap_ceiling", "gap_keep", "keep_bounds", "layer_bounds", "side_bounds", "side_keep"]
