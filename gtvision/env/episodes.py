"""Episodes of paper IV-B: training episodes, race episodes, and how a race holds fewer cars.

Training (IV-B): each episode samples its opponent count from {0, 1, 2, 3, 4, 7, 12, 19}, starts at a
random point of the track, the opponents' engine power and mass are drawn within +-25% (balance of
performance), and the episode ends at a time limit. Race (IV-D): 4 laps from the back of a 20-car
grid against 19 BIAI cars, BoP off, ending when the learner finishes, with a time cap. Both end early
by truncation when the learner is stuck.

The learner is car 0 of every race; opponents are cars 1..n. With a curriculum the batch holds
``1 + 19`` cars per race whatever each race draws, and the cars a race does not use are *parked*:
see :class:`Parking`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..sim import core
from ..sim.race import RACE_TIME_CAP_FACTOR, START_REACTION_S
from ..sim.track import Track

LEARNER = 0
"""Index of the learner's car in every race."""
CURRICULUM_OPPONENTS = (0, 1, 2, 3, 4, 7, 12, 19)
"""Paper IV-B: training episodes are solo runs or races against 1, 2, 3, 4, 7, 12 or 19 opponents.
Each episode draws one uniformly (the paper gives no distribution; our choice)."""
MAX_OPPONENTS = core.GRID_SIZE - 1
"""Paper IV-B: GT7 races hold at most 20 cars."""
STARTS = ("random", "grid_back")
"""'random': a standing-start grid at a random point of the lap, the learner in a random slot of it
(paper IV-B); 'grid_back': the standing-start grid on the start line, the learner last (IV-C, IV-D)."""
BOP_RANGE = 0.25
"""Paper IV-B: BoP draws the opponents' engine power and mass uniformly within +-25% of stock."""
TRAINING_EPISODE_S = 120.0
"""Length of a time-limited training episode (s; 1200 control steps). The paper does not give one
(our choice: about a lap of Tokyo)."""
STUCK_S = 10.0
"""The learner is stuck, and its episode truncated, when it has not gained ``STUCK_PROGRESS_M`` of
course progress for this long (s; our choice)."""
STUCK_PROGRESS_M = 10.0
"""Progress (m) that counts as moving on (see ``STUCK_S``)."""

TRAINING = {"num_opponents": None, "start": "random", "laps": None, "bop": True}
"""Keyword arguments of a training episode (paper IV-B); also the environments' defaults."""
RACE = {"num_opponents": MAX_OPPONENTS, "start": "grid_back", "laps": 4, "bop": False}
"""Keyword arguments of a race episode (paper IV-D): 4 laps from the back of a 20-car grid, BoP off."""
SITUATION_KEYS = ("num_opponents", "start", "start_speed_mps", "bop", "stuck_s", "learner_yaw_deg", "start_m")
"""What a situation of ``EpisodeConfig.situations`` may set: how an episode begins, drawn together."""


