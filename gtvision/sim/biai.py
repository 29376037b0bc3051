"""The built-in AI (BIAI): the opponents, and the bar the agent must beat.

GT7's BIAI is an in-game model-predictive driver (paper IV-C). Ours is the classic structure:

1. a racing line per track: the minimum-curvature path between the track limits;
2. a quasi-steady-state (QSS) speed profile per track and car along it: the fastest speed a point
   mass with the car's grip, downforce, power and brakes can hold, by a forward (traction, power)
   and a backward (braking) pass; its lap time is the QSS minimum lap time;
3. a lookahead controller at the 10 Hz control rate, in the agent's own action space: pure pursuit
   of a point on the line ahead for steering, a speed tracker on ``pace`` x the profile;
4. traffic behaviour: follow a slower car in its lane, pick the free side to pass when closing,
   leave room to a car alongside; lane changes within a lateral-acceleration budget, a grip margin
   in a pack, and a lower speed off the racing line where the corner is tighter.

Alone on track it laps clean 3-8% slower than the QSS minimum (``pace``), like GT7's AI against
top humans.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .cars import CarSpec
from .core import (AIR_DENSITY, FRONT_ROLL_SHARE, GRAVITY, LOAD_SENSITIVITY, LONGITUDINAL_GRIP_USE,
                   REAR_BRAKE_GRIP_USE, REVERSE_ENGAGE_S, ROLLING_RESISTANCE, STEER_DELTA_DEG,
                   TRACK_WIDTH_FRAC, SimParams, SimState, _engine_force)
from .track import Track, take

LINE_MARGIN_M = 0.35
"""Racing-line clearance from the track limit beyond the car's half width (m)."""
WALL_NEAR_M = 1.0
"""Run-off narrower than this counts as a barrier at the track limit."""
WALL_EXTRA_MARGIN_M = 0.8
"""Extra racing-line clearance from a barrier at the track limit (m)."""
BRAKE_CIRCLE_USE = 0.97
"""The QSS backward pass brakes within this fraction of the friction circle (a corner's margin)."""
TRAFFIC_MARGIN_M = 0.3
"""In traffic the BIAI may use the track up to this far (m) from the limit, beyond its half width."""
DEFAULT_PACE = 0.965
"""BIAI target speed as a fraction of the QSS profile (sets it 3-8% slower than the QSS lap)."""


@dataclass(frozen=True)
class DrivingPlan:
    """Racing line and speed profile of one car on one track, per centerline station (N,)."""

    line_lat_m: torch.Tensor
    """Lateral offset of the racing line from the centerline (m, left positive)."""
    speed_mps: torch.Tensor
    """QSS speed profile along the line (m/s)."""
    line_curvature: torch.Tensor
    """Curvature of the racing line (1/m)."""
    line_heading_rad: torch.Tensor
    """Heading of the racing line (rad, same branch as the centerline's)."""
    lat_max_m: torch.Tensor
    """Leftmost lateral offset the BIAI aims for (m): the track limit less the car's half width and
    a margin, more where a barrier stands at the limit."""
    lat_min_m: torch.Tensor
    """Rightmost lateral offset the BIAI aims for (m)."""
    qss_lap_time_s: float
    """Lap time of the QSS profile: the model's minimum lap time (s)."""

    def to(self, device) -> "DrivingPlan":
        return DrivingPlan(self.line_lat_m.to(device), self.speed_mps.to(device),
                           self.line_curvature.to(device), self.line_heading_rad.to(device),
                           self.lat_max_m.to(device), self.lat_min_m.to(device), self.qss_lap_time_s)


