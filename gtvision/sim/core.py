"""The batched, functional racing simulator: state, parameters, reset and the 10 Hz control step.

Every tensor of :class:`SimState` has leading axes ``[races, cars]`` (``R, C``). :func:`step` is pure:
it returns a new state and never changes its input. Rendering is apart (``gtvision.sim.render``).

Timing (paper III-B): physics runs at 60 Hz, control at 10 Hz. Within a control step the
throttle/brake is held for the 6 ticks (zero-order hold) and the steering angle is linearly
interpolated from its value at the previous control step to the new commanded one.

Controls, per car, in the agent's action space (paper III-B; ``gtvision.env`` uses the same):

=========  =======================================================================================
index      meaning
=========  =======================================================================================
0          delta steering, in units of ``STEER_DELTA_DEG`` (3 degrees) per control step; + = left
1          combined throttle (+) / brake (-), in [-1, 1]
=========  =======================================================================================

Controls outside [-1, 1] are clipped; NaN or infinite controls raise ``ValueError``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from .cars import CarSpec, get_car
from .track import SURFACE_DRAG_G, SURFACE_GRIP, Surface, Track, CURB_WIDTH_M, take

PHYSICS_HZ = 60
"""Physics ticks per second (paper III-B: the game runs at 60 Hz)."""
CONTROL_HZ = 10
"""Control steps per second (paper III-B: the agent acts at 10 Hz)."""
TICKS_PER_CONTROL = PHYSICS_HZ // CONTROL_HZ
STEER_DELTA_DEG = 3.0
"""Paper III-B: the delta steering action is limited to [-3, 3] degrees per control step."""
GRID_SIZE = 20
"""Paper IV-B: GT7 races hold at most 20 cars."""
GRAVITY = 9.81
AIR_DENSITY = 1.225
ROLLING_RESISTANCE = 0.015
"""Rolling resistance coefficient of the tyres on asphalt."""
TIRE_B, TIRE_C = 12.0, 1.4
"""Magic-formula shape of ``sin(C atan(B alpha))``: peak near 7 degrees of slip, 81% when sliding."""
REAR_GRIP_GAIN = 1.1
"""Rear axle cornering grip over the front's, per unit load (its friction circle is this much wider
sideways): with both axles at their peak the car is then not neutral but pushes wide (limit
understeer), as race cars are set up; without it a car whose steering is held past the limit keeps
its yaw rate and spins. Traction and braking limits are unchanged."""
REAR_STIFFNESS_GAIN = 1.2
"""Rear tyres are wider: their cornering stiffness is this much higher (a stable, understeering car)."""
LOAD_SENSITIVITY = 0.12
"""Tyre load sensitivity: an axle's grip falls by this times (lateral transfer / axle load)^2 ... """
FRONT_ROLL_SHARE = 0.6
"""Share of the lateral load transfer carried by the front axle (stiffer front anti-roll)."""
TRACK_WIDTH_FRAC = 0.84
"""Axle track as a fraction of the body width."""
WALL_RESTITUTION, WALL_FRICTION = 0.15, 0.35
CAR_RESTITUTION, CAR_FRICTION = 0.25, 0.3
CAR_CONTACT_YAW_SHARE = 0.35
"""Share of a car-car impulse's rigid-body yaw kick that is applied: a real bump is spread over
time by the bodywork and suspension while the tyres resist yaw, so a touch rarely spins a car."""
CONTACT_MARGIN_M = 0.05
"""Cars closer than this count as in contact (for the contact-time accumulators and onsets)."""
SLIPSTREAM_RANGE_M = 60.0
"""A car this far behind another, and roughly in line, feels less drag."""
SLIPSTREAM_MAX = 0.4
"""Largest fraction of aerodynamic drag removed by a slipstream (right behind the leader)."""
KINEMATIC_BLEND_MPS = (1.5, 4.5)
"""Below the first speed the car follows the kinematic bicycle model, above the second the dynamic
one; in between a blend. Tyre slip angles are ill-conditioned at a standstill."""
WALL_SEARCH_WINDOW = 3
"""Stations searched either side of the previous one when projecting a car on the centerline."""
LONGITUDINAL_GRIP_USE = 0.9
"""ABS and traction control: the fraction of an axle's grip that braking or drive may use, which
keeps some lateral grip (a locked or spinning axle has none, and the car spins)."""
REAR_BRAKE_GRIP_USE = 0.5
"""Electronic brake-force distribution: the rear brakes use at most this fraction of the rear axle's
grip, so the unloaded rear keeps the car stable when braking into a corner."""
REVERSE_ENGAGE_S = 1.0
"""As in GT7 with the automatic gearbox: holding the brake at a standstill this long engages reverse."""
REVERSE_MAX_MPS = 4.0
"""Top speed in reverse (kept within the kinematic regime)."""
SURFACE_DRAG_FULL_MPS = 10.0
"""The extra drag of a soft surface (``SURFACE_DRAG_G``) applies in full above this speed and falls
to a fifth of it at a standstill."""
STOPPED_MPS = 1.0
"""Below this speed a car counts as stopped (``stopped_time_s``)."""


@dataclass(frozen=True)
class SimParams:
    """Everything constant during an episode: the track, the car model and the race length."""

    track: Track
    """The circuit (tensors on the simulation device)."""
    car: CarSpec
    """The car model all entrants drive (one model per scenario, Table I)."""
    laps: int | None = None
    """Race length in laps; None for an open-ended session (no finish)."""
    compile: bool = False
    """Run the physics tick through ``torch.compile`` (inductor): about twice as fast on a 2-core
    CPU at 1024 races, after a warm-up of about half a minute per batch shape; needs a C++ compiler
    on CPU. Results agree with the eager tick to float32 rounding, not bitwise (fused arithmetic)."""
    contact_yaw_share: float = CAR_CONTACT_YAW_SHARE
    """Share of a car-car impulse's rigid-body yaw kick that is applied (:data:`CAR_CONTACT_YAW_SHARE`); 1 is
    the rigid body's whole kick, under which a bump off a car's centre line spins it far more often."""

    @property
    def device(self) -> torch.device:
        return self.track.device

    @property
    def dt(self) -> float:
        return 1.0 / PHYSICS_HZ