@dataclass(frozen=True)
class EpisodeConfig:
    """What an episode is: opponents, start, length and the end conditions. Validated on creation."""

    num_opponents: int | tuple[int, ...] | None = None
    """Opponents per race, 0..19; several counts (e.g. ``(12, 19)``): each episode draws one of them
    uniformly; None: each episode draws from ``CURRICULUM_OPPONENTS`` (paper IV-B)."""
    start: str | tuple[str, ...] = "random"
    """One of ``STARTS``, or several (e.g. ``("grid_back", "random")``): each episode draws one of them uniformly
    (ours: DAgger from the back of the grid alone learns the first lap's pack but not the laps alone; LOG.md, "The
    vision agent", run V18)."""
    laps: int | None = None
    """Race length in laps (the episode terminates when the learner finishes); None for a
    time-limited training episode."""
    bop: bool = True
    """Balance of performance on the opponents (the learner's car is always stock)."""
    max_time_s: float | None = None
    """Truncate the episode at this race time (s). None: ``TRAINING_EPISODE_S`` without laps; with
    laps, ``gtvision.sim.race.RACE_TIME_CAP_FACTOR`` x the BIAI's expected race time, as races are
    capped there."""
    stuck_s: float = STUCK_S
    """Truncate the episode when the learner has been stuck this long (s)."""
    start_speed_mps: float | tuple[float, ...] = 0.0
    """Speed of every car at the start (m/s): 0 is a standing start, more a rolling one; several speeds
    (e.g. ``(0, 20)``): each episode draws one of them uniformly. Paper: IV-B samples random start points
    without saying whether the cars move; a rolling start lets a fresh policy feel the progress reward at
    once (its random throttle averages zero), and the standing ones teach the start of a race (IV-C)."""
    situations: tuple[dict, ...] | None = None
    """Several ways an episode begins, each a dict of some of ``SITUATION_KEYS`` (the others keep this config's
    values): each episode draws one situation uniformly, then draws within it as this config would (e.g. ``({},
    {"start": "grid_back", "num_opponents": 19, "start_speed_mps": 0, "bop": False})``: half the episodes as
    configured, half from the back of the full grid). Lists of starts, counts and speeds draw each on its own;
    a situation ties them together (ours: DAgger that mixes the curriculum's episodes with races' starts; LOG.md,
    "The vision agent", run V21)."""
    learner_yaw_deg: float | tuple[float, float] = 0.0
    """The learner's heading at the start relative to the course's direction (degrees, positive to the left), or a
    range ``(lo, hi)`` each episode draws from uniformly; a rolling start keeps the learner's velocity along the
    course, so the car starts sliding as in a spin. Ours (the paper starts every car straight): a situation such as
    ``{"learner_yaw_deg": [-180, 180], "stuck_s": 10}`` shows a DAgger student spun-round states, where its
    teacher turns round (LOG.md, "The vision agent", runs V23 and MS2: it did not make students finish more races)."""
    start_m: tuple[float, float] | None = None
    """Where a 'random' start's grid stands: a range ``(lo, hi)`` of course distance (m from the start line, taken
    modulo the lap) each episode draws the grid's front from uniformly; None: anywhere on the lap. Ours (the paper's
    random starts cover the lap): a situation such as ``{"start": "random", "start_m": [1700, 1950]}`` aims episodes
    at one place of the lap (LOG.md, "Aiming DAgger at the corner (V24)": half of the vision agent's unfinished races
    end at one corner; aiming DAgger there did not mend it)."""

    def __post_init__(self):
        if self.situations is not None:
            sits = self.situations
            if not isinstance(sits, (tuple, list)) or not sits or any(not isinstance(d, dict) for d in sits):
                raise ValueError(f"situations must be a non-empty list of dicts (each episode draws one), got "
                                 f"{sits!r}")
            for d in sits:
                bad = sorted(set(d) - set(SITUATION_KEYS))
                if bad:
                    raise ValueError(f"a situation may set {', '.join(SITUATION_KEYS)}; got {', '.join(bad)} "
                                     f"in {d!r}")
            object.__setattr__(self, "situations", tuple(dict(d) for d in sits))
            _ = self.situation_configs  # building each situation's config validates it
        n = self.num_opponents
        counts = list(n) if isinstance(n, (tuple, list)) else [n]
        if n is not None and (not counts or any(isinstance(c, bool) or not isinstance(c, (int, np.integer))
                                                or not 0 <= c <= MAX_OPPONENTS for c in counts)):
            raise ValueError(f"num_opponents must be an int in 0..{MAX_OPPONENTS}, a list of them (each episode "
                             f"draws one), or None (sample from the curriculum {CURRICULUM_OPPONENTS}), got {n!r}")
        starts = self.starts
        if not starts or any(not isinstance(v, str) or v not in STARTS for v in starts):
            raise ValueError(f"unknown start {self.start!r}; valid starts: {', '.join(map(repr, STARTS))}, or a "
                             "list of them (each episode draws one)")
        laps = self.laps
        if laps is not None and (isinstance(laps, bool) or not isinstance(laps, (int, np.integer))
                                 or laps < 1):
            raise ValueError(f"laps must be a positive int or None (time-limited training), got {laps!r}")
        if self.bop not in (True, False):
            raise ValueError(f"bop must be True or False, got {self.bop!r}")
        speeds = self.start_speeds
        if not speeds or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100
                             for v in speeds):
            raise ValueError(f"start_speed_mps must be a number in [0, 100] m/s, or a list of them, got "
                             f"{self.start_speed_mps!r}")
        yaw = self.learner_yaw_deg
        ranged = isinstance(yaw, (tuple, list))
        yaws = list(yaw) if ranged else [yaw]
        if (len(yaws) != (2 if ranged else 1) or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                           or not -180 <= v <= 180 for v in yaws) or yaws != sorted(yaws)):
            raise ValueError(f"learner_yaw_deg must be a number of degrees in [-180, 180] or a range [lo, hi] "
                             f"within it (each episode draws one uniformly), got {yaw!r}")
        if ranged:  # a range is a tuple (the draw tells it from a fixed heading by that)
            object.__setattr__(self, "learner_yaw_deg", tuple(yaw))
        where = self.start_m
        if where is not None:
            if (not isinstance(where, (tuple, list)) or len(where) != 2
                    or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0
                           for v in where) or where[0] > where[1]):
                raise ValueError(f"start_m must be None or a range [lo, hi] of course distance (m, 0 <= lo <= hi) "
                                 f"where a random start's grid stands, got {where!r}")
            object.__setattr__(self, "start_m", (float(where[0]), float(where[1])))
        for name in ("max_time_s", "stuck_s"):
            v = getattr(self, name)
            if v is None and name == "max_time_s":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")

    @property
    def situation_configs(self) -> tuple["EpisodeConfig", ...]:
        """One config per situation (this config, without situations, when there are none)."""
        if self.situations is None:
            return (self,)
        return tuple(replace(self, situations=None, **d) for d in self.situations)

    @property
    def start_speeds(self) -> tuple:
        """The start speeds an episode draws from (one, unless ``start_speed_mps`` names several)."""
        v = self.start_speed_mps
        return tuple(v) if isinstance(v, (tuple, list)) else (v,)

    @property
    def starts(self) -> tuple[str, ...]:
        """The starts an episode draws from (one, unless ``start`` names several; with situations, all theirs)."""
        if self.situations is not None:
            return tuple(dict.fromkeys(v for c in self.situation_configs for v in c.starts))
        v = self.start
        return tuple(v) if isinstance(v, (tuple, list)) else (v,)

    @property
    def opponent_counts(self) -> tuple[int, ...] | None:
        """The opponent counts an episode draws from (None: the curriculum; one count: no draw)."""
        n = self.num_opponents
        return None if n is None else tuple(int(c) for c in (n if isinstance(n, (tuple, list)) else (n,)))

    @property
    def varies_opponents(self) -> bool:
        """Whether episodes differ in their number of opponents (some of the batch's cars may be parked)."""
        counts = [c.opponent_counts for c in self.situation_configs]
        return any(c is None or len(set(c)) > 1 for c in counts) or len(set(counts)) > 1

    @property
    def num_cars(self) -> int:
        """Cars per race in the batch: the learner and the most opponents an episode can have."""
        counts = [c.opponent_counts for c in self.situation_configs]
        return 1 + max(MAX_OPPONENTS if c is None else max(c) for c in counts)

    def time_limit_s(self, qss_lap_time_s: float, biai_pace: float) -> float:
        """The resolved ``max_time_s`` (s), given the BIAI's minimum lap time and pace."""
        if self.max_time_s is not None:
            return float(self.max_time_s)
        if self.laps is None:
            return TRAINING_EPISODE_S
        return RACE_TIME_CAP_FACTOR * (self.laps * qss_lap_time_s / biai_pace + 30.0)