def racing_line(track: Track, car: CarSpec, iterations: int = 3000) -> np.ndarray:
    """Minimum-curvature line: Laplacian smoothing of the path, clamped inside the track limits.

    Solved on a 5 m subsampling (fast to converge), then interpolated to every station.
    """
    n = track.num_stations
    step = max(1, int(round(5.0 / track.ds_m)))
    idx = np.arange(0, n, step)
    cx, cy = track.x.numpy()[idx].astype(np.float64), track.y.numpy()[idx].astype(np.float64)
    nx, ny = track.nx.numpy()[idx].astype(np.float64), track.ny.numpy()[idx].astype(np.float64)
    margin = car.width_m / 2 + LINE_MARGIN_M
    # where a barrier stands at the track limit (Tokyo), keep more room to it
    wall_l = track.runoff_left_m.numpy()[idx] < WALL_NEAR_M
    wall_r = track.runoff_right_m.numpy()[idx] < WALL_NEAR_M
    hi = track.width_left_m.numpy()[idx] - margin - np.where(wall_l, WALL_EXTRA_MARGIN_M, 0.0)
    lo = -(track.width_right_m.numpy()[idx] - margin - np.where(wall_r, WALL_EXTRA_MARGIN_M, 0.0))
    o = np.zeros(idx.shape[0])
    for _ in range(iterations):
        px, py = cx + o * nx, cy + o * ny
        tx = 0.5 * (np.roll(px, 1) + np.roll(px, -1)) - px
        ty = 0.5 * (np.roll(py, 1) + np.roll(py, -1)) - py
        o = np.clip(o + 0.9 * (tx * nx + ty * ny), lo, hi)
    # interpolate back to every station (periodic)
    xp = np.concatenate([idx, [n]])
    fp = np.concatenate([o, [o[0]]])
    return np.interp(np.arange(n), xp, fp)


def _line_geometry(track: Track, lat: np.ndarray):
    x = track.x.numpy().astype(np.float64) + lat * track.nx.numpy()
    y = track.y.numpy().astype(np.float64) + lat * track.ny.numpy()
    seg = np.hypot(np.roll(x, -1) - x, np.roll(y, -1) - y)
    hx, hy = np.roll(x, -1) - np.roll(x, 1), np.roll(y, -1) - np.roll(y, 1)
    head = np.unwrap(np.arctan2(hy, hx))
    dh = np.angle(np.exp(1j * (np.roll(head, -1) - np.roll(head, 1))))
    ds2 = np.roll(seg, 1) + seg
    curv = dh / np.maximum(ds2, 1e-6)
    # smooth over ~10 m: the racing line's curvature is noisy at 1 m
    k = max(1, int(round(5.0 / track.ds_m)))
    kernel = np.ones(2 * k + 1) / (2 * k + 1)
    curv = np.convolve(np.concatenate([curv[-k:], curv, curv[:k]]), kernel, mode="valid")
    return seg, curv


