"""The gymnasium environments: one learner car per race among BIAI opponents.

:class:`RaceBatch` runs R races of the batched simulator with the learner in car 0 of each:
episodes (``episodes``), observations (``observations``) and the reward (``gtvision.rewards``), all
batched over races. :class:`RacingEnv` (a ``gymnasium.Env``, R = 1) and :class:`RacingVectorEnv` (a
native ``gymnasium.vector.VectorEnv``, R = ``num_envs``) are thin shells around it, so the two give
the same episodes for the same seeds: sub-environment i of ``make_vec(..., num_envs=N)`` reset with
``seed`` plays the episodes of ``make(...)`` reset with ``seed + i`` (as gymnasium's own vector
environments seed theirs).

One control step (10 Hz) of ``step(action)``:

1. the BIAI computes every car's controls; the learner's are replaced by ``action`` (Box(-1, 1, (2,)):
   delta steering in units of 3 degrees, combined throttle (+) / brake (-); clipped to [-1, 1];
   NaN or infinite values raise);
2. ``gtvision.sim.core.step`` advances all races (6 physics ticks);
3. the eight reward terms of paper III-C are computed and weighted (``info["reward_<term>"]`` holds
   each one before weighting);
4. ``terminated``: the learner finished the race (race episodes only); ``truncated``: the time limit,
   or the learner stuck (no ``STUCK_PROGRESS_M`` of progress in ``stuck_s``).

Autoreset (vector env): ``AutoresetMode.NEXT_STEP``, gymnasium's default. On the step *after* a
sub-environment returned ``terminated`` or ``truncated``, its action is ignored and it is reset: that
step returns its first observation of the new episode, reward 0, ``terminated = truncated = False``,
and the new episode's ``info``. There is no ``final_obs`` to collect: the last observation of an
episode is the one returned with its ``terminated`` / ``truncated``.

``info`` (per race): ``reward_<term>`` for the eight terms, ``progress_m``, ``speed_mps``, ``time_s``,
``wall_time_s``, ``car_contact_time_s``, ``off_course_time_s``, ``margin_m`` (learner's progress minus
the best opponent's; 0 without opponents), ``stuck_time_s``, ``last_lap_time_s`` and ``best_lap_time_s``
(timed line to line; inf before the first, so that infos compare equal), ``laps_done``, ``place`` (1 = leading), ``num_opponents``
and ``finished``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..rewards import TERM_NAMES, RewardConfig, combine, reward_terms, stack_terms, weight_vector
from ..sim.scenarios import get_scenario
from ..sim import core
from ..sim.biai import BIAIConfig, biai_controls, biai_rescuing, driving_plan
from ..sim.render import CameraConfig, render_ego
from .episodes import (
    LEARNER,
    STUCK_PROGRESS_M,
    STUCK_S,
    EpisodeConfig,
    draw_episodes,
    fresh_states,
    parking_for,
)
from .observations import (
    COURSE_STATIONS,
    GRID_AHEAD,
    GRID_BEHIND,
    GRID_FEATURES,
    course_points,
    opponent_grid,
    proprio,
    proprio_bounds,
    vertical_motion,
)

IMAGE_SIZE = 64
"""Paper III-A: the image feature is 64x64 RGB."""
VIDEO_SIZE = (270, 480)
"""(rows, columns) of ``render()`` frames: the race videos' 16:9 ego view."""
_STEP_S = 1.0 / core.CONTROL_HZ
_FLOAT_INFO = ("progress_m", "speed_mps", "time_s", "wall_time_s", "car_contact_time_s", "off_course_time_s",
               "margin_m", "stuck_time_s", "last_lap_time_s", "best_lap_time_s")