@dataclass(frozen=True)
class EpisodeDraws:
    """The random choices of k new episodes (one row per race), drawn on the CPU."""

    num_opponents: torch.Tensor
    """(k,) int64."""
    learner_slot: torch.Tensor
    """(k,) int64 grid slot of the learner (0 = pole)."""
    start_s_m: torch.Tensor
    """(k,) float32 arc length of the grid's front (m)."""
    power_scale: torch.Tensor
    """(k, C) float32 engine power multipliers (1 for the learner and parked cars)."""
    mass_scale: torch.Tensor
    """(k, C) float32 mass multipliers."""
    reaction_s: torch.Tensor
    """(k, C) float32 each opponent's reaction to a standing start (s; 0 for the learner and parked cars, and
    for a rolling start): as in ``gtvision.sim.race``, so that the races of a batch are not copies of one
    another."""
    start_speed_mps: torch.Tensor
    """(k,) float32 the speed of every car at the start (m/s; 0: a standing start)."""
    learner_yaw_rad: torch.Tensor
    """(k,) float32 the learner's heading at the start relative to the course's (rad)."""
    stuck_s: torch.Tensor
    """(k,) float32 how long the learner may be stuck before the episode is truncated (s)."""


def draw_episodes(cfg: EpisodeConfig, rngs: list[np.random.Generator], length_m: float) -> EpisodeDraws:
    """Draw one new episode per generator (one generator per race, so a race's episodes depend only
    on its own seed, whatever the batch around it)."""
    C = cfg.num_cars
    n_opp, slot, start, power, mass, reaction, speed, yaw, stuck = [], [], [], [], [], [], [], [], []
    situations = cfg.situation_configs
    for rng in rngs:
        # drawn first and for a full grid, so that a race is the same whatever else the episode draws
        react = rng.uniform(0.0, START_REACTION_S, size=MAX_OPPONENTS + 1)[:C]
        # a situation is drawn only when there are several: without, the draws are as they always were
        sit = situations[0] if len(situations) == 1 else situations[rng.integers(0, len(situations))]
        speeds, starts = sit.start_speeds, sit.starts
        counts = sit.opponent_counts
        if counts is None:
            n = int(rng.choice(CURRICULUM_OPPONENTS))
        else:  # a fixed count draws nothing, so that its races are as they always were
            n = counts[0] if len(counts) == 1 else int(rng.choice(counts))
        n_opp.append(n)
        # drawn only when there is a choice: a one-start episode's draws are as they always were
        kind = starts[0] if len(starts) == 1 else str(starts[rng.integers(0, len(starts))])
        if kind == "random":
            slot.append(int(rng.integers(0, n + 1)))
            where = sit.start_m   # None draws as it always did
            start.append(float(rng.uniform(0.0, length_m)) if where is None
                         else float(rng.uniform(where[0], where[1])) % length_m)
        else:
            slot.append(n)
            start.append(0.0)
        p = m = np.ones(C)
        if sit.bop:
            p, m = rng.uniform(1.0 - BOP_RANGE, 1.0 + BOP_RANGE, size=(2, C))
        used = np.arange(C) <= n
        used[LEARNER] = False
        power.append(np.where(used, p, 1.0))
        mass.append(np.where(used, m, 1.0))
        # drawn last, and only when there is a choice: a one-speed episode's draws are as they always were
        speed.append(float(speeds[rng.integers(0, len(speeds))]) if len(speeds) > 1 else float(speeds[0]))
        reaction.append(np.where(used & (speed[-1] == 0), react, 0.0))
        # after everything else, and only for a range: a fixed heading's draws are as they always were
        y = sit.learner_yaw_deg
        yaw.append(math.radians(rng.uniform(y[0], y[1]) if isinstance(y, tuple) else y))
        stuck.append(sit.stuck_s)
    f32 = torch.float32
    return EpisodeDraws(torch.tensor(n_opp), torch.tensor(slot), torch.tensor(start, dtype=f32),
                        torch.tensor(np.stack(power), dtype=f32), torch.tensor(np.stack(mass), dtype=f32),
                        torch.tensor(np.stack(reaction), dtype=f32), torch.tensor(speed, dtype=f32),
                        torch.tensor(yaw, dtype=f32), torch.tensor(stuck, dtype=f32))