def speed_profile(track: Track, car: CarSpec, lat: np.ndarray):
    """QSS speed along a line (m/s per station) and its lap time (s).

    A point mass with the car's grip circle (grip grows with downforce), best-gear engine force,
    aero drag, rolling resistance, gravity along the slope, and the driven axle's traction limit.
    """
    seg, curv = _line_geometry(track, lat)
    grade = track.grade.numpy().astype(np.float64)
    # the point mass gets the grip the single-track model really has at the limit: lateral load
    # transfer costs the axle carrying most of it some grip (core.LOAD_SENSITIVITY)
    transfer = car.tire_grip * car.cg_height_m / (TRACK_WIDTH_FRAC * car.width_m)  # of the weight
    loss_f = LOAD_SENSITIVITY * min(2 * FRONT_ROLL_SHARE * transfer / car.front_weight_frac, 1.0) ** 2
    loss_r = LOAD_SENSITIVITY * min(2 * (1 - FRONT_ROLL_SHARE) * transfer / (1 - car.front_weight_frac), 1.0) ** 2
    mu = car.tire_grip * (1.0 - max(loss_f, loss_r))
    m = car.mass_kg
    k_df = 0.5 * AIR_DENSITY * car.cla_m2 / m
    k_drag = 0.5 * AIR_DENSITY * car.cda_m2 / m
    v_grid = np.linspace(0.0, 130.0, 1301)
    vg = torch.tensor(v_grid, dtype=torch.float32)
    forces = [
        _engine_force(car, vg, torch.full_like(vg, g, dtype=torch.long)).numpy()
        for g in range(len(car.gear_ratios))
    ]
    f_engine = np.max(np.stack(forces), axis=0) / m
    # longitudinal capacity of the single-track model's axles, with load transfer (h/L) and the
    # drive and brake limits of core (traction control, ABS, rear brake-force distribution)
    h_l = car.cg_height_m / car.wheelbase_m
    wf = car.front_weight_frac
    k_df_f = k_df * car.aero_front_frac
    k_df_r = k_df * (1.0 - car.aero_front_frac)
    use, rear_brake = LONGITUDINAL_GRIP_USE, REAR_BRAKE_GRIP_USE

    def traction_acc(v2):
        if car.drivetrain == "FWD":
            return use * mu * (GRAVITY * wf + k_df_f * v2) / (1.0 + use * mu * h_l)
        if car.drivetrain == "RWD":
            return use * mu * (GRAVITY * (1 - wf) + k_df_r * v2) / (1.0 - use * mu * h_l)
        return use * mu * (GRAVITY + k_df * v2)

    def brake_acc(v2):
        num = mu * (use * (GRAVITY * wf + k_df_f * v2) + rear_brake * (GRAVITY * (1 - wf) + k_df_r * v2))
        a = num / (1.0 - mu * h_l * (use - rear_brake))
        return min(a, car.brake_max_g * GRAVITY)

    n = seg.shape[0]
    ac = np.abs(curv)
    denom = ac - mu * k_df
    v_corner = np.where(denom > 1e-9, np.sqrt(mu * GRAVITY / np.maximum(denom, 1e-9)), 130.0)
    v_corner = np.minimum(v_corner, 130.0)

    def lat_capacity(v, i, use=1.0):
        g_eff = GRAVITY + k_df * v * v
        a_lat = v * v * ac[i]
        a_max = mu * g_eff
        return a_max, math.sqrt(max((use * a_max) ** 2 - a_lat * a_lat, 0.0))

    v = v_corner.copy()
    start = int(np.argmin(v_corner))
    for _ in range(2):  # forward pass: power and traction
        for kk in range(n):
            i = (start + kk) % n
            j = (i + 1) % n
            vi = v[i]
            a_max, a_long = lat_capacity(vi, i)
            a_trac = traction_acc(vi * vi) * a_long / a_max
            a_eng = float(np.interp(vi, v_grid, f_engine))
            a = min(a_eng, a_trac) - k_drag * vi * vi - ROLLING_RESISTANCE * GRAVITY - GRAVITY * grade[i]
            v[j] = min(v[j], math.sqrt(max(vi * vi + 2 * a * seg[i], 0.0)))
    for _ in range(2):  # backward pass: braking
        for kk in range(n):
            i = (start - kk) % n
            p = (i - 1) % n
            vi = v[i]
            # braking in a corner keeps a margin of the friction circle (BIAIConfig.grip_use)
            a_max, a_long = lat_capacity(vi, i, use=BRAKE_CIRCLE_USE)
            a = brake_acc(vi * vi) * a_long / a_max + k_drag * vi * vi + ROLLING_RESISTANCE * GRAVITY \
                - GRAVITY * grade[p]
            v[p] = min(v[p], math.sqrt(max(vi * vi + 2 * a * seg[p], 0.0)))
    v = np.maximum(v, 5.0)
    lap = float(np.sum(2 * seg / (v + np.roll(v, -1))))
    return v, curv, lap


_PLANS: dict = {}


def driving_plan(track: Track, car: CarSpec) -> DrivingPlan:
    """The racing line and QSS profile of ``car`` on ``track`` (computed once, then cached)."""
    key = (track.spec, track.num_stations, car)
    if key not in _PLANS:
        cpu = track.to("cpu")
        lat = racing_line(cpu, car)
        v, curv, lap = speed_profile(cpu, car, lat)
        f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        dlat = (np.roll(lat, -1) - np.roll(lat, 1)) / (2 * cpu.ds_m)
        heading = cpu.heading_rad.numpy() + np.arctan(dlat)
        margin = car.width_m / 2 + TRAFFIC_MARGIN_M
        wall_l = cpu.runoff_left_m.numpy() < WALL_NEAR_M
        wall_r = cpu.runoff_right_m.numpy() < WALL_NEAR_M
        lat_max = cpu.width_left_m.numpy() - margin - np.where(wall_l, WALL_EXTRA_MARGIN_M, 0.0)
        lat_min = -(cpu.width_right_m.numpy() - margin - np.where(wall_r, WALL_EXTRA_MARGIN_M, 0.0))
        _PLANS[key] = DrivingPlan(f32(lat), f32(v), f32(curv), f32(heading), f32(lat_max), f32(lat_min), lap)
    return _PLANS[key].to(track.device)


# ---------------------------------------------------------------------------- controller