def observation_space(image_size: int = IMAGE_SIZE, max_steer_rad: float = math.radians(20.0)) -> spaces.Dict:
    """The observation space of one race (``gtvision.env.observations`` documents every field); ``proprio``'s
    bounded features (inputs, steering) carry their bounds (``observations.proprio_bounds``, with the car's
    full lock ``max_steer_rad``: 20 degrees for the three cars of Table I)."""
    inf = np.float32(np.inf)
    return spaces.Dict({
        "image": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
        "proprio": spaces.Box(*proprio_bounds(max_steer_rad), dtype=np.float32),
        "course_points": spaces.Box(-inf, inf, (3 * COURSE_STATIONS, 3), np.float32),
        "opponent_grid": spaces.Box(-inf, inf, (GRID_AHEAD + GRID_BEHIND, GRID_FEATURES), np.float32),
    })


def action_space() -> spaces.Box:
    """Paper III-B: (delta steering in units of 3 degrees per step, combined throttle/brake), in [-1, 1]."""
    return spaces.Box(-1.0, 1.0, (2,), np.float32)


def _check_size(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _device(device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}; valid devices: 'cpu', 'cuda', 'cuda:N'") from e


class RaceBatch:
    """R races with one learner each (car 0): state, episodes, observations and rewards, batched.

    Per-race memory besides the simulator state: the learner's last four steering angles (for
    ``proprio`` and r^s, r^h), its vertical motion (for the vertical acceleration and pitch rate),
    the stuck timer, and which cars race (``opponents``) or are parked (``parked``).
    """

    PICKLE_DEFAULTS = {"render_image": True}
    """Attributes added after checkpoints pickled environments, with the behaviour those had (a resumed run
    trains on as it began)."""

    def __setstate__(self, state: dict):
        self.__dict__.update({**self.PICKLE_DEFAULTS, **state})
        if "stuck_limit_s" not in state:  # pickled before situations could set it: every race the episode's
            self.stuck_limit_s = torch.full_like(self.stuck_time_s, float(self.episode.stuck_s))

    def __init__(self, scenario: str, num_races: int, episode: EpisodeConfig, image_size: int = IMAGE_SIZE,
                 render_size: tuple = VIDEO_SIZE, device="cpu", reward: RewardConfig | None = None,
                 compile: bool = False, render_image: bool = True,
                 contact_yaw_share: float = core.CAR_CONTACT_YAW_SHARE):
        sc = get_scenario(scenario)
        if render_image not in (True, False):
            raise ValueError(f"render_image must be True or False, got {render_image!r}")
        self.render_image = render_image
        image_size = _check_size("image_size", image_size, 8)
        if not (isinstance(render_size, (tuple, list)) and len(render_size) == 2):
            raise ValueError(f"render_size must be (rows, columns), got {render_size!r}")
        render_size = tuple(_check_size("render_size", v, 8) for v in render_size)
        reward = RewardConfig.from_value(reward)  # a dict too: --env-arg 'reward={"lambda_w": 2.0}'
        self.scenario = sc.name
        self.device = _device(device)
        self.params = core.make_params(sc.track, sc.car, laps=episode.laps, device=self.device,
                                       compile=compile, contact_yaw_share=contact_yaw_share)
        self.track = self.params.track
        self.plan = driving_plan(self.track, self.params.car)
        self.episode = episode
        self.reward_cfg = reward
        self.reward_weights = weight_vector(reward)
        """(8,) the weights of the terms (``gtvision.rewards.combine``)."""
        self.num_races = _check_size("num_envs", num_races, 1)
        self.num_cars = episode.num_cars
        self.camera = CameraConfig(height_px=image_size, width_px=image_size)
        self.video_camera = CameraConfig(height_px=render_size[0], width_px=render_size[1])
        self.time_limit_s = episode.time_limit_s(self.plan.qss_lap_time_s, BIAIConfig().pace)
        self.parking = parking_for(self.track, self.num_cars) if episode.varies_opponents else None
        self.max_steer_rad = math.radians(self.params.car.max_steer_deg)
        self.rngs: list[np.random.Generator | None] = [None] * self.num_races
        self.state: core.SimState | None = None
        R, C, dev = self.num_races, self.num_cars, self.device
        self.ego = torch.full((R,), LEARNER, dtype=torch.long, device=dev)
        self.num_opponents = torch.zeros(R, dtype=torch.long)                 # CPU copy, for info
        self.opponents = torch.zeros(R, C, dtype=torch.bool, device=dev)
        self.parked = torch.zeros(R, C, dtype=torch.bool, device=dev)
        self.any_parked = False
        self.steer_hist = torch.zeros(R, 4, device=dev)
        self.vertical = torch.zeros(R, 2, device=dev)
        self.vertical_rate = torch.zeros(R, 2, device=dev)
        self.stuck_ref_m = torch.zeros(R, device=dev)
        self.stuck_time_s = torch.zeros(R, device=dev)
        self.stuck_limit_s = torch.full((R,), float(episode.stuck_s), device=dev)
        """How long each race's learner may be stuck (s): the episode's, or its situation's."""
        self.reaction_s = torch.zeros(R, C, device=dev)
        """Opponents' reaction to a standing start (s): until then they keep off the throttle."""

    # ------------------------------------------------------------------ episodes

    def reset_races(self, races) -> None:
        """Start new episodes in ``races`` (indices), each drawn from its own generator in ``rngs``."""
        idx_cpu = torch.as_tensor(np.asarray(races, dtype=np.int64))
        idx = idx_cpu.to(self.device)
        draws = draw_episodes(self.episode, [self.rngs[int(i)] for i in idx_cpu], self.track.length_m)
        fresh = fresh_states(self.params, self.episode, draws)
        car = torch.arange(self.num_cars, device=self.device)
        n_opp = draws.num_opponents.to(self.device).unsqueeze(1)
        parked = car > n_opp
        if self.parking is not None:
            fresh = self.parking.park(fresh, parked)
        if self.state is None:
            if len(idx_cpu) != self.num_races:
                raise RuntimeError("the first reset must start every race")
            self.state = fresh
        else:
            self.state = core.SimState(**{
                f.name: getattr(self.state, f.name).index_copy(0, idx, getattr(fresh, f.name))
                for f in dataclasses.fields(fresh)})
        self.num_opponents[idx_cpu] = draws.num_opponents
        self.opponents[idx] = (car >= 1) & (car <= n_opp)
        self.parked[idx] = parked
        self.any_parked = bool((self.num_opponents < self.num_cars - 1).any())
        self.steer_hist[idx] = fresh.steer_cmd_rad[:, LEARNER:LEARNER + 1].expand(-1, 4)
        self.vertical[idx] = vertical_motion(fresh, self.track)
        self.vertical_rate[idx] = 0.0
        self.stuck_ref_m[idx] = fresh.progress_m[:, LEARNER]
        self.stuck_time_s[idx] = 0.0
        self.stuck_limit_s[idx] = draws.stuck_s.to(self.device)
        self.reaction_s[idx] = draws.reaction_s.to(self.device)  # zero for a rolling start

    def advance(self, actions: torch.Tensor):
        """One control step of every race with the learners' ``actions`` (R, 2).

        Returns reward (R,), the unweighted terms {name: (R,)}, terminated (R,) and truncated (R,) bool.
        """
        prev = self.state
        controls = biai_controls(prev, self.params, self.plan)
        waiting = self.reaction_s > prev.time_s.unsqueeze(1)  # the opponents' reaction to the start
        controls[..., 1] = torch.where(waiting, torch.zeros_like(controls[..., 1]), controls[..., 1])
        controls[:, LEARNER] = actions
        if self.any_parked:
            controls = controls.masked_fill(self.parked.unsqueeze(-1), 0.0)
        state = core.step(prev, controls, self.params)
        if self.any_parked:
            state = self.parking.park(state, self.parked)
        self.state = state
        self.steer_hist = torch.cat([state.steer_cmd_rad[:, LEARNER:LEARNER + 1], self.steer_hist[:, :3]], 1)
        vertical = vertical_motion(state, self.track)
        self.vertical_rate = (vertical - self.vertical) / _STEP_S
        self.vertical = vertical
        terms = reward_terms(prev, state, self.steer_hist[:, :3], self.opponents, self.track.length_m,
                             self.reward_cfg, ego=LEARNER)
        reward = combine(stack_terms(terms), self.reward_weights)
        progress = state.progress_m[:, LEARNER]
        moved = progress > self.stuck_ref_m + STUCK_PROGRESS_M
        self.stuck_ref_m = torch.where(moved, progress, self.stuck_ref_m)
        self.stuck_time_s = torch.where(moved, torch.zeros_like(progress), self.stuck_time_s + _STEP_S)
        if self.episode.laps is not None:
            terminated = state.finished[:, LEARNER].clone()
        else:
            terminated = torch.zeros_like(moved)
        tol = 0.5 * _STEP_S  # race time and the timer add up 1/60 s ticks in float32
        truncated = ((state.time_s >= self.time_limit_s - tol)
                     | (self.stuck_time_s >= self.stuck_limit_s - tol)) & ~terminated
        return reward, terms, terminated, truncated

    # ------------------------------------------------------------------ outputs

    def observe(self) -> dict[str, torch.Tensor]:
        """The batched observation, {key: (R, ...)} tensors on the simulation device."""
        s, track, car = self.state, self.track, self.params.car
        if self.render_image:
            image = render_ego(track, s.x, s.y, s.yaw, self.ego, car.length_m, car.width_m, car.height_m,
                               self.camera, station=s.station)
        else:  # no network reads it: black, not rendered
            image = torch.zeros(s.x.shape[0], self.camera.height_px, self.camera.width_px, 3, dtype=torch.uint8,
                                device=self.device)
        return {
            "image": image,
            "proprio": proprio(s, track, self.steer_hist, self.vertical_rate, self.max_steer_rad, LEARNER),
            "course_points": course_points(s, track, LEARNER),
            "opponent_grid": opponent_grid(s, self.opponents, track.length_m, LEARNER),
        }

    def info(self, terms: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Per-race info arrays (R,) (see the module docstring)."""
        s, opp, i = self.state, self.opponents, LEARNER
        # place: finishers by finish time, then the others by progress
        fin, fin_me = s.finished, s.finished[:, i:i + 1]
        ahead = torch.where(fin & fin_me, s.finish_time_s < s.finish_time_s[:, i:i + 1],
                            fin | (~fin_me & (s.progress_m > s.progress_m[:, i:i + 1])))
        place = 1 + (opp & ahead).sum(1)
        best = torch.where(opp, s.progress_m, torch.full_like(s.progress_m, -math.inf)).amax(1)
        margin = torch.where(opp.any(1), s.progress_m[:, i] - best, torch.zeros_like(best))
        floats = torch.stack(
            [terms[name] for name in TERM_NAMES]
            + [s.progress_m[:, i], s.speed_mps[:, i], s.time_s, s.wall_time_s[:, i],
               s.car_contact_time_s[:, i], s.off_course_time_s[:, i], margin, self.stuck_time_s,
               s.last_lap_time_s[:, i].nan_to_num(nan=math.inf), s.best_lap_time_s[:, i]],
            dim=1).cpu().numpy()
        ints = torch.stack([s.laps_done[:, i], place], dim=1).cpu().numpy()
        info = {f"reward_{name}": floats[:, k].copy() for k, name in enumerate(TERM_NAMES)}
        info.update({name: floats[:, len(TERM_NAMES) + k].copy() for k, name in enumerate(_FLOAT_INFO)})
        info.update({"laps_done": ints[:, 0].copy(), "place": ints[:, 1].copy(),
                     "num_opponents": self.num_opponents.numpy().copy(),
                     "finished": s.finished[:, i].cpu().numpy().copy()})
        return info

    def biai_actions(self) -> torch.Tensor:
        """(R, 2) what the BIAI would do with each learner's car now, in the action space (a baseline
        driver, paper IV-C, and a way to drive the learner in notebooks and tests)."""
        return biai_controls(self.state, self.params, self.plan)[:, LEARNER]

    def biai_rescue(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, 2) the BIAI's actions for each learner's car now, and (R,) bool whether that car is in trouble
        (:func:`gtvision.sim.biai.biai_rescuing`: stopped, backing out, or turning round at a crawl),
        where DAgger's rescue labels follow the BIAI (``TrainConfig.distill_rescue``)."""
        return self.biai_actions(), biai_rescuing(self.state, self.params)[:, LEARNER]

    def zero_terms(self) -> dict[str, torch.Tensor]:
        """Reward terms of a step that did not happen (a reset): zeros."""
        zero = torch.zeros(self.num_races, device=self.device)
        return {name: zero for name in TERM_NAMES}

    def render_video(self) -> torch.Tensor:
        """(R, H, W, 3) uint8 driver's views at ``VIDEO_SIZE`` (or ``render_size``)."""
        s, car = self.state, self.params.car
        return render_ego(self.track, s.x, s.y, s.yaw, self.ego, car.length_m, car.width_m, car.height_m,
                          self.video_camera, station=s.station)


def _check_actions(actions, shape: tuple, device: torch.device) -> torch.Tensor:
    """Actions as a float32 tensor on ``device``; raises ValueError on a wrong shape or NaN/inf."""
    a = actions.detach().float().cpu() if isinstance(actions, torch.Tensor) else \
        torch.as_tensor(np.asarray(actions, dtype=np.float32))
    if tuple(a.shape) != shape:
        raise ValueError(f"action must have shape {shape} (delta steering, throttle/brake per learner), "
                         f"got {tuple(a.shape)}")
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"action must be finite, got {a.tolist()}")
    return a.to(device)