def make_params(track: Track | str, car: CarSpec | str, laps: int | None = None,
                device: str | torch.device = "cpu", compile: bool = False,
                contact_yaw_share: float = CAR_CONTACT_YAW_SHARE) -> SimParams:
    """Build :class:`SimParams` from names or objects; tensors go to ``device``."""
    if isinstance(track, str):
        from .circuits import load_track
        track = load_track(track)
    if isinstance(car, str):
        car = get_car(car)
    if laps is not None and (not isinstance(laps, int) or laps < 1):
        raise ValueError(f"laps must be a positive int or None, got {laps!r}")
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False, got {compile!r}")
    if isinstance(contact_yaw_share, bool) or not isinstance(contact_yaw_share, (int, float)) \
            or not 0.0 <= contact_yaw_share <= 1.0:
        raise ValueError(f"contact_yaw_share must be a number in [0, 1], got {contact_yaw_share!r}")
    return SimParams(track=track.to(device), car=car, laps=laps, compile=compile,
                     contact_yaw_share=float(contact_yaw_share))


@dataclass(frozen=True)
class SimState:
    """State of R races of C cars. Shapes (R, C) unless noted; SI units, world frame of track.py.

    Body-frame velocities: ``vx`` forward, ``vy`` to the left; ``yaw_rate`` counter-clockwise.
    """

    x: torch.Tensor
    y: torch.Tensor
    yaw: torch.Tensor
    vx: torch.Tensor
    vy: torch.Tensor
    yaw_rate: torch.Tensor
    ax: torch.Tensor
    """Body-frame longitudinal acceleration of the last tick (m/s^2), as an IMU reads it."""
    ay: torch.Tensor
    """Body-frame lateral acceleration of the last tick (m/s^2)."""
    steer_rad: torch.Tensor
    """Road-wheel steering angle now (rad, + = left)."""
    steer_cmd_rad: torch.Tensor
    """Steering angle commanded by the last control step (reached at its end)."""
    throttle: torch.Tensor
    brake: torch.Tensor
    gear: torch.Tensor
    """int64, 0-based gear index."""
    station: torch.Tensor
    """int64 nearest centerline station."""
    s_m: torch.Tensor
    """Arc length along the lap, in [0, length)."""
    lat_m: torch.Tensor
    """Lateral offset from the centerline (left positive)."""
    progress_m: torch.Tensor
    """Unwrapped distance along the course since the start line (negative on the grid)."""
    laps_done: torch.Tensor
    """int64 completed laps."""
    lap_start_time_s: torch.Tensor
    last_lap_time_s: torch.Tensor
    """Time of the last completed lap (s); NaN before the first."""
    best_lap_time_s: torch.Tensor
    """Best completed lap (s); inf before the first."""
    finished: torch.Tensor
    """bool: the car has completed the race distance."""
    finish_time_s: torch.Tensor
    """Race time when the car finished (s); NaN until then."""
    wall_contact: torch.Tensor
    """bool: touching a barrier during the last tick."""
    car_contact: torch.Tensor
    """bool: touching another car during the last tick."""
    off_course: torch.Tensor
    """bool: at least three tyres outside the track limits after the last tick."""
    wall_time_s: torch.Tensor
    """Accumulated time in contact with a barrier (s)."""
    car_contact_time_s: torch.Tensor
    """Accumulated time in contact with another car (s)."""
    off_course_time_s: torch.Tensor
    """Accumulated time with at least three tyres outside the track limits (s)."""
    contact_dv_sq: torch.Tensor
    """Sum over contact onsets of the squared speed difference with the other car ((m/s)^2)."""
    contact_count: torch.Tensor
    """int64 number of car-contact onsets."""
    in_contact: torch.Tensor
    """(R, C, C) bool: pairs in contact during the last tick (to detect onsets)."""
    slipstream: torch.Tensor
    """Fraction of aerodynamic drag removed by the slipstream, updated at 10 Hz."""
    grip_front: torch.Tensor
    """Surface grip multiplier under the front axle (mean of its two wheels)."""
    grip_rear: torch.Tensor
    surface_drag_g: torch.Tensor
    """Extra rolling resistance of the surfaces under the car (g)."""
    power_scale: torch.Tensor
    """Balance of performance: engine power multiplier (1 = stock)."""
    mass_scale: torch.Tensor
    """Balance of performance: mass multiplier (1 = stock)."""
    stopped_time_s: torch.Tensor
    """How long the car has been below ``STOPPED_MPS`` (s); 0 while it moves."""
    reverse_time_s: torch.Tensor
    """How long the brake has been held at a standstill or in reverse (s); reverse engages at
    ``REVERSE_ENGAGE_S``."""
    time_s: torch.Tensor
    """(R,) race time (s)."""

    @property
    def num_races(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_cars(self) -> int:
        return int(self.x.shape[1])

    @property
    def speed_mps(self) -> torch.Tensor:
        return torch.hypot(self.vx, self.vy)

    def replace(self, **changes) -> "SimState":
        return dataclasses.replace(self, **changes)

    def select(self, races: torch.Tensor, other: "SimState") -> "SimState":
        """Per race, this state where ``races`` (R,) bool is False and ``other`` where True.

        The masked select used for auto-reset (gymnax style).
        """
        out = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            m = races.view(-1, *([1] * (a.dim() - 1)))
            out[f.name] = torch.where(m, b, a)
        return SimState(**out)


# ---------------------------------------------------------------------------- reset


def grid_slots(num_cars: int, row_spacing_m: float = 8.0, lateral_m: float = 2.6,
               first_row_m: float = 6.0):
    """(arc-length offset behind the line, lateral offset) of each of ``num_cars`` grid slots.

    Two columns, staggered by half a row like a real grid; slot 0 is pole on the left.
    """
    k = torch.arange(num_cars, dtype=torch.float32)
    row = torch.div(k, 2, rounding_mode="floor")
    col = torch.remainder(k, 2)
    back = first_row_m + row * row_spacing_m + col * row_spacing_m / 2.0
    lat = torch.where(col == 0, torch.tensor(lateral_m / 2), torch.tensor(-lateral_m / 2))
    return -back, lat


def reset(params: SimParams, num_races: int, num_cars: int = GRID_SIZE, *,
          start: str = "grid", grid_order: torch.Tensor | None = None,
          start_s_m: torch.Tensor | None = None, initial_speed_mps: torch.Tensor | float = 0.0,
          bop: bool = False, bop_range: float = 0.25, generator: torch.Generator | None = None,
          ) -> SimState:
    """A fresh state for ``num_races`` races of ``num_cars`` cars.

    Args:
        start: "grid": a standing-start grid behind the start line; "random": the same grid formation
            at a random point of the lap per race (``start_s_m`` fixes it), e.g. for training.
        grid_order: (C,) or (R, C) int64 grid slot of each car (default: car i in slot i).
        initial_speed_mps: rolling start speed (scalar or (R, C)).
        bop: sample engine power and mass of every car uniformly in [1 - bop_range, 1 + bop_range]
            (paper IV-B: GT7's balance of performance, +-25%). Off: stock cars.
        generator: torch RNG for the random start point and the BoP draws.
    """
    if start not in ("grid", "random"):
        raise ValueError(f"unknown start {start!r}; valid starts: 'grid', 'random'")
    if not 1 <= num_cars <= GRID_SIZE:
        raise ValueError(f"num_cars must be in 1..{GRID_SIZE}, got {num_cars}")
    if num_races < 1:
        raise ValueError(f"num_races must be >= 1, got {num_races}")
    dev = params.device
    track = params.track
    R, C = num_races, num_cars
    back, side = grid_slots(C)
    back, side = back.to(dev), side.to(dev)
    if grid_order is None:
        slot = torch.arange(C, device=dev).expand(R, C)
    else:
        slot = grid_order.to(dev).long().expand(R, C)
    if start_s_m is None:
        if start == "random":
            start_s_m = torch.rand(R, generator=generator).to(dev) * track.length_m
        else:
            start_s_m = torch.zeros(R, device=dev)
    s = track.wrap_s(start_s_m.to(dev).view(R, 1) + back[slot])
    lat = side[slot]
    x, y, _ = track.point_at(s, lat)
    station = track.station_of_s(s)
    yaw = take(track.heading_rad, station)
    zeros = torch.zeros(R, C, device=dev)
    speed = torch.as_tensor(initial_speed_mps, dtype=torch.float32, device=dev).expand(R, C)
    # progress counts from the start line: cars on the grid are behind it (negative)
    rel = torch.remainder(s - start_s_m.to(dev).view(R, 1), track.length_m)
    progress = torch.where(rel > track.length_m / 2, rel - track.length_m, rel)
    if start == "random":
        progress = torch.zeros(R, C, device=dev) + back[slot]
    if bop:
        u = torch.rand(2, R, C, generator=generator).to(dev)
        power_scale = 1.0 + bop_range * (2.0 * u[0] - 1.0)
        mass_scale = 1.0 + bop_range * (2.0 * u[1] - 1.0)
    else:
        power_scale = torch.ones(R, C, device=dev)
        mass_scale = torch.ones(R, C, device=dev)
    car = params.car
    gear = torch.zeros(R, C, dtype=torch.long, device=dev)
    if float(speed.max()) > 0:
        gear = _auto_gear(car, speed, gear)
    return SimState(
        x=x, y=y, yaw=yaw, vx=speed.clone(), vy=zeros.clone(), yaw_rate=zeros.clone(),
        ax=zeros.clone(), ay=zeros.clone(),
        steer_rad=zeros.clone(), steer_cmd_rad=zeros.clone(),
        throttle=zeros.clone(), brake=zeros.clone(), gear=gear,
        station=station, s_m=s, lat_m=lat.clone(), progress_m=progress,
        laps_done=torch.zeros(R, C, dtype=torch.long, device=dev),
        lap_start_time_s=torch.full((R, C), math.nan, device=dev),
        last_lap_time_s=torch.full((R, C), math.nan, device=dev),
        best_lap_time_s=torch.full((R, C), math.inf, device=dev),
        finished=torch.zeros(R, C, dtype=torch.bool, device=dev),
        finish_time_s=torch.full((R, C), math.nan, device=dev),
        wall_contact=torch.zeros(R, C, dtype=torch.bool, device=dev),
        car_contact=torch.zeros(R, C, dtype=torch.bool, device=dev),
        off_course=torch.zeros(R, C, dtype=torch.bool, device=dev),
        wall_time_s=zeros.clone(), car_contact_time_s=zeros.clone(),
        off_course_time_s=zeros.clone(), contact_dv_sq=zeros.clone(),
        contact_count=torch.zeros(R, C, dtype=torch.long, device=dev),
        in_contact=torch.zeros(R, C, C, dtype=torch.bool, device=dev),
        slipstream=zeros.clone(), grip_front=torch.ones(R, C, device=dev),
        grip_rear=torch.ones(R, C, device=dev), surface_drag_g=zeros.clone(),
        power_scale=power_scale, mass_scale=mass_scale,
        stopped_time_s=zeros.clone(), reverse_time_s=zeros.clone(),
        time_s=torch.zeros(R, device=dev),
    )


# ---------------------------------------------------------------------------- control step


def check_controls(controls: torch.Tensor, num_races: int, num_cars: int) -> torch.Tensor:
    """Validate (R, C, 2) controls: shape, finiteness; returns them clipped to [-1, 1]."""
    if controls.shape != (num_races, num_cars, 2):
        raise ValueError(f"controls must have shape ({num_races}, {num_cars}, 2), "
                         f"got {tuple(controls.shape)}")
    if not bool(torch.isfinite(controls).all()):
        bad = controls[~torch.isfinite(controls)]
        raise ValueError(f"controls must be finite; got {bad[:4].tolist()} (NaN or inf)")
    return controls.clamp(-1.0, 1.0)


def step(state: SimState, controls: torch.Tensor, params: SimParams) -> SimState:
    """Advance every race by one 10 Hz control step (6 physics ticks at 60 Hz).

    Args:
        controls: (R, C, 2) float, see the module docstring; clipped to [-1, 1]; NaN/inf raise. On any device:
            they move to the state's.
    """
    car = params.car
    controls = check_controls(controls, state.num_races, state.num_cars).to(state.x.device, state.x.dtype)
    max_steer = math.radians(car.max_steer_deg)
    steer_from = state.steer_cmd_rad
    steer_to = (steer_from + controls[..., 0] * math.radians(STEER_DELTA_DEG)).clamp(-max_steer, max_steer)
    # zero-order hold of the combined throttle/brake for the 6 ticks (paper III-B)
    throttle = controls[..., 1].clamp(min=0.0)
    brake = (-controls[..., 1]).clamp(min=0.0)
    state = state.replace(steer_cmd_rad=steer_to, throttle=throttle, brake=brake,
                          slipstream=_slipstream(state, params))
    tick = _compiled_tick() if params.compile else _tick
    for k in range(TICKS_PER_CONTROL):
        # steering linearly interpolated between control steps (paper III-B)
        frac = (k + 1) / TICKS_PER_CONTROL
        state = tick(state, steer_from + (steer_to - steer_from) * frac, params)
    return state


_COMPILED = {}


def _compiled_tick():
    """:func:`_tick` through ``torch.compile``: two fused graphs around the eager narrow phase of
    the car contacts (whose size depends on the traffic); made once per process."""
    if "tick" not in _COMPILED:
        _COMPILED["tick"] = torch.compile(_tick, dynamic=False)
    return _COMPILED["tick"]


# ---------------------------------------------------------------------------- physics


_CONSTANTS: dict = {}


def _const(name: str, values, device) -> torch.Tensor:
    """A small constant tensor (gear ratios, wheel offsets, surface tables), made once per device."""
    key = (name, values, str(device))
    if key not in _CONSTANTS:
        _CONSTANTS[key] = torch.tensor(values, dtype=torch.float32, device=device)
    return _CONSTANTS[key]


def _engine_force(car: CarSpec, speed: torch.Tensor, gear: torch.Tensor) -> torch.Tensor:
    """Full-throttle tractive force at the contact patches (N), before BoP and traction limits."""
    ratios = _const("gears", car.gear_ratios, speed.device) * car.final_drive
    ratio = ratios[gear]
    omega_peak = car.peak_power_rpm * 2 * math.pi / 60
    omega = speed.clamp(min=0.0) / car.wheel_radius_m * ratio
    p_max = car.power_kw * 1000.0 * car.driveline_efficiency
    if car.electric:
        # constant torque up to the peak-power speed, constant power above
        torque = p_max / omega.clamp(min=omega_peak)
        omega_max = car.redline_rpm * 2 * math.pi / 60
        torque = torch.where(omega > omega_max, torch.zeros_like(omega), torque)
    else:
        # the clutch holds the engine at launch speed or above while the wheels are slower
        omega = omega.clamp(min=car.launch_rpm * 2 * math.pi / 60)
        u = omega / omega_peak
        power = p_max * (u + u * u - u * u * u).clamp(min=0.05)
        torque = power / omega
        omega_red = car.redline_rpm * 2 * math.pi / 60
        torque = torch.where(omega > omega_red * 1.04, torch.zeros_like(torque), torque)
    return torque * ratio / car.wheel_radius_m


def _auto_gear(car: CarSpec, speed: torch.Tensor, gear: torch.Tensor) -> torch.Tensor:
    """Automatic gearbox: the gear that keeps the engine below its redline with the most force."""
    n = len(car.gear_ratios)
    if n == 1:
        return gear
    ratios = _const("gears", car.gear_ratios, speed.device) * car.final_drive
    rpm = speed.clamp(min=0.0).unsqueeze(-1) / car.wheel_radius_m * ratios * 60 / (2 * math.pi)
    # highest gear index whose rpm is still above the redline, plus one
    over = (rpm > car.redline_rpm).sum(-1)
    target = over.clamp(max=n - 1)
    # downshift only when the lower gear would sit below 92% of the redline (hysteresis)
    lower_ok = rpm.gather(-1, (gear - 1).clamp(min=0).unsqueeze(-1)).squeeze(-1) < 0.92 * car.redline_rpm
    down = (target < gear) & lower_ok
    return torch.where(target > gear, target, torch.where(down, gear - 1, gear))


def _wheel_offsets(car: CarSpec):
    """(forward, left) offsets of the four tyres from the centre of gravity: FL, FR, RL, RR."""
    a = car.wheelbase_m * (1.0 - car.front_weight_frac)
    b = car.wheelbase_m * car.front_weight_frac
    half_track = 0.5 * TRACK_WIDTH_FRAC * car.width_m
    return ((a, half_track), (a, -half_track), (-b, half_track), (-b, -half_track))


def _surface_state(state: SimState, params: SimParams):
    """Per car: surface grip under each axle, extra drag, and the 3-of-4-tyres off-course flag."""
    track, car = params.track, params.car
    st = state.station
    psi = state.yaw - take(track.heading_rad, st)
    cos_p, sin_p = torch.cos(psi), torch.sin(psi)
    wl = take(track.width_left_m, st)
    wr = take(track.width_right_m, st)
    offs = _const("wheels", _wheel_offsets(car), state.x.device)  # (4, 2)
    # lateral offset of each tyre from the centerline, in the station's frame
    lat_w = state.lat_m.unsqueeze(-1) + offs[:, 0] * sin_p.unsqueeze(-1) + offs[:, 1] * cos_p.unsqueeze(-1)
    out_left = lat_w > wl.unsqueeze(-1)
    out_right = lat_w < -wr.unsqueeze(-1)
    outside = out_left | out_right
    off_course = outside.sum(-1) >= 3  # paper III-C: at least three tyres outside the limits
    curb = ((take(track.curb_left, st).unsqueeze(-1) & (lat_w > (wl - CURB_WIDTH_M).unsqueeze(-1)))
            | (take(track.curb_right, st).unsqueeze(-1) & (lat_w < -(wr - CURB_WIDTH_M).unsqueeze(-1))))
    surface = torch.where(curb, int(Surface.CURB), int(Surface.ASPHALT))
    surface = torch.where(out_left, take(track.runoff_surface_l, st).unsqueeze(-1), surface)
    surface = torch.where(out_right, take(track.runoff_surface_r, st).unsqueeze(-1), surface)
    grip_table = _const("grip", SURFACE_GRIP, state.x.device)
    drag_table = _const("drag", SURFACE_DRAG_G, state.x.device)
    grip = grip_table[surface]
    return (grip[..., :2].mean(-1), grip[..., 2:].mean(-1), drag_table[surface].mean(-1), off_course)


def _tick(state: SimState, steer: torch.Tensor, params: SimParams) -> SimState:
    """One 60 Hz physics tick: tyres and drivetrain, integration, barriers, car contacts, timing."""
    car, track, dt = params.car, params.track, params.dt
    m = car.mass_kg * state.mass_scale
    iz = car.yaw_inertia_kgm2 * state.mass_scale
    wb = car.wheelbase_m
    a = wb * (1.0 - car.front_weight_frac)  # CoG to front axle
    b = wb * car.front_weight_frac  # CoG to rear axle
    vx, vy, r = state.vx, state.vy, state.yaw_rate

    # --- normal loads: static split, longitudinal transfer, downforce
    q = 0.5 * AIR_DENSITY * vx * vx
    downforce = q * car.cla_m2
    weight = m * GRAVITY
    transfer = m * state.ax * car.cg_height_m / wb
    fz_f = (weight * car.front_weight_frac - transfer + downforce * car.aero_front_frac).clamp(min=0.05 * weight)
    fz_r = (weight * (1 - car.front_weight_frac) + transfer + downforce * (1 - car.aero_front_frac)).clamp(min=0.05 * weight)
    # lateral load transfer with load-sensitive tyres: an axle that carries more of the transfer
    # loses more grip (front share > rear: the car understeers at the limit, like a race car set up)
    transfer_lat = (m * state.ay * car.cg_height_m / (TRACK_WIDTH_FRAC * car.width_m)).abs()
    loss_f = LOAD_SENSITIVITY * (2 * FRONT_ROLL_SHARE * transfer_lat / fz_f).clamp(max=1.0) ** 2
    loss_r = LOAD_SENSITIVITY * (2 * (1 - FRONT_ROLL_SHARE) * transfer_lat / fz_r).clamp(max=1.0) ** 2
    mu = car.tire_grip
    fmax_f = mu * state.grip_front * fz_f * (1.0 - loss_f)
    fmax_r = mu * state.grip_rear * fz_r * (1.0 - loss_r)

    # --- longitudinal demand: engine through the gearbox, brakes; traction-limited per axle
    speed_fwd = vx.clamp(min=0.0)
    gear = _auto_gear(car, speed_fwd, state.gear)
    f_engine = state.throttle * _engine_force(car, speed_fwd, gear) * state.power_scale
    moving = torch.tanh(vx / 0.5)
    f_brake = state.brake * car.brake_max_g * weight * moving
    fx_f = f_engine * car.front_drive_share - f_brake * car.brake_front_frac
    fx_r = f_engine * (1 - car.front_drive_share) - f_brake * (1 - car.brake_front_frac)
    # reverse: the brake pedal drives the car backwards once reverse is engaged
    reversing = state.reverse_time_s >= REVERSE_ENGAGE_S
    f_rev = state.brake * 0.4 * weight * ((vx + REVERSE_MAX_MPS) / REVERSE_MAX_MPS).clamp(0.0, 1.0)
    fx_f = torch.where(reversing, -f_rev * car.front_drive_share, fx_f)
    fx_r = torch.where(reversing, -f_rev * (1 - car.front_drive_share), fx_r)
    lim_f, lim_r = LONGITUDINAL_GRIP_USE * fmax_f, LONGITUDINAL_GRIP_USE * fmax_r
    fx_f = torch.maximum(torch.minimum(fx_f, lim_f), -lim_f)
    fx_r = torch.maximum(torch.minimum(fx_r, lim_r), -REAR_BRAKE_GRIP_USE * fmax_r)

    # --- lateral: magic-formula slip curve inside the friction circle left by fx (combined slip)
    vxs = vx.abs().clamp(min=1.0)
    alpha_f = torch.atan2(vy + a * r, vxs) - steer * torch.sign(vx + 1e-3)
    alpha_r = torch.atan2(vy - b * r, vxs)
    fy_cap_f = torch.sqrt((fmax_f * fmax_f - fx_f * fx_f).clamp(min=0.0))
    fy_cap_r = torch.sqrt(((REAR_GRIP_GAIN * fmax_r) ** 2 - fx_r * fx_r).clamp(min=0.0))
    fy_f = -fy_cap_f * torch.sin(TIRE_C * torch.atan(TIRE_B * alpha_f))
    fy_r = -fy_cap_r * torch.sin(TIRE_C * torch.atan(REAR_STIFFNESS_GAIN * TIRE_B * alpha_r))

    # --- resistances: aero drag (less in a slipstream), rolling, surface, gravity along the slope
    drag = q * car.cda_m2 * (1.0 - state.slipstream) * torch.sign(vx)
    # gravel and grass bite hardest on a fast car; a slow one can still crawl out
    surface_drag = state.surface_drag_g * (vx.abs() / SURFACE_DRAG_FULL_MPS).clamp(0.2, 1.0)
    roll = (ROLLING_RESISTANCE + surface_drag) * weight * moving
    slope = weight * track.grade[state.station] * torch.cos(state.yaw - track.heading_rad[state.station])

    cos_d, sin_d = torch.cos(steer), torch.sin(steer)
    fx_body = fx_f * cos_d - fy_f * sin_d + fx_r - drag - roll - slope
    fy_body = fx_f * sin_d + fy_f * cos_d + fy_r
    mz = a * (fx_f * sin_d + fy_f * cos_d) - b * fy_r
    ax = fx_body / m
    ay = fy_body / m
    # integrate the velocity in the world frame: the body frame's rotation is then exact (explicit
    # Euler of d(vx)/dt = ax + vy r adds energy at every tick when the car spins)
    cos_0, sin_0 = torch.cos(state.yaw), torch.sin(state.yaw)
    vwx = vx * cos_0 - vy * sin_0 + (ax * cos_0 - ay * sin_0) * dt
    vwy = vx * sin_0 + vy * cos_0 + (ax * sin_0 + ay * cos_0) * dt
    r_dyn = r + mz / iz * dt
    yaw = state.yaw + r_dyn * dt
    cos_y, sin_y = torch.cos(yaw), torch.sin(yaw)
    vx_new = vwx * cos_y + vwy * sin_y
    vy_dyn = -vwx * sin_y + vwy * cos_y
    # --- low-speed kinematic blend: slip angles are meaningless at a standstill
    speed = torch.hypot(vx_new, vy_dyn)
    w = ((speed - KINEMATIC_BLEND_MPS[0]) / (KINEMATIC_BLEND_MPS[1] - KINEMATIC_BLEND_MPS[0])).clamp(0.0, 1.0)
    r_kin = vx_new * torch.tan(steer) / wb
    vy_new = w * vy_dyn + (1 - w) * r_kin * b
    r_new = w * r_dyn + (1 - w) * r_kin
    # a car at rest stays at rest under brakes and rolling resistance (no creeping backwards)
    vx_new = torch.where((vx >= 0) & (vx_new < 0) & ~reversing & (state.throttle <= 0),
                         torch.zeros_like(vx_new), vx_new)
    vwx = vx_new * cos_y - vy_new * sin_y
    vwy = vx_new * sin_y + vy_new * cos_y
    x = state.x + vwx * dt
    y = state.y + vwy * dt

    # --- barriers: project, push back inside, impulse at the deepest corner (no tunnelling:
    # positions are clamped every tick whatever the speed)
    station, s, lat = track.project(x, y, state.station, window=WALL_SEARCH_WINDOW)
    x, y, vwx, vwy, r_new, wall_contact, lat = _walls(x, y, yaw, vwx, vwy, r_new, m, iz, station, lat, params)

    # --- car-car contacts
    close = _broad_phase(x, y, params)
    x, y, vwx, vwy, r_new, car_contact, in_contact, dv_sq = _car_contacts(
        x, y, yaw, vwx, vwy, r_new, m, iz, state.in_contact, close, params)
    if torch.compiler.is_compiling() or car_contact.any():
        station, s, lat = track.project(x, y, station, window=WALL_SEARCH_WINDOW)

    vx_b = vwx * cos_y + vwy * sin_y
    vy_b = -vwx * sin_y + vwy * cos_y

    # --- progress, laps, finish (sub-tick interpolation of crossing times)
    ds = s - state.s_m
    ds = ds - track.length_m * torch.round(ds / track.length_m)
    progress = state.progress_m + ds
    time_now = state.time_s.unsqueeze(-1) + dt
    laps_now = torch.div(progress, track.length_m, rounding_mode="floor").long().clamp(min=0)
    crossed = (progress >= 0) & (state.progress_m < 0) | (laps_now > state.laps_done) & (progress >= 0)
    frac_over = torch.remainder(progress, track.length_m) / ds.abs().clamp(min=1e-6)
    t_cross = time_now - dt * frac_over.clamp(0.0, 1.0)
    new_lap = crossed & (laps_now > state.laps_done) & torch.isfinite(state.lap_start_time_s)
    lap_time = t_cross - state.lap_start_time_s
    last_lap = torch.where(new_lap, lap_time, state.last_lap_time_s)
    best_lap = torch.where(new_lap, torch.minimum(state.best_lap_time_s, lap_time), state.best_lap_time_s)
    lap_start = torch.where(crossed, t_cross, state.lap_start_time_s)
    laps_done = torch.maximum(state.laps_done, laps_now)
    finished, finish_time = state.finished, state.finish_time_s
    if params.laps is not None:
        target = params.laps * track.length_m
        done_now = (progress >= target) & ~finished
        t_fin = time_now - dt * ((progress - target) / ds.abs().clamp(min=1e-6)).clamp(0.0, 1.0)
        finish_time = torch.where(done_now, t_fin, finish_time)
        finished = finished | done_now

    ns = state.replace(
        x=x, y=y, yaw=yaw, vx=vx_b, vy=vy_b, yaw_rate=r_new, ax=ax, ay=ay, steer_rad=steer,
        gear=gear, station=station, s_m=s, lat_m=lat, progress_m=progress,
        laps_done=laps_done, lap_start_time_s=lap_start, last_lap_time_s=last_lap,
        best_lap_time_s=best_lap, finished=finished, finish_time_s=finish_time,
        wall_contact=wall_contact, car_contact=car_contact,
        wall_time_s=state.wall_time_s + wall_contact * dt,
        car_contact_time_s=state.car_contact_time_s + car_contact * dt,
        contact_dv_sq=state.contact_dv_sq + dv_sq,
        contact_count=state.contact_count + (dv_sq > 0) + 0 * state.contact_count,
        in_contact=in_contact, time_s=state.time_s + dt,
        stopped_time_s=torch.where(speed < STOPPED_MPS, state.stopped_time_s + dt, torch.zeros_like(speed)),
        reverse_time_s=torch.where((state.brake > 0.5) & (vx_new < 0.5) & (state.throttle <= 0),
                                   state.reverse_time_s + dt, torch.zeros_like(speed)),
    )
    grip_f, grip_r, drag_g, off_course = _surface_state(ns, params)
    return ns.replace(grip_front=grip_f, grip_rear=grip_r, surface_drag_g=drag_g, off_course=off_course,
                      off_course_time_s=state.off_course_time_s + off_course * dt)


def _box_corners(car: CarSpec):
    hl, hw = car.length_m / 2, car.width_m / 2
    return ((hl, hw), (hl, -hw), (-hl, hw), (-hl, -hw))


def _walls(x, y, yaw, vwx, vwy, r, m, iz, station, lat, params: SimParams):
    """Keep every car inside the barriers: positional correction and a rigid-body impulse.

    Returns the corrected x, y, world velocity, yaw rate, a contact flag and the new lateral offset.
    """
    track, car = params.track, params.car
    nx, ny = take(track.nx, station), take(track.ny, station)
    psi = yaw - take(track.heading_rad, station)
    cos_p, sin_p = torch.cos(psi), torch.sin(psi)
    corners = _const("corners", _box_corners(car), x.device)  # (4, 2) body (fwd, left)
    # lateral offset of each corner in the station frame
    c_lat = corners[:, 0] * sin_p.unsqueeze(-1) + corners[:, 1] * cos_p.unsqueeze(-1)
    reach_l, idx_l = c_lat.max(-1)
    reach_r, idx_r = (-c_lat).max(-1)
    pen_l = lat + reach_l - take(track.wall_left_m, station)
    pen_r = -lat + reach_r - take(track.wall_right_m, station)
    touch_l = pen_l > -0.02
    touch_r = pen_r > -0.02
    contact = touch_l | touch_r
    if not torch.compiler.is_compiling() and not bool((pen_l > 0).any() or (pen_r > 0).any()):
        return x, y, vwx, vwy, r, contact, lat  # eager: skip the impulse when no car touches
    # push back along the normal
    push = pen_r.clamp(min=0) - pen_l.clamp(min=0)  # + = to the left
    x = x + push * nx
    y = y + push * ny
    lat = lat + push
    # impulse at the corner touching the barrier; the wall normal points into the track
    hit_l = pen_l > 0
    side = torch.where(hit_l, -1.0, 1.0)  # normal sign along the left normal
    n_x, n_y = side * nx, side * ny
    cidx = torch.where(hit_l, idx_l, idx_r)
    cf = corners[:, 0][cidx]
    cl = corners[:, 1][cidx]
    cos_y, sin_y = torch.cos(yaw), torch.sin(yaw)
    rx = cf * cos_y - cl * sin_y  # contact point relative to the CoG, world frame
    ry = cf * sin_y + cl * cos_y
    vpx = vwx - r * ry
    vpy = vwy + r * rx
    vn = vpx * n_x + vpy * n_y
    active = ((pen_l > 0) | (pen_r > 0)) & (vn < 0)
    rn = rx * n_y - ry * n_x
    j = -(1 + WALL_RESTITUTION) * vn / (1 / m + rn * rn / iz)
    j = torch.where(active, j, torch.zeros_like(j))
    # Coulomb friction along the wall
    t_x, t_y = -n_y, n_x
    vt = vpx * t_x + vpy * t_y
    rt = rx * t_y - ry * t_x
    jt = -vt / (1 / m + rt * rt / iz)
    jt = torch.maximum(torch.minimum(jt, WALL_FRICTION * j), -WALL_FRICTION * j)
    vwx = vwx + (j * n_x + jt * t_x) / m
    vwy = vwy + (j * n_y + jt * t_y) / m
    r = r + (rn * j + rt * jt) / iz
    return x, y, vwx, vwy, r, contact, lat


def _broad_phase(x, y, params: SimParams) -> torch.Tensor:
    """(R, C, C) bool: pairs i < j of a race close enough for their boxes to touch."""
    car = params.car
    C = x.shape[1]
    hl, hw = car.length_m / 2, car.width_m / 2
    reach2 = 4 * (hl * hl + hw * hw)
    dx = x.unsqueeze(1) - x.unsqueeze(2)  # [r, i, j] = x_j - x_i
    dy = y.unsqueeze(1) - y.unsqueeze(2)
    return (dx * dx + dy * dy < reach2) & torch.ones(C, C, dtype=torch.bool, device=x.device).triu(1)


@torch.compiler.disable
def _car_contacts(x, y, yaw, vwx, vwy, r, m, iz, was_in_contact, close, params: SimParams):
    """Car-car contacts between oriented boxes (separating axis test) resolved with impulses.

    Broad phase on all pairs of a race ((R, C, C), cheap); narrow phase only on the close pairs.
    Returns updated kinematics, a per-car contact flag, the (R, C, C) contact matrix and, per car,
    the squared speed difference summed over the contact onsets of this tick.
    """
    car = params.car
    R, C = x.shape
    dev = x.device
    contact = torch.zeros(R, C, dtype=torch.bool, device=dev)
    in_contact = torch.zeros(R, C, C, dtype=torch.bool, device=dev)
    dv_sq = torch.zeros(R, C, device=dev)
    if C < 2:
        return x, y, vwx, vwy, r, contact, in_contact, dv_sq
    hl, hw = car.length_m / 2, car.width_m / 2
    pairs = close.nonzero()
    if pairs.shape[0] == 0:
        return x, y, vwx, vwy, r, contact, in_contact, dv_sq
    rr, i, j = pairs[:, 0], pairs[:, 1], pairs[:, 2]
    xa, ya, ta = x[rr, i], y[rr, i], yaw[rr, i]
    xb, yb, tb = x[rr, j], y[rr, j], yaw[rr, j]
    fa = torch.stack([torch.cos(ta), torch.sin(ta)], -1)
    la = torch.stack([-torch.sin(ta), torch.cos(ta)], -1)
    fb = torch.stack([torch.cos(tb), torch.sin(tb)], -1)
    lb = torch.stack([-torch.sin(tb), torch.cos(tb)], -1)
    d = torch.stack([xb - xa, yb - ya], -1)
    axes = torch.stack([fa, la, fb, lb], 1)  # (P, 4, 2)

    def radius(f, l):
        return hl * (axes * f.unsqueeze(1)).sum(-1).abs() + hw * (axes * l.unsqueeze(1)).sum(-1).abs()

    dist = (axes * d.unsqueeze(1)).sum(-1)
    overlap = radius(fa, la) + radius(fb, lb) - dist.abs()
    # pairs closer than CONTACT_MARGIN_M count as touching (a car pushing another separates and
    # touches again every tick: that is one contact, not sixty a second)
    touching = (overlap > -CONTACT_MARGIN_M).all(-1)
    if not bool(touching.any()):
        return x, y, vwx, vwy, r, contact, in_contact, dv_sq
    # the narrow phase runs on every touching pair, not only the overlapping ones: a slow approach
    # touches (within the margin) a tick before it overlaps, and that first tick is the onset
    rr, i, j = rr[touching], i[touching], j[touching]
    in_contact = in_contact.clone()
    in_contact[rr, i, j] = True
    in_contact[rr, j, i] = True
    contact = contact.reshape(-1).index_fill(0, torch.cat([rr * C + i, rr * C + j]), True).reshape(R, C)
    overlap, dist, axes = overlap[touching], dist[touching], axes[touching]
    fa, la, fb, lb = fa[touching], la[touching], fb[touching], lb[touching]
    xa, ya, xb, yb = xa[touching], ya[touching], xb[touching], yb[touching]
    depth, k = overlap.min(-1)
    hit = depth > 0  # overlapping: pushed apart with an impulse; merely touching: no force
    depth = depth.clamp(min=0.0)
    sgn = torch.sign(dist.gather(-1, k.unsqueeze(-1)).squeeze(-1))
    sgn = torch.where(sgn == 0, torch.ones_like(sgn), sgn)
    n = axes[torch.arange(axes.shape[0], device=dev), k] * sgn.unsqueeze(-1)  # from A to B
    # contact point: midpoint of A's support point along n and B's along -n
    pa = torch.stack([xa, ya], -1) + hl * torch.sign((fa * n).sum(-1, keepdim=True)) * fa \
        + hw * torch.sign((la * n).sum(-1, keepdim=True)) * la
    pb = torch.stack([xb, yb], -1) - hl * torch.sign((fb * n).sum(-1, keepdim=True)) * fb \
        - hw * torch.sign((lb * n).sum(-1, keepdim=True)) * lb
    pc = 0.5 * (pa + pb)
    ma, mb = m[rr, i], m[rr, j]
    ia, ib = iz[rr, i], iz[rr, j]
    ra = pc - torch.stack([xa, ya], -1)
    rb = pc - torch.stack([xb, yb], -1)
    wa, wb_ = r[rr, i], r[rr, j]
    va = torch.stack([vwx[rr, i] - wa * ra[:, 1], vwy[rr, i] + wa * ra[:, 0]], -1)
    vb = torch.stack([vwx[rr, j] - wb_ * rb[:, 1], vwy[rr, j] + wb_ * rb[:, 0]], -1)
    vrel = vb - va
    vn = (vrel * n).sum(-1)

    def cross(u, v):
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    ran, rbn = cross(ra, n), cross(rb, n)
    jn = -(1 + CAR_RESTITUTION) * vn / (1 / ma + 1 / mb + ran * ran / ia + rbn * rbn / ib)
    jn = torch.where((vn < 0) & hit, jn, torch.zeros_like(jn))
    t = torch.stack([-n[:, 1], n[:, 0]], -1)
    vt = (vrel * t).sum(-1)
    rat, rbt = cross(ra, t), cross(rb, t)
    jt = -vt / (1 / ma + 1 / mb + rat * rat / ia + rbt * rbt / ib)
    jt = torch.maximum(torch.minimum(jt, CAR_FRICTION * jn), -CAR_FRICTION * jn)
    imp = jn.unsqueeze(-1) * n + jt.unsqueeze(-1) * t  # impulse on B; -imp on A
    # positional correction split by inverse mass
    share_a = (1 / ma) / (1 / ma + 1 / mb)
    corr = depth.unsqueeze(-1) * n
    flat_a = rr * C + i
    flat_b = rr * C + j

    def add(field, idx, val):
        return field.reshape(-1).index_add(0, idx, val).reshape(R, C)

    x = add(x, flat_a, -corr[:, 0] * share_a)
    y = add(y, flat_a, -corr[:, 1] * share_a)
    x = add(x, flat_b, corr[:, 0] * (1 - share_a))
    y = add(y, flat_b, corr[:, 1] * (1 - share_a))
    vwx = add(vwx, flat_a, -imp[:, 0] / ma)
    vwy = add(vwy, flat_a, -imp[:, 1] / ma)
    vwx = add(vwx, flat_b, imp[:, 0] / mb)
    vwy = add(vwy, flat_b, imp[:, 1] / mb)
    r = add(r, flat_a, -params.contact_yaw_share * cross(ra, imp) / ia)
    r = add(r, flat_b, params.contact_yaw_share * cross(rb, imp) / ib)
    # Paper III-C r^v: the speed difference between the two cars at the time of collision.
    # We read it as the norm of the relative velocity at the contact onset.
    onset = ~was_in_contact[rr, i, j]
    dv2 = (vrel * vrel).sum(-1) * onset
    dv_sq = add(dv_sq, flat_a, dv2)
    dv_sq = add(dv_sq, flat_b, dv2)
    return x, y, vwx, vwy, r, contact, in_contact, dv_sq


def _slipstream(state: SimState, params: SimParams) -> torch.Tensor:
    """Drag reduction of every car from the cars ahead of it (updated once per control step)."""
    C = state.num_cars
    if C < 2:
        return torch.zeros_like(state.x)
    dx = state.x.unsqueeze(1) - state.x.unsqueeze(2)  # [r, i, j] = x_j - x_i
    dy = state.y.unsqueeze(1) - state.y.unsqueeze(2)
    cy, sy = torch.cos(state.yaw).unsqueeze(-1), torch.sin(state.yaw).unsqueeze(-1)
    ahead = dx * cy + dy * sy  # leader j ahead of follower i, in i's frame
    side = -dx * sy + dy * cy
    car_len = params.car.length_m
    lateral_ok = side.abs() < params.car.width_m * (1.0 + ahead / SLIPSTREAM_RANGE_M)
    in_wake = (ahead > car_len) & (ahead < SLIPSTREAM_RANGE_M) & lateral_ok
    strength = SLIPSTREAM_MAX * (1.0 - ahead / SLIPSTREAM_RANGE_M) * (1.0 - side.abs() / (2 * params.car.width_m))
    strength = torch.where(in_wake, strength.clamp(min=0.0), torch.zeros_like(strength))
    return strength.amax(-1)