@dataclass(frozen=True)
class BIAIConfig:
    """Gains and traffic distances of the BIAI controller."""

    pace: float = DEFAULT_PACE
    """Fraction of the QSS speed profile it aims for."""
    lookahead_s: float = 0.65
    """Pure-pursuit lookahead time (s)."""
    lookahead_min_m: float = 12.0
    """Shortest pure-pursuit lookahead (m)."""
    speed_gain: float = 0.45
    """Throttle/brake per m/s of speed error."""
    brake_preview_s: float = 0.35
    """How far ahead (s) the speed target is read, so braking starts in time."""
    understeer_rad_per_mps2: float = 0.0012
    """Understeer gradient of the feed-forward (rad of steering per m/s^2 of lateral acceleration)."""
    slip_gain: float = 0.6
    """Fraction of the body slip angle added to the steering (counter-steer in a slide)."""
    yaw_gain_s: float = 0.08
    """Steering (rad) per rad/s of yaw-rate error: damps the yaw oscillation."""
    maneuver_accel_mps2: float = 4.0
    """Lateral acceleration (m/s^2) it may add to the racing line's to change lanes or correct."""
    overlap_frac: float = 0.5
    """It leaves room to a car behind only once that car overlaps this fraction of its length."""
    lane_factor_min: float = 0.85
    """Lowest factor on the profile speed for driving off the racing line."""
    off_line_m: float = 1.0
    """Farther than this (m) from the racing line, its speed follows the curve of its own lane."""
    lane_grip_use: float = 0.85
    """Fraction of the tyres' peak lateral grip it counts on in a lane other than the racing line."""
    pack_pace: float = 0.93
    """Fraction of the QSS profile it aims for in a pack (see ``pack_distance_m``)."""
    pack_distance_m: float = 25.0
    """A car alongside or up to this far ahead (m, within two lanes) makes a pack."""
    yield_distance_m: float = 20.0
    """Cars up to this far ahead in the next lane keep it: it does not steer into their lane."""
    stuck_s: float = 2.0
    """Stopped this long (s), it backs out (reverse engages after core.REVERSE_ENGAGE_S more)."""
    reverse_s: float = 2.0
    """How long it reverses (s) before driving on."""
    wrong_way_deg: float = 75.0
    """Heading off the course direction (deg) beyond which a slow car turns around on full lock."""
    turnaround_mps: float = 5.0
    """Below this speed (m/s) a car facing the wrong way turns around, at about this speed."""
    grip_use: float = 0.9
    """Largest fraction of the friction circle it uses when braking in a corner."""
    oversteer_rad_s: float = 0.08
    """Yaw-rate excess (rad/s) at which its stability control releases the pedals."""
    closing_mps: float = 1.0
    """It considers passing only when faster than the car ahead by this much (m/s)."""
    follow_gain: float = 0.5
    """Speed allowance per metre of gap beyond ``follow_gap_m`` when following (1/s)."""
    follow_gap_m: float = 2.0
    """Standstill gap (m, between bumpers) kept to the car ahead it cannot pass."""
    headway_s: float = 0.4
    """Time gap kept to the car ahead, on top of ``follow_gap_m``."""
    pass_distance_m: float = 35.0
    """It moves out to pass a slower car closer than this (m)."""
    side_margin_m: float = 0.9
    """Lateral clearance it keeps to another car when passing or alongside (m)."""


def _recovery_state(state: SimState, track: Track, cfg: BIAIConfig) -> tuple[torch.Tensor, ...]:
    """(psi, stuck, backing, wrong_way), each (R, C): the heading off the course direction (rad, in (-pi, pi]),
    and the BIAI's three ways out of trouble. Stuck (stopped against a barrier or another car): it alternates
    backing out (holding the brake: reverse engages after core.REVERSE_ENGAGE_S), steering the nose towards the
    course, and driving on, so a car blocked behind as well as ahead still gets out; cars tangled together start
    their cycles at different times, by their index. Backing: still reversing out of the last stop. Facing the
    wrong way at low speed (after a spin): pursuit of a point behind it is meaningless; it turns around the
    short way on full lock at a crawl."""
    psi = state.yaw - track.heading_rad[state.station]
    psi = torch.atan2(torch.sin(psi), torch.cos(psi))
    C = state.num_cars
    car_phase = torch.arange(C, device=psi.device, dtype=psi.dtype) * 0.37
    since = state.stopped_time_s - cfg.stuck_s + car_phase * (state.stopped_time_s > cfg.stuck_s)
    stuck = (since > 0) & (torch.remainder(since, 2 * cfg.reverse_s + REVERSE_ENGAGE_S)
                           < cfg.reverse_s + REVERSE_ENGAGE_S)
    backing = (state.reverse_time_s > 0) & (state.reverse_time_s < REVERSE_ENGAGE_S + cfg.reverse_s) \
        & (state.stopped_time_s < cfg.stuck_s)
    wrong_way = (psi.abs() > math.radians(cfg.wrong_way_deg)) & (state.speed_mps < cfg.turnaround_mps)
    return psi, stuck, backing, wrong_way