def _check_render_mode(render_mode, modes) -> str | None:
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"unknown render_mode {render_mode!r}; valid: None, {', '.join(map(repr, modes))}")
    return render_mode


class RacingEnv(gym.Env):
    """One race: the learner (car 0) against BIAI opponents. ``gymnasium.make("gtvision/Tokyo-v0")``.

    Keyword arguments (the defaults are a training episode of paper IV-B; ``gtvision.env.RACE`` holds
    those of a race episode):

    ==============  ==============================================================================
    scenario        'tokyo', 'spa' or 'sarthe' (set by the registered id)
    num_opponents   0..19, a list of counts (each episode draws one), or None to sample each episode
                    from the curriculum {0, 1, 2, 3, 4, 7, 12, 19}
    start           'random' (a grid at a random point, the learner in a random slot) or 'grid_back'
                    (the start line, the learner last), or a list of them (each episode draws one)
    laps            race length (terminates when the learner finishes), or None (time-limited)
    bop             balance of performance (+-25% power and mass) on the opponents
    image_size      side of the square ``image`` (pixels; the paper's is 64)
    device          torch device of the simulation ('cpu', 'cuda', ...)
    render_mode     None or 'rgb_array' (``render()`` returns a ``render_size`` ego view)
    render_size     (rows, columns) of ``render()`` frames
    max_time_s      time limit / cap (s); None for the defaults of ``EpisodeConfig.max_time_s``
    stuck_s         truncate when the learner is stuck this long (s)
    reward          a ``gtvision.rewards.RewardConfig``; None: the paper's III-C weights and constants
    compile         run the physics through ``torch.compile`` (``gtvision.sim.core.SimParams.compile``)
    start_speed_mps speed of every car at the start (m/s; 0 = standing start, the default), or a list of
                    speeds each episode draws one of (``[0, 20]``: standing and rolling starts)
    render_image    False: the ``image`` observation is black, not rendered (for learners that read no
                    image, as the GT Sophy baseline; ``gtvision.env.env_kwargs_for``)
    contact_yaw_share  share of a car-car impulse's yaw kick applied (``gtvision.sim.core.SimParams``; the
                    default 0.35, 1 the rigid body's: bumps spin cars far more often)
    situations      None, or a list of dicts of ``num_opponents``, ``start``, ``start_speed_mps``, ``bop``,
                    ``stuck_s``, ``learner_yaw_deg`` and ``start_m``: each episode draws one and begins as it
                    says (unnamed keys as above), e.g.
                    ``[{}, {"start": "grid_back", "num_opponents": 19, "start_speed_mps": 0, "bop": false}]``
    learner_yaw_deg the learner's heading at the start relative to the course (degrees, left positive), or a
                    range ``[lo, hi]`` each episode draws from; a rolling start keeps its velocity along the
                    course (a spin)
    start_m         None, or a range ``[lo, hi]`` of course distance (m) where a 'random' start's grid stands
    ==============  ==============================================================================
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": core.CONTROL_HZ}

    def __init__(self, scenario: str = "tokyo", num_opponents: int | list[int] | None = None,
                 start: str | list[str] = "random", laps: int | None = None, bop: bool = True,
                 image_size: int = IMAGE_SIZE, device="cpu", render_mode: str | None = None,
                 render_size: tuple = VIDEO_SIZE, max_time_s: float | None = None, stuck_s: float = STUCK_S,
                 reward: RewardConfig | None = None, compile: bool = False,
                 start_speed_mps: float | tuple[float, ...] = 0.0, render_image: bool = True,
                 contact_yaw_share: float = core.CAR_CONTACT_YAW_SHARE, situations: list[dict] | None = None,
                 learner_yaw_deg: float | list[float] = 0.0, start_m: list[float] | None = None):
        self.render_mode = _check_render_mode(render_mode, self.metadata["render_modes"])
        episode = EpisodeConfig(num_opponents, start, laps, bop, max_time_s, stuck_s, start_speed_mps, situations,
                                learner_yaw_deg, start_m)
        self.batch = RaceBatch(scenario, 1, episode, image_size, render_size, device, reward, compile, render_image,
                               contact_yaw_share)
        self.observation_space = observation_space(image_size, self.batch.max_steer_rad)
        self.action_space = action_space()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A new episode (drawn from the generator seeded by ``seed``); ``options`` is unused."""
        super().reset(seed=seed)
        self.batch.rngs = [self.np_random]
        self.batch.reset_races([0])
        return self._obs(), self._info(self.batch.zero_terms())

    def step(self, action):
        if self.batch.state is None:
            raise RuntimeError("call reset() before step()")
        reward, terms, terminated, truncated = self.batch.advance(
            _check_actions(action, (2,), self.batch.device).view(1, 2))
        return (self._obs(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info(terms))

    def biai_action(self) -> np.ndarray:
        """(2,) float32 the BIAI's action for the learner's car in the current state."""
        if self.batch.state is None:
            raise RuntimeError("call reset() before biai_action()")
        return self.batch.biai_actions()[0].cpu().numpy()

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() needs render_mode='rgb_array' (gymnasium.make(id, render_mode=...))")
            return None
        if self.batch.state is None:
            raise RuntimeError("call reset() before render()")
        return self.batch.render_video()[0].cpu().numpy()

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v[0].cpu().numpy() for k, v in self.batch.observe().items()}

    def _info(self, terms) -> dict:
        return {k: v[0].item() for k, v in self.batch.info(terms).items()}