def fresh_states(params: core.SimParams, cfg: EpisodeConfig, draws: EpisodeDraws) -> core.SimState:
    """Start states (standing, or rolling at the drawn start speed) of the k races of ``draws``, learner in car 0
    (parked cars not yet parked).

    The k active cars fill grid slots 0..n; the learner takes its drawn slot and the opponents the
    others in order.
    """
    dev = params.device
    k, C = draws.power_scale.shape
    car = torch.arange(C)
    slot = (car - 1 + (car - 1 >= draws.learner_slot.unsqueeze(1)).long()).expand(k, C).clone()
    slot[:, LEARNER] = draws.learner_slot
    # a 'grid_back' draw is the grid formation at s = 0 with the learner last: the simulator's "random" start at
    # start_s_m = 0 is that same state (the same positions and progress), so one reset serves a mix of starts
    state = core.reset(params, k, C, start="grid" if cfg.starts == ("grid_back",) else "random",
                       grid_order=slot.to(dev), start_s_m=draws.start_s_m.to(dev),
                       initial_speed_mps=draws.start_speed_mps.to(dev).unsqueeze(1).expand(k, C))
    state = state.replace(power_scale=draws.power_scale.to(dev), mass_scale=draws.mass_scale.to(dev))
    if bool((draws.learner_yaw_rad != 0).any()):
        # the learner turned by the offset, its velocity still along the course: in its own frame (x ahead, y left)
        # the course's direction lies at -offset
        off = draws.learner_yaw_rad.to(dev)
        v = draws.start_speed_mps.to(dev)
        col = lambda t, new: torch.cat([new.unsqueeze(1), t[:, LEARNER + 1:]], 1)
        state = state.replace(yaw=col(state.yaw, state.yaw[:, LEARNER] + off),
                              vx=col(state.vx, v * torch.cos(off)), vy=col(state.vy, -v * torch.sin(off)))
    return state