def biai_rescuing(state: SimState, params: SimParams, cfg: BIAIConfig = BIAIConfig()) -> torch.Tensor:
    """(R, C) bool: the cars in trouble, where the BIAI drives its way out instead of its line: stopped long
    enough for it to back out, still backing out, or facing the wrong way at a crawl (:func:`_recovery_state`).
    DAgger's rescue labels (``TrainConfig.distill_rescue``) take the BIAI's action there."""
    _, stuck, backing, wrong_way = _recovery_state(state, params.track, cfg)
    return stuck | backing | wrong_way


def biai_controls(state: SimState, params: SimParams, plan: DrivingPlan,
                  cfg: BIAIConfig = BIAIConfig()) -> torch.Tensor:
    """Controls (R, C, 2) of the BIAI for every car of every race, in the agent's action space."""
    track, car = params.track, params.car
    L = track.length_m
    speed = state.speed_mps
    s, lat = state.s_m, state.lat_m
    C = state.num_cars

    # ---- traffic: who is ahead of whom along the course
    line_here = plan.line_lat_m[state.station]
    target_lat = line_here
    v_cap = torch.full_like(speed, math.inf)
    pace = torch.full_like(speed, cfg.pace)
    if C > 1:
        ds = s.unsqueeze(1) - s.unsqueeze(2)  # [r, i, j] = s_j - s_i
        ds = ds - L * torch.round(ds / L)
        dlat = lat.unsqueeze(1) - lat.unsqueeze(2)  # [r, i, j] = lat_j - lat_i
        others = ~torch.eye(C, dtype=torch.bool, device=s.device)
        lane = car.width_m + cfg.side_margin_m
        gap = ds - car.length_m
        # j is in i's path if it is ahead, near, and in i's lane
        in_path = (ds > 0) & (gap < cfg.pass_distance_m) & (dlat.abs() < 0.9 * lane) & others
        gap_m = torch.where(in_path, gap, torch.full_like(gap, math.inf))
        lead_gap, lead = gap_m.min(-1)
        blocked = torch.isfinite(lead_gap)
        lead_lat = lat.gather(1, lead)
        lead_speed = speed.gather(1, lead)
        closing = blocked & (speed > lead_speed + cfg.closing_mps)
        # room beside the car ahead, on each side, within the track limits
        st_lead = state.station.gather(1, lead)
        room_l = take(plan.lat_max_m, st_lead) - (lead_lat + lane)
        room_r = (lead_lat - lane) - take(plan.lat_min_m, st_lead)
        go_left = room_l >= room_r
        pass_lat = torch.where(go_left, lead_lat + lane, lead_lat - lane)
        # the passing lane must be free of other cars from here to just past the car ahead
        lead_ds = lead_gap + car.length_m
        near_long = (ds > -car.length_m) & (ds < lead_ds.unsqueeze(-1) + car.length_m) & others
        side_busy = (near_long & ((lat.unsqueeze(1) - pass_lat.unsqueeze(-1)).abs() < 0.8 * lane)).any(-1)
        can_pass = closing & (torch.maximum(room_l, room_r) > 0) & ~side_busy
        target_lat = torch.where(can_pass, pass_lat, target_lat)
        # follow the car ahead at a time headway: v = v_lead + k (gap - (d0 + h v))
        desired_gap = cfg.follow_gap_m + cfg.headway_s * speed
        v_follow = lead_speed + cfg.follow_gain * (lead_gap - desired_gap)
        v_cap = torch.where(blocked & ~can_pass, v_follow.clamp(min=0.0), v_cap)
        # leave room to a car alongside or just ahead in the next lane: the target never comes
        # closer than a lane to it (cars converging on the racing line into a corner yield)
        same_lane_ahead = (ds > 0) & (dlat.abs() < 0.5 * lane)
        alongside = (ds > -cfg.overlap_frac * car.length_m) & (ds < cfg.yield_distance_m) \
            & (dlat.abs() < 1.5 * lane) \
            & others & ~same_lane_ahead
        left_of_me = alongside & (dlat > 0)
        right_of_me = alongside & (dlat <= 0)
        inf = torch.full_like(dlat, math.inf)
        ceiling = torch.where(left_of_me, lat.unsqueeze(1) - lane, inf).amin(-1)
        floor = torch.where(right_of_me, lat.unsqueeze(1) + lane, -inf).amax(-1)
        target_lat = torch.minimum(torch.maximum(target_lat, floor), ceiling)
        # squeezed between two cars: stay where it is
        target_lat = torch.where(floor > ceiling, lat, target_lat)
        # in a pack (a car alongside or close ahead in any lane) it keeps a grip margin: off the
        # racing line the QSS speeds are not safe
        pack = ((ds > -car.length_m) & (ds < cfg.pack_distance_m) & (dlat.abs() < 2.0 * lane) & others).any(-1)
        pace = torch.where(pack, torch.full_like(pace, cfg.pack_pace), pace)
    wl = plan.lat_max_m[state.station]
    wr = -plan.lat_min_m[state.station]
    target_lat = torch.maximum(torch.minimum(target_lat, wl), -wr)

    # ---- steering: pure pursuit of a point on the (offset) line ahead, plus yaw-rate damping
    look = (cfg.lookahead_s * speed).clamp(min=cfg.lookahead_min_m)
    s_look = s + look
    st_look = track.station_of_s(s_look)
    # lane changes (traffic, back to the line) within a lateral-acceleration budget: pure pursuit of a
    # point shifted by d over the lookahead D asks about 2 d v^2 / D^2, so the pursued offset from
    # the line moves at most that far from the car's own offset; at speed a swerve cannot spin the
    # car. Outside its lane limits (near a barrier) it may shift back by the excess as well.
    v2 = (speed * speed).clamp(min=1.0)
    excess = torch.maximum(lat - wl, -wr - lat).clamp(min=0.0)
    shift = cfg.maneuver_accel_mps2 * look * look / (2.0 * v2) + excess
    offset_now = lat - line_here
    # (towards the line it may always go: that is how it recovers from a slide or a wide exit)
    lo = torch.minimum(offset_now - shift, torch.zeros_like(shift))
    hi = torch.maximum(offset_now + shift, torch.zeros_like(shift))
    offset = torch.minimum(torch.maximum(target_lat - line_here, lo), hi)
    lat_look = take(plan.line_lat_m, st_look) + offset
    lat_look = torch.maximum(torch.minimum(lat_look, take(plan.lat_max_m, st_look)),
                             take(plan.lat_min_m, st_look))
    px, py, _ = track.point_at(s_look, lat_look)
    dx, dy = px - state.x, py - state.y
    # pursue along the course over ground (not the body axis): a sliding car aims where it goes,
    # and its wheels are steered relative to the body, so the body slip angle is added (counter-steer)
    body_slip = torch.atan2(state.vy, state.vx.abs().clamp(min=2.0))
    course = state.yaw + body_slip
    cy, sy = torch.cos(course), torch.sin(course)
    fwd = dx * cy + dy * sy
    left = -dx * sy + dy * cy
    kappa = 2.0 * left / (fwd * fwd + left * left).clamp(min=1.0)
    yaw_error = kappa * speed - state.yaw_rate
    # understeer feed-forward on the line's own curvature (not on the error feedback, whose gain
    # would then grow with speed squared): the front needs more slip as lateral acceleration grows
    st_ff = track.station_of_s(s + speed * 0.2)
    steer_target = (cfg.slip_gain * body_slip + torch.atan(kappa * car.wheelbase_m)
                    + cfg.understeer_rad_per_mps2 * speed * speed * take(plan.line_curvature, st_ff)
                    + cfg.yaw_gain_s * yaw_error)
    max_steer = math.radians(car.max_steer_deg)
    steer_target = steer_target.clamp(-max_steer, max_steer)
    a_steer = ((steer_target - state.steer_cmd_rad) / math.radians(STEER_DELTA_DEG)).clamp(-1.0, 1.0)

    # ---- speed: track pace x profile, read ahead so braking starts in time
    st_near = track.station_of_s(s + speed * 0.1)
    st_far = track.station_of_s(s + speed * cfg.brake_preview_s)
    v_target = pace * torch.minimum(take(plan.speed_mps, st_near), take(plan.speed_mps, st_far))
    # the profile holds on the racing line; a car in another lane of a corner at the grip limit
    # needs the curvature of its own lane there, so it slows by the square root of the ratio
    # (a parallel of the line at offset d has curvature k / (1 - k d))
    mu_g = car.tire_grip * (GRAVITY + 0.5 * AIR_DENSITY * car.cla_m2 / car.mass_kg * speed * speed)
    st_pv = torch.stack([st_near, st_far], dim=-1)
    k_pv = take(plan.line_curvature, st_pv)
    lane_factor = torch.sqrt((1.0 - k_pv * (lat.unsqueeze(-1) - take(plan.line_lat_m, st_pv))).clamp(min=0.2))
    v_target = v_target * lane_factor.amin(-1).clamp(cfg.lane_factor_min, 1.0)
    # well off the line (kept there by a car alongside) it follows the track's own curve at its offset
    # (k / (1 - k lat) for a centerline of curvature k), within the grip it can count on
    k_c = take(track.curvature, st_pv)
    k_lane = (k_c / (1.0 - k_c * lat.unsqueeze(-1)).clamp(min=0.2)).abs().amax(-1)
    v_lane = torch.sqrt(cfg.lane_grip_use * mu_g / k_lane.clamp(min=1e-5))
    off_line = (lat - line_here).abs() > cfg.off_line_m
    v_target = torch.where(off_line, torch.minimum(v_target, v_lane), v_target)
    v_target = torch.minimum(v_target, v_cap)
    a_pedal = (cfg.speed_gain * (v_target - speed)).clamp(-1.0, 1.0)
    # trail-braking limit: brake only with the grip the corner leaves (combined slip)
    lat_use = (speed * speed * plan.line_curvature[state.station].abs() / mu_g).clamp(max=1.0)
    brake_room = torch.sqrt((cfg.grip_use ** 2 - lat_use * lat_use).clamp(min=0.0)).clamp(min=0.15)
    a_pedal = torch.maximum(a_pedal, -(brake_room * mu_g / (car.brake_max_g * GRAVITY)).clamp(max=1.0))
    # stability control: a car rotating much faster than its path asks (oversteer) gets off the brakes;
    # a little throttle is allowed (it pulls a front-driven car straight)
    oversteer = (state.yaw_rate - kappa * speed) * torch.sign(kappa) > cfg.oversteer_rad_s
    a_pedal = torch.where(oversteer, a_pedal.clamp(0.0, 0.3), a_pedal)
    # ---- out of trouble (:func:`_recovery_state`): stuck, backing out, or facing the wrong way at a crawl.
    # Nose against a barrier, it backs off at once, steering the other way (a three-point turn), instead of
    # scraping along it.
    psi, stuck, backing, wrong_way = _recovery_state(state, track, cfg)
    turn_steer = -torch.sign(psi) * max_steer
    a_turn = ((turn_steer - state.steer_cmd_rad) / math.radians(STEER_DELTA_DEG)).clamp(-1.0, 1.0)
    a_steer = torch.where(wrong_way, a_turn, a_steer)
    a_pedal = torch.where(wrong_way, (cfg.speed_gain * (cfg.turnaround_mps - speed)).clamp(-1.0, 0.4), a_pedal)
    nose_at_wall = state.wall_contact & (torch.sign(lat) * torch.sin(psi) > 0)
    recover = stuck | backing | (wrong_way & nose_at_wall)
    reverse_steer = torch.sign(psi) * max_steer
    a_rev = ((reverse_steer - state.steer_cmd_rad) / math.radians(STEER_DELTA_DEG)).clamp(-1.0, 1.0)
    a_steer = torch.where(recover, a_rev, a_steer)
    a_pedal = torch.where(recover, torch.full_like(a_pedal, -1.0), a_pedal)
    return torch.stack([a_steer, a_pedal], dim=-1)
