"""Observations of paper III-A, built from a simulator state, batched over races.

The learner is one car per race (index ``ego``). Every function is a pure function of tensors with
a leading race axis ``R``; nothing loops over cars or races.

Ego frame: origin at the learner's reference point on the road surface, x forward along its heading
(horizontal), y to its left, z up (world vertical). "Along the course" means arc length on the
centerline in the racing direction.

=============  ====================  ==============================================================
key            shape / dtype         content
=============  ====================  ==============================================================
image          (H, W, 3) uint8       the driver's view (``gtvision.sim.render.render_ego``), 64x64
proprio        (18,) float32         see :data:`PROPRIO_LAYOUT`
course_points  (177, 3) float32      row ``3 i + k``: station i = 0..58 ahead along the course, k = 0
                                     left track limit, 1 centerline, 2 right track limit; (x, y, z)
                                     in the ego frame (m). Station i lies ``(i + 1) / 59`` of the
                                     horizon ahead, the horizon ``COURSE_HORIZON_S`` of travel at the
                                     current speed (at least ``COURSE_MIN_SPEED_MPS``).
opponent_grid  (14, 6) float32       rows 0-6: the opponents ahead (0 <= gap < 75 m along the course),
                                     nearest first; rows 7-13: those behind (-20 m <= gap < 0), nearest
                                     first; columns (x, y, vx, vy, ax, ay): position (m), velocity
                                     (m/s) and acceleration (m/s^2) relative to the learner, in the
                                     ego frame's horizontal plane. Rows without a car are zeros.
=============  ====================  ==============================================================

The actor reads only ``image`` and ``proprio`` (paper III-A); ``course_points`` and ``opponent_grid``
are the critic's global features.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..sim.core import STEER_DELTA_DEG, SimState
from ..sim.track import Track, take

PROPRIO_SIZE = 18
PROPRIO_LAYOUT = (
    ("v", 0, 3, "linear velocity (m/s): forward, left, up"),
    ("v_dot", 3, 6, "linear acceleration (m/s^2): forward, left, up"),
    ("omega", 6, 9, "rotational velocity (rad/s): roll, pitch (nose up +), yaw (left +)"),
    ("u", 9, 12, ("inputs: steering (commanded angle / full lock, [-1, 1], + left), throttle [0, 1], "
                  "brake [0, 1]")),
    ("s", 12, 15, "steering angle theta_t, theta_{t-1}, theta_{t-2} (rad, + left)"),
    ("d", 15, 18, "delta steering theta_t - theta_{t-1}, then the two steps before (rad)"),
)
"""(name, start, stop, meaning) of each block of ``proprio``, in order (paper III-A:
o^p = [v, v_dot, v^r, u, s, d])."""


def proprio_bounds(max_steer_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) (18,) float32 of ``proprio``: the inputs ``u`` in their ranges, the steering angles ``s``
    within full lock, the steering deltas ``d`` within one control step's ``STEER_DELTA_DEG``; the IMU readings
    are unbounded (infinite). A learner may scale a bounded feature by its range (``AgentConfig.vector_transform``):
    in radians the steering features are a few hundredths, invisible next to course points in metres."""
    step = math.radians(STEER_DELTA_DEG)
    low = np.full(PROPRIO_SIZE, -np.inf, np.float32)
    high = np.full(PROPRIO_SIZE, np.inf, np.float32)
    low[9:12], high[9:12] = (-1.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    low[12:15], high[12:15] = -max_steer_rad, max_steer_rad
    low[15:18], high[15:18] = -step, step
    return low, high

COURSE_STATIONS = 59
"""Stations ahead in ``course_points`` (paper III-A: 177 points = 59 x 3)."""
COURSE_HORIZON_S = 6.0
"""Paper III-A: the course points cover about six seconds of travel at the current speed."""
COURSE_MIN_SPEED_MPS = 10.0
"""Speed used for the horizon below it, so a standing car still sees the next 60 m (our choice;
the paper does not say what a stopped car sees)."""
GRID_AHEAD = 7
"""Paper III-A: the 7 closest opponents ahead ..."""
GRID_AHEAD_M = 75.0
"""... within 75 m ..."""
GRID_BEHIND = 7
"""... and the 7 closest behind ..."""
GRID_BEHIND_M = 20.0
"""... within 20 m."""
GRID_FEATURES = 6
"""(x, y, vx, vy, ax, ay) per opponent."""


def vertical_motion(state: SimState, track: Track, ego: int = 0) -> torch.Tensor:
    """(R, 2) vertical speed (m/s, up +) and pitch angle (rad, nose up +) of the learner.

    The simulator is planar with the track's elevation: the car climbs at its speed along the course
    times the gradient, and pitches with the gradient along its heading.
    """
    st = state.station[:, ego]
    psi = state.yaw[:, ego] - take(track.heading_rad, st)
    cos_p, sin_p = torch.cos(psi), torch.sin(psi)
    grade = take(track.grade, st)
    along = state.vx[:, ego] * cos_p - state.vy[:, ego] * sin_p
    return torch.stack([along * grade, torch.atan(grade * cos_p)], dim=-1)


def proprio(state: SimState, track: Track, steer_rad: torch.Tensor, vertical_rate: torch.Tensor,
            max_steer_rad: float, ego: int = 0) -> torch.Tensor:
    """(R, 18) float32 proprioceptive features (:data:`PROPRIO_LAYOUT`).

    Args:
        steer_rad: (R, 4) steering angles theta_t, theta_{t-1}, theta_{t-2}, theta_{t-3} (rad).
        vertical_rate: (R, 2) change of :func:`vertical_motion` over the last control step divided by
            its length: vertical acceleration (m/s^2) and pitch rate (rad/s).
        max_steer_rad: the car's full lock (rad), to scale the steering input.

    Paper: III-A lists IMU readings; our planar simulator has no roll, so the roll rate is 0, and the
    vertical velocity and pitch follow the track's gradient (:func:`vertical_motion`).
    """
    i = ego
    vz = vertical_motion(state, track, ego)[:, 0]
    zero = torch.zeros_like(vz)
    delta = steer_rad[:, :3] - steer_rad[:, 1:4]
    return torch.cat([
        torch.stack([state.vx[:, i], state.vy[:, i], vz,
                     state.ax[:, i], state.ay[:, i], vertical_rate[:, 0],
                     zero, vertical_rate[:, 1], state.yaw_rate[:, i],
                     state.steer_cmd_rad[:, i] / max_steer_rad, state.throttle[:, i], state.brake[:, i]],
                    dim=-1),
        steer_rad[:, :3], delta,
    ], dim=-1).float()


def course_points(state: SimState, track: Track, ego: int = 0) -> torch.Tensor:
    """(R, 177, 3) float32: the track limits and centerline ahead of the learner, in the ego frame (m).

    Row ``3 i + k`` is station i (0..58) at ``(i + 1) / 59`` of the horizon ahead along the course,
    k = 0 left limit, 1 centerline, 2 right limit. The horizon is ``COURSE_HORIZON_S`` of travel at
    the learner's speed (paper III-A), at least ``COURSE_HORIZON_S * COURSE_MIN_SPEED_MPS`` metres.
    """
    speed = state.speed_mps[:, ego].clamp(min=COURSE_MIN_SPEED_MPS)
    frac = torch.arange(1, COURSE_STATIONS + 1, device=speed.device, dtype=speed.dtype) / COURSE_STATIONS
    s = state.s_m[:, ego:ego + 1] + (COURSE_HORIZON_S * speed).unsqueeze(-1) * frac      # (R, 59)
    cx, cy, cz, nx, ny, wl, wr = track.interpolate(s, track.x, track.y, track.z, track.nx, track.ny,
                                                   track.width_left_m, track.width_right_m)
    lat = torch.stack([wl, torch.zeros_like(wl), -wr], -1)
    px = cx.unsqueeze(-1) + nx.unsqueeze(-1) * lat                                        # (R, 59, 3)
    py = cy.unsqueeze(-1) + ny.unsqueeze(-1) * lat
    (z_car,) = track.interpolate(state.s_m[:, ego], track.z)
    dx = px - state.x[:, ego, None, None]
    dy = py - state.y[:, ego, None, None]
    c = torch.cos(state.yaw[:, ego])[:, None, None]
    sn = torch.sin(state.yaw[:, ego])[:, None, None]
    fwd = dx * c + dy * sn
    left = -dx * sn + dy * c
    up = (cz - z_car.unsqueeze(-1)).unsqueeze(-1).expand_as(fwd)
    return torch.stack([fwd, left, up], dim=-1).reshape(-1, 3 * COURSE_STATIONS, 3).float()


def opponent_grid(state: SimState, opponents: torch.Tensor, length_m: float, ego: int = 0) -> torch.Tensor:
    """(R, 14, 6) float32 opponent grid of paper III-A (see the module docstring).

    Args:
        opponents: (R, C) bool, the cars racing against the learner (parked cars and the learner
            itself are False).
        length_m: lap length (m); gaps along the course are wrapped into [-length/2, length/2).

    Paper: III-A records each opponent's position, velocity and acceleration "projected onto the 2d
    plane"; we give all three relative to the learner, in its frame, so the critic reads closing
    speeds directly.
    """
    R, C = state.x.shape
    gap = torch.remainder(state.s_m - state.s_m[:, ego:ego + 1] + length_m / 2, length_m) - length_m / 2
    cos_y, sin_y = torch.cos(state.yaw), torch.sin(state.yaw)
    # world-frame velocity and acceleration of every car (body -> world), then relative to the learner
    vwx = state.vx * cos_y - state.vy * sin_y
    vwy = state.vx * sin_y + state.vy * cos_y
    awx = state.ax * cos_y - state.ay * sin_y
    awy = state.ax * sin_y + state.ay * cos_y
    rel = torch.stack([state.x, state.y, vwx, vwy, awx, awy], dim=-1)                     # (R, C, 6)
    rel = rel - rel[:, ego:ego + 1]
    c, s = cos_y[:, ego, None], sin_y[:, ego, None]
    feats = torch.stack([
        rel[..., 0] * c + rel[..., 1] * s, -rel[..., 0] * s + rel[..., 1] * c,
        rel[..., 2] * c + rel[..., 3] * s, -rel[..., 2] * s + rel[..., 3] * c,
        rel[..., 4] * c + rel[..., 5] * s, -rel[..., 4] * s + rel[..., 5] * c,
    ], dim=-1)                                                                            # (R, C, 6)
    inf = torch.full_like(gap, math.inf)
    ahead_key = torch.where(opponents & (gap >= 0) & (gap < GRID_AHEAD_M), gap, inf)
    behind_key = torch.where(opponents & (gap < 0) & (gap >= -GRID_BEHIND_M), -gap, inf)
    out = torch.zeros(R, GRID_AHEAD + GRID_BEHIND, GRID_FEATURES, device=gap.device, dtype=torch.float32)
    for key, first, slots in ((ahead_key, 0, GRID_AHEAD), (behind_key, GRID_AHEAD, GRID_BEHIND)):
        k = min(slots, C)
        dist, idx = torch.topk(key, k, dim=1, largest=False)                              # nearest first
        picked = feats.gather(1, idx.unsqueeze(-1).expand(R, k, GRID_FEATURES))
        out[:, first:first + k] = torch.where(torch.isfinite(dist).unsqueeze(-1), picked,
                                              torch.zeros_like(picked))
    return out


def ego_to_world(points: torch.Tensor, x: torch.Tensor, y: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """(..., 2) world (x, y) of ego-frame points (..., >= 2) of a car at (x, y) heading ``yaw``
    (scalars or tensors broadcasting with the points' leading axes): for drawing observations on maps."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    fwd, left = points[..., 0], points[..., 1]
    return torch.stack([x + fwd * c - left * s, y + fwd * s + left * c], dim=-1)