# ---------------------------------------------------------------------------- parked cars

PARK_CLEARANCE_M = 500.0
"""Parked cars stand at least this far from every centerline station: beyond the renderer's 300 m
and every contact, slipstream and traffic range."""
PARK_SPACING_M = 10.0
"""Distance between parked cars (m), more than a contact's reach."""
PARK_LAT_TOL_M = 1.0
"""Largest lateral offset (m) of a parking spot from the centerline stations near its own."""
PARK_STATIONS = 30
"""Stations on either side of a parking spot's station that must be straight: the simulator's
projection walks at most 3 stations per tick (18 per control step) before the env parks the car
again."""
PARKED_LAT_M = 1.0e4
"""Lateral offset (m) written in a parked car's ``lat_m``: the BIAI's traffic logic, which compares
lateral offsets, never sees it as in its lane or alongside."""


@dataclass(frozen=True)
class Parking:
    """Where the cars a race does not use stand: a line of spots far off the world.

    The simulator has no notion of an inactive car, so the environment parks them: each parked car
    stands at rest on the extension of a straight's centerline, ``PARK_CLEARANCE_M`` or more away from
    the track. There the simulator's barrier test, which looks only at the lateral offset from the
    nearest centerline stations, leaves it alone (its offset from that straight's line is ~0); it is
    too far to touch, slipstream or be drawn; its BIAI controls are replaced by zeros; and after every
    step it is put back at rest on its spot (:meth:`park`). Observations and rewards mask it out.
    """

    x: torch.Tensor
    """(C,) world x of each car's spot (m)."""
    y: torch.Tensor
    """(C,) world y (m)."""
    yaw_rad: float
    """Heading of the straight (rad)."""
    station: int
    """The straight's station whose centerline the spots extend."""
    s_m: float
    """Arc length of that station (m)."""

    def park(self, state: core.SimState, parked: torch.Tensor) -> core.SimState:
        """``state`` with the cars where ``parked`` (R, C) is True at rest on their spots."""
        def put(field, value):
            return torch.where(parked, torch.as_tensor(value, dtype=field.dtype, device=field.device), field)

        zero = 0.0
        return state.replace(
            x=put(state.x, self.x), y=put(state.y, self.y), yaw=put(state.yaw, self.yaw_rad),
            vx=put(state.vx, zero), vy=put(state.vy, zero), yaw_rate=put(state.yaw_rate, zero),
            ax=put(state.ax, zero), ay=put(state.ay, zero),
            steer_rad=put(state.steer_rad, zero), steer_cmd_rad=put(state.steer_cmd_rad, zero),
            throttle=put(state.throttle, zero), brake=put(state.brake, zero),
            station=put(state.station, self.station), s_m=put(state.s_m, self.s_m),
            lat_m=put(state.lat_m, PARKED_LAT_M), progress_m=put(state.progress_m, zero),
            stopped_time_s=put(state.stopped_time_s, zero), reverse_time_s=put(state.reverse_time_s, zero),
        )


