"""A gap keeper: the agent's throttle capped when it closes on a car ahead in its lane (a safety layer).

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

Measured (README, "A gap keeper in training"): the committed GT Sophy baseline fine-tuned 40 minutes with the layer
on wins 66 of 100 held-out races from the back of the grid with 8.7 s of car contact per race (before: 96 wins,
40.8 s); the same fine-tuning without it pushes as before (36 to 103 s). The policy itself still pushes when the layer
is taken away: the layer does the lifting, the policy has learnt to pass with it.
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


def gap_keep(action: torch.Tensor, opponent_grid: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
    """``action`` (N, 2) (steering delta, throttle/brake in [-1, 1]) with the throttle capped by the gap keeper.

    ``opponent_grid`` (N, 14, 6): the environment's (rows 0-6 the cars ahead: x, y, vx, vy, ax, ay relative to the
    learner, in its frame; empty rows zero); ``proprio`` (N, 18): the learner's own (column 3 its forward
    acceleration). Returns a new tensor; rows with no car close ahead in lane are unchanged.
    """
    ahead = opponent_grid[:, :7]
    x, y, closing_vx, ax = ahead[..., 0], ahead[..., 1], -ahead[..., 2], ahead[..., 4]
    present = ahead.abs().sum(-1) > 0
    gap = x - CAR_LENGTH_M
    in_lane = present & (x > 0) & (y.abs() < LANE_HALF_WIDTH_M) & (gap < GAP_LOOK_M)
    closing_max = GAP_GAIN * (gap - GAP_HOLD_M)
    wanted = ax + proprio[:, 3:4] + GAP_ACC_GAIN * (closing_max - closing_vx)   # the car ahead's own acceleration
    ceiling = torch.where(in_lane, (wanted / GAP_FULL_ACC).clamp(-1.0, 1.0), torch.ones_like(wanted)).amin(-1)
    out = action.clone()
    out[:, 1] = torch.minimum(out[:, 1], ceiling)
    return out


__all__ = ["gap_keep"]