class RacingVectorEnv(VectorEnv):
    """``num_envs`` races in one batched simulator. ``gymnasium.make_vec("gtvision/Tokyo-v0", num_envs=N)``.

    Keyword arguments: those of :class:`RacingEnv`. Autoreset: ``AutoresetMode.NEXT_STEP`` (see the
    module docstring). ``reset(seed=s)`` seeds sub-environment i with ``s + i`` (or ``seed`` may be a
    list of one seed per sub-environment); ``reset()`` without a seed continues every sub-environment's
    own random stream. ``render()`` returns one ``render_size`` frame per sub-environment.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": core.CONTROL_HZ,
                                "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, scenario: str = "tokyo", num_opponents: int | list[int] | None = None,
                 start: str | list[str] = "random", laps: int | None = None, bop: bool = True,
                 image_size: int = IMAGE_SIZE, device="cpu", render_mode: str | None = None,
                 render_size: tuple = VIDEO_SIZE, max_time_s: float | None = None, stuck_s: float = STUCK_S,
                 reward: RewardConfig | None = None, compile: bool = False,
                 start_speed_mps: float | tuple[float, ...] = 0.0, render_image: bool = True,
                 contact_yaw_share: float = core.CAR_CONTACT_YAW_SHARE, situations: list[dict] | None = None,
                 learner_yaw_deg: float | list[float] = 0.0, start_m: list[float] | None = None):
        self.render_mode = _check_render_mode(render_mode, self.metadata["render_modes"])
        episode = EpisodeConfig(num_opponents, start, laps, bop, max_time_s, stuck_s, start_speed_mps, situations,
                                learner_yaw_deg, start_m)
        self.batch = RaceBatch(scenario, num_envs, episode, image_size, render_size, device, reward, compile,
                               render_image, contact_yaw_share)
        self.num_envs = self.batch.num_races
        self.single_observation_space = observation_space(image_size, self.batch.max_steer_rad)
        self.single_action_space = action_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        super().reset(seed=seed if isinstance(seed, (int, np.integer)) else None)
        n = self.num_envs
        if isinstance(seed, (list, tuple)):
            if len(seed) != n:
                raise ValueError(f"seed must be an int or a list of {n} seeds (one per sub-environment), "
                                 f"got {len(seed)} seeds")
            seeds = list(seed)
        elif seed is None:
            seeds = [None] * n
        else:
            seeds = [int(seed) + i for i in range(n)]
        # a sub-environment without a seed keeps its own stream; a fresh one gets entropy
        self.batch.rngs = [seeding.np_random(s)[0] if s is not None or rng is None else rng
                           for s, rng in zip(seeds, self.batch.rngs)]
        self.batch.reset_races(range(n))
        self._autoreset[:] = False
        return self._obs(), self.batch.info(self.batch.zero_terms())

    def step(self, actions):
        if self.batch.state is None:
            raise RuntimeError("call reset() before step()")
        a = _check_actions(actions, (self.num_envs, 2), self.batch.device)
        reward, terms, terminated, truncated = self.batch.advance(a)
        if self._autoreset.any():
            # NEXT_STEP: the sub-environments that ended last step start their next episode now
            self.batch.reset_races(np.nonzero(self._autoreset)[0])
            was_done = torch.as_tensor(self._autoreset, device=self.batch.device)
            reward = reward.masked_fill(was_done, 0.0)
            terms = {k: v.masked_fill(was_done, 0.0) for k, v in terms.items()}
            terminated = terminated & ~was_done
            truncated = truncated & ~was_done
        terminated = terminated.cpu().numpy()
        truncated = truncated.cpu().numpy()
        self._autoreset = terminated | truncated
        return (self._obs(), reward.double().cpu().numpy(), terminated, truncated, self.batch.info(terms))

    def biai_actions(self) -> np.ndarray:
        """(num_envs, 2) float32 the BIAI's actions for the learners' cars in the current states."""
        if self.batch.state is None:
            raise RuntimeError("call reset() before biai_actions()")
        return self.batch.biai_actions().cpu().numpy()

    def biai_rescue(self) -> tuple[np.ndarray, np.ndarray]:
        """(num_envs, 2) float32 the BIAI's actions for the learners' cars and (num_envs,) bool whether each is in
        trouble (:meth:`RaceBatch.biai_rescue`)."""
        if self.batch.state is None:
            raise RuntimeError("call reset() before biai_rescue()")
        actions, trouble = self.batch.biai_rescue()
        return actions.cpu().numpy(), trouble.cpu().numpy()

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() needs render_mode='rgb_array' (make_vec(id, render_mode=...))")
            return None
        if self.batch.state is None:
            raise RuntimeError("call reset() before render()")
        return tuple(self.batch.render_video().cpu().numpy())

    def _obs(self) -> dict[str, np.ndarray]:
        return {k: v.cpu().numpy() for k, v in self.batch.observe().items()}