_PARKING: dict = {}


def parking_for(track: Track, num_cars: int) -> Parking:
    """The :class:`Parking` of ``num_cars`` cars on ``track`` (searched once per track, then cached).

    Tries distances from 600 m up and both directions along every straight station (every 5th), and
    takes the first spot line whose points all keep ``PARK_CLEARANCE_M`` from the track and lie within
    ``PARK_LAT_TOL_M`` of the centerline line of the ``PARK_STATIONS`` stations either side.
    """
    key = (track.spec, track.num_stations, num_cars)
    if key not in _PARKING:
        _PARKING[key] = _search_parking(track.to("cpu"), num_cars)
    p = _PARKING[key]
    dev = track.device
    return Parking(p.x.to(dev), p.y.to(dev), p.yaw_rad, p.station, p.s_m)


def _search_parking(track: Track, num_cars: int) -> Parking:
    f64 = lambda t: t.numpy().astype(np.float64)
    x, y, tx, ty, nx, ny = (f64(getattr(track, k)) for k in ("x", "y", "tx", "ty", "nx", "ny"))
    n = x.shape[0]
    window = np.arange(-PARK_STATIONS, PARK_STATIONS + 1)
    probe = np.arange(0, n, 5)                        # clearance checked against every 5th station
    offsets = np.arange(num_cars) * PARK_SPACING_M
    for distance in (600.0, 1000.0, 1500.0, 2000.0, 3000.0, 5000.0):
        for direction in (1.0, -1.0):
            for h in range(0, n, 5):
                d = direction * (distance + offsets)                       # (C,)
                px, py = x[h] + d * tx[h], y[h] + d * ty[h]
                near = (h + window) % n
                lat = (px[:, None] - x[near]) * nx[near] + (py[:, None] - y[near]) * ny[near]
                if np.abs(lat).max() > PARK_LAT_TOL_M:
                    continue
                d2 = (px[:, None] - x[probe]) ** 2 + (py[:, None] - y[probe]) ** 2
                if np.sqrt(d2.min()) < PARK_CLEARANCE_M:
                    continue
                f32 = torch.float32
                return Parking(torch.tensor(px, dtype=f32), torch.tensor(py, dtype=f32),
                               float(track.heading_rad[h]), int(h), float(track.s_m[h]))
    raise ValueError(f"track {track.name!r}: no straight whose extension leaves the world "
                     f"{PARK_CLEARANCE_M:.0f} m clear; curriculum episodes need one to park unused cars")
