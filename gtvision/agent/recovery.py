"""A recovery reflex: a three-point turn when the car has stopped, on on-board information alone.

Paper: none. The paper's agent needs none in GT7, or never shows one; ours race from the back of a 20-car grid
where a race ends unfinished when the learner gains no 10 m of course in 10 s (``gtvision.env.episodes.STUCK_S``),
and the vision students end such races standing, nose against a barrier after a spin or pushed into one, where the
teacher would back off and turn (LOG.md, the vision agent's ninth session). The BIAI has the same manoeuvre
(``gtvision.sim.biai``: hold the brake until reverse engages, steer the nose towards the course, drive on); it reads
where the course is, which the vision actor may not, so the reflex turns the nose to the side the car's own steering
points to, the side the policy wants to go.

The reflex (``AgentConfig.recovery``, off by default; a safety layer in the sense of :mod:`gtvision.agent.shield`,
in training and in racing, and ``gtvision export --set agent.recovery=true`` gives it to a trained agent) reads two
proprio features, the forward speed and the steering command, and keeps a clock per car. When the forward speed has
stayed below ``recovery_stop_mps`` (``STOP_MPS`` by default) for ``recovery_trigger_s`` seconds, it holds the brake
for ``recovery_reverse_s`` seconds (the simulator engages reverse after ``gtvision.sim.core.REVERSE_ENGAGE_S`` at a
standstill, as GT7's automatic gearbox does) with the steering at full lock away from the side the steering pointed
to (left when straight), then for ``recovery_exit_s`` seconds steers to full lock on that side with at least
``recovery_exit_throttle`` of throttle; then the policy drives again, and the clock starts afresh.

Measured (LOG.md, "A recovery reflex"): a turnaround for a car facing the wrong way, on the heading integrated from
the yaw rate, was tried and is not here: after wall hits it turned cars that were not facing backwards, and lost
more races than it saved. ``recovery_side='yaw'`` (the side back against the car's rotation of the last
``YAW_WINDOW_S``, the way out of a spin) picks the side that points the nose towards the course more often than the
steering's side (17 of 27 reflex starts against 9 of 27, with the simulator's heading as the judge) and frees as
many cars: on VT3's round 13 alone with the aid, 276 of 300 selection races finished against 277 with 'steer'
(LOG.md, "Which way the reflex turns"). It stays, off by default. Backing off for 5 s instead of 3 finished fewer
(265 of the 300 against 274), and so did starting after 1 s instead of 1.5 (270).

Two more options, off by default (LOG.md, "A car stopped at a wall"): ``swing`` (``AgentConfig.recovery_swing``)
releases the pedals after backing off until the steering has swung to the exit side's lock, where the plain reflex
drives out at once with its wheels still turned the backing way for the ~0.7 s the steering takes to pass the centre
(in E3Vh's 2.1 km incident, with the policy's 0.9 of throttle, back into the wall it had backed away from); ``forget``
(``AgentConfig.recovery_forget``) starts the actor's memory afresh when the reflex hands the wheel back. On VT3's
round 13 alone the same 300 selection races finish 274 with the swing and 277 with a fresh memory, against 277: no
help, and neither saves the 2.1 km incident (in race 287 of seed 100,000 a passing car knocks the reversing car
back towards the wall first).

``recovery_side='compass'`` (thirty-first session) takes the side from a compass on the frame the reflex begins on
(:mod:`gtvision.agent.compass`, a small CNN of its own stored with the exported agent): the nose turned back
towards the course, whichever way the steering points. Measured in LOG.md, "A compass for the reflex".

``crawl`` (``AgentConfig.recovery_crawl``, thirty-second session) turns a car round that the compass reads as facing
backwards below ``CRAWL_MPS``, the way the BIAI does (``gtvision.sim.biai``, 'facing the wrong way at a crawl'): full
lock towards the course at a crawl, the compass read on every step, until it reads the car along the course; where the
car stops (its nose at a barrier) for ``CRAWL_STOP_S``, a cycle of the reflex backs it off. Where the BIAI reads its
heading off the course, the compass reads it off the frame. Measured in LOG.md, "Turning round at a crawl".
The turn keeps the side of the reading it began with, and a back-off during it turns the nose on the same way
(thirty-fourth session): near 180 degrees the compass's side flips with a few degrees of heading, and a car that
followed every reading swung back and forth, each back-off undoing the turn.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..env.observations import PROPRIO_LAYOUT
from ..sim.core import CONTROL_HZ
from .stability import YAW_RATE

STOP_MPS = 1.0
"""The default of ``AgentConfig.recovery_stop_mps``: below this forward speed (m/s) the car counts as stopped
(reversing counts too)."""
NOT_ACTING = 2 ** 30
"""The clock of a car whose reflex has not begun (control steps)."""
STEER_GAIN = 10.0
"""Steering rate (action units) per unit of the steering command's distance to full lock."""
_BLOCKS = {name: start for name, start, _, _ in PROPRIO_LAYOUT}
FORWARD_SPEED = _BLOCKS["v"]
"""Index in ``proprio`` of the forward speed (m/s)."""
LATERAL_SPEED = FORWARD_SPEED + 1
"""Index in ``proprio`` of the sideways speed (m/s, + left)."""
STEER_COMMAND = _BLOCKS["u"]
"""Index in ``proprio`` of the steering command (commanded angle / full lock, + left)."""
YAW_WINDOW_S = 3.0
"""With ``side='yaw'``, the reflex turns the nose back against the car's rotation over this long before it begins
(the yaw rate's sum over the window): a car stopped after a spin turns back the way it came round."""
SIDES = ("steer", "yaw", "compass")
TURN_CYCLES = 6
"""With ``turn``: at most this many back-and-out cycles follow one another while the compass reads the car as
facing backwards (each turns it by some 20 to 40 degrees)."""
WRONG_WAY_MPS = 8.0
"""With ``wrong_way_s``: only below this forward speed (m/s) does a compass reading of 'backwards' count (a car
crawling the wrong way after a spin, not one racing)."""
CRAWL_MPS = 5.0
"""With ``crawl``: the speed (m/s) the car turns round at, and below which a compass reading of 'backwards' starts the
turn (the BIAI's ``turnaround_mps``). The speed over the ground, forward and sideways: a car sliding backwards in a
spin has a forward speed below it (negative) at any pace (thirty-third session: the first version, on the forward
speed, began a turn at 25 m/s in the middle of a spin, and the reflex's back-off with it, into the barrier; 200 races
of seed 130,000 finish 198 this way against 199: LOG.md, "The crawl and a spin")."""
CRAWL_GAIN = 0.45
"""With ``crawl``: pedal per m/s short of ``CRAWL_MPS`` (the BIAI's ``speed_gain``); the throttle at most
``CRAWL_THROTTLE``."""
CRAWL_THROTTLE = 0.4
CRAWL_ENTER = 2
"""With ``crawl``: the turn starts after this many readings of 'backwards' in a row (control steps), so that one
wrong reading on the grid does not start it."""
CRAWL_CLEAR = 10
"""With ``crawl``: the turn ends after this many readings of 'along the course' in a row (control steps): the nose
turns on for a second more, so that the policy does not take the wheel nearly square to the course, where it
drives into the barrier ahead (the wall bench: 185 escapes with 3, 196 with 10, 195 with 20)."""
CRAWL_STOP_S = 1.0
"""With ``crawl``: a turning car stopped this long (s; below ``recovery_stop_mps`` over the ground) has its nose at
a barrier: a reflex cycle backs it off (``trigger_s`` otherwise)."""
CRAWL_MAX_S = 12.0
"""With ``crawl``: a turn lasts at most this long (s), then the policy drives."""
SWING_LOCK = 0.9
"""With ``swing``: the reflex drives out once the steering command has passed this share of full lock on the
exit side."""
SWING_MAX_S = 2.0
"""With ``swing``: it waits for the steering at most this long (s) (lock to lock takes 1.33 s at the simulator's
3 degrees a step with the Tokyo car's 20-degree lock)."""


class RecoveryReflex:
    """The reflex's clocks for ``num_envs`` cars and its override of their actions (see the module).

    ``trigger_s``, ``reverse_s``, ``exit_s``, ``exit_throttle``, ``stop_mps``, ``side``, ``swing``, ``forget``,
    ``turn``, ``wrong_way_s``: ``AgentConfig.recovery_*``; ``compass``: the agent's compass (``side='compass'``). Call it
    with each step's actions (N, 2) in the action space's units (steering rate, throttle/brake) and the observations'
    ``proprio`` (N, 18); :meth:`reset` the cars whose episode ends."""

    def __init__(self, num_envs: int, trigger_s: float, reverse_s: float, exit_s: float, exit_throttle: float,
                 stop_mps: float = STOP_MPS, side: str = "steer", swing: bool = False, forget: bool = False,
                 compass=None, turn: bool = False, wrong_way_s: float = 0.0, crawl: bool = False):
        for name, value in (("trigger_s", trigger_s), ("reverse_s", reverse_s), ("exit_s", exit_s),
                            ("stop_mps", stop_mps)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"recovery {name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= exit_throttle <= 1.0:
            raise ValueError(f"recovery exit_throttle must be in [0, 1], got {exit_throttle!r}")
        if side not in SIDES:
            raise ValueError(f"recovery side must be one of {SIDES}, got {side!r}")
        if side == "compass" and compass is None:
            raise ValueError("recovery side 'compass' needs a compass (gtvision.agent.compass): export the agent "
                             "with `gtvision export --set agent.recovery=true --set agent.recovery_side=compass`, "
                             "which trains one and stores it with the agent")
        if turn and side != "compass":
            raise ValueError(f"recovery turn reads the compass: it needs side 'compass', got {side!r}")
        if not (math.isfinite(wrong_way_s) and wrong_way_s >= 0):
            raise ValueError(f"recovery wrong_way_s must be a finite number >= 0, got {wrong_way_s!r}")
        if wrong_way_s > 0 and side != "compass":
            raise ValueError(f"recovery wrong_way_s reads the compass: it needs side 'compass', got {side!r}")
        if crawl and side != "compass":
            raise ValueError(f"recovery crawl reads the compass: it needs side 'compass', got {side!r}")
        self.crawl = bool(crawl)
        """True: a car the compass reads as facing backwards below ``CRAWL_MPS`` turns round at a crawl (module)."""
        self.crawling = torch.zeros(num_envs, dtype=torch.bool)
        """With ``crawl``: the cars turning round."""
        self.crawl_steps = torch.zeros(num_envs, dtype=torch.long)
        """With ``crawl``: control steps since each car's turn began."""
        self.crawl_reads = torch.zeros(num_envs, dtype=torch.long)
        """With ``crawl``: readings in a row of 'backwards' (a car not turning) or 'along' (a turning car)."""
        self.crawl_side = torch.ones(num_envs)
        """With ``crawl``: the side (+1 left) each turning car steers to, from the reading its turn began with (its
        back-offs during the turn take it too: a three-point turn one way round)."""
        self._crawl_stop, self._crawl_max = round(CRAWL_STOP_S * CONTROL_HZ), round(CRAWL_MAX_S * CONTROL_HZ)
        self.wrong_way_s = wrong_way_s
        """> 0: the reflex also begins when the compass has read the car as facing backwards for this long (s) in a
        row below ``WRONG_WAY_MPS``, stopped or not (a car driving off the wrong way after a spin)."""
        self._wrong_way = max(round(wrong_way_s * CONTROL_HZ), 1)
        self.backwards = torch.zeros(num_envs, dtype=torch.long)
        """With ``wrong_way_s``: control steps in a row the compass has read each car as facing backwards."""
        self.compass = compass
        """With ``side='compass'``: the :class:`gtvision.agent.compass.Compass` that reads the side off the frame."""
        self.turn = bool(turn)
        """True: where a cycle ends with the compass reading the car as facing backwards, another begins at once
        (at most ``TURN_CYCLES`` in a row): a turn round in several points."""
        self.cycles = torch.zeros(num_envs, dtype=torch.long)
        """With ``turn``: the cycles each car's reflex has run in a row."""
        self.trigger_s, self.reverse_s, self.exit_s, self.exit_throttle = trigger_s, reverse_s, exit_s, exit_throttle
        self.stop_mps, self.side_rule, self.swing = stop_mps, side, bool(swing)
        self.forget = bool(forget)
        """True: the actor's memory starts afresh when the reflex hands the wheel back (:meth:`handing_back`;
        ``gtvision.agent.rollout.Rollout`` zeroes it)."""
        self._swing_max = round(SWING_MAX_S * CONTROL_HZ)
        self.yaw_rates = torch.zeros(num_envs, round(YAW_WINDOW_S * CONTROL_HZ))
        """With ``side='yaw'``: each car's yaw rates (rad/s) of the last ``YAW_WINDOW_S``, a ring over the steps."""
        self._ring = 0
        # the clocks count control steps (exact, where sums of 0.1 s in float32 drift)
        self._trigger, self._reverse, self._exit = (round(t * CONTROL_HZ) for t in (trigger_s, reverse_s, exit_s))
        self._trigger = max(self._trigger, 1)   # at least one step stopped
        self.stopped = torch.zeros(num_envs, dtype=torch.long)
        """How many control steps each car has been stopped while the reflex was not acting."""
        self.since = torch.full((num_envs,), NOT_ACTING, dtype=torch.long)
        """Control steps since each car's reflex began (``NOT_ACTING``: it has not)."""
        self.side = torch.ones(num_envs)
        """The side (+1 left, -1 right) each car's last reflex turns the nose to."""
        self.count = torch.zeros(num_envs, dtype=torch.long)
        """How many times each car's reflex has begun since its last :meth:`reset`."""
        self.waited = torch.zeros(num_envs, dtype=torch.long)
        """With ``swing``: control steps each car's current reflex has waited, pedals released, for its steering to
        swing to the exit side (they lengthen its reflex)."""

    @classmethod
    def for_agent(cls, agent, num_envs: int) -> "RecoveryReflex | None":
        """The reflex of ``agent``'s configuration (``config.recovery``), or None (off, or no configuration)."""
        config = getattr(agent, "config", None)
        if config is None or not getattr(config, "recovery", False):
            return None
        return cls(num_envs, config.recovery_trigger_s, config.recovery_reverse_s, config.recovery_exit_s,
                   config.recovery_exit_throttle, getattr(config, "recovery_stop_mps", STOP_MPS),
                   getattr(config, "recovery_side", "steer"), getattr(config, "recovery_swing", False),
                   getattr(config, "recovery_forget", False), getattr(agent, "compass", None),
                   getattr(config, "recovery_turn", False), getattr(config, "recovery_wrong_way_s", 0.0),
                   getattr(config, "recovery_crawl", False))

    def acting(self) -> torch.Tensor:
        """(N,) bool: the cars whose reflex drives this step."""
        return self.since < self._reverse + self._exit + self.waited

    def handing_back(self) -> torch.Tensor:
        """(N,) bool, after a call: the cars whose reflex drove this step for the last time (the policy drives
        the next)."""
        return self.acting() & (self.since + 1 >= self._reverse + self._exit + self.waited)

    def __call__(self, action: np.ndarray | torch.Tensor, proprio: np.ndarray | torch.Tensor,
                 image: np.ndarray | torch.Tensor | None = None):
        """The actions (same type and shape as ``action``) with the reflex's in place of the policy's where it
        acts; advances the clocks by one control step. ``image`` (N, H, W, 3): the frames, read by the compass
        (``side='compass'``) where a reflex begins."""
        p = torch.as_tensor(proprio).float().cpu()
        speed, steer = p[:, FORWARD_SPEED], p[:, STEER_COMMAND]
        planar = torch.hypot(speed, p[:, LATERAL_SPEED]) if self.crawl else speed   # not a spin's slide
        halted = torch.where(self.crawling, planar < self.stop_mps, speed < self.stop_mps)
        self.stopped = torch.where(halted & ~self.acting(), self.stopped + 1, torch.zeros_like(self.stopped))
        start = self.stopped >= torch.where(self.crawling, self._crawl_stop, self._trigger)
        compass_rows = logits = None
        if self.side_rule == "compass":
            last = self.since == self._reverse + self._exit + self.waited - 1   # a cycle's last step was the one before
            again = last & (self.cycles < TURN_CYCLES) if self.turn else torch.zeros_like(start)
            watch = (speed < WRONG_WAY_MPS) & ~self.acting() if self.wrong_way_s > 0 else torch.zeros_like(start)
            slow = ((planar < CRAWL_MPS) & ~self.acting()) | self.crawling if self.crawl else torch.zeros_like(start)
            compass_rows = torch.nonzero(start | again | watch | slow).squeeze(1)
            backwards = torch.zeros_like(start)
            read = torch.zeros_like(start)
            read[compass_rows] = True
            if len(compass_rows):
                if image is None:
                    raise ValueError("recovery side 'compass' reads the frame: call the reflex with image=")
                frames = torch.as_tensor(image)
                with torch.no_grad():
                    logits = self.compass(frames[compass_rows.to(frames.device)]).cpu()
                backwards[compass_rows] = logits[:, 0] < 0
            if self.wrong_way_s > 0:
                self.backwards = torch.where(watch & backwards, self.backwards + 1, torch.zeros_like(self.backwards))
                start = start | (self.backwards >= self._wrong_way)
                self.backwards = torch.where(start, torch.zeros_like(self.backwards), self.backwards)
            fresh = start.clone()
            start = start | (again & backwards)
        else:
            fresh = start.clone()
        side = torch.where(steer < -0.05, -1.0, 1.0)
        if self.side_rule == "yaw":
            self.yaw_rates[:, self._ring] = p[:, YAW_RATE]
            self._ring = (self._ring + 1) % self.yaw_rates.shape[1]
            turned = self.yaw_rates.sum(1)
            side = torch.where(turned != 0, -torch.sign(turned), side)
        elif logits is not None:
            side[compass_rows] = torch.where(logits[:, 1] > 0, -1.0, 1.0)   # nose left: turn it right, to the course
        if self.crawl:
            self._crawl_update(read, backwards, planar, side, start)
            side = torch.where(self.crawling, self.crawl_side, side)   # a back-off in a turn turns it on
        self.side = torch.where(start, side, self.side)
        self.since = torch.where(start, torch.zeros_like(self.since), (self.since + 1).clamp(max=NOT_ACTING))
        self.stopped = torch.where(start, torch.zeros_like(self.stopped), self.stopped)
        self.count += start.long()
        self.cycles = torch.where(fresh, torch.ones_like(self.cycles), self.cycles + (start & ~fresh).long())
        self.waited = torch.where(start, torch.zeros_like(self.waited), self.waited)
        backing = self.since < self._reverse
        swinging = torch.zeros_like(backing)
        if self.swing:   # not yet driven out, the steering short of the exit side's lock, not waited too long
            swinging = ((self.since - self._reverse == self.waited) & (self.side * steer < SWING_LOCK)
                        & (self.waited < self._swing_max))
            self.waited = self.waited + swinging.long()
        leaving = ~backing & ~swinging & self.acting()
        turning = self.crawling & ~self.acting()
        if not bool((backing | swinging | leaving | turning).any()):
            return action
        target = torch.where(backing, -self.side, torch.where(turning, self.crawl_side, self.side))
        steer_rate = (STEER_GAIN * (target - steer)).clamp(-1.0, 1.0)
        out = torch.as_tensor(action).clone()
        dev = out.device
        out[:, 0] = torch.where((backing | swinging | leaving | turning).to(dev), steer_rate.to(out), out[:, 0])
        crawl_pedal = (CRAWL_GAIN * (CRAWL_MPS - speed)).clamp(-1.0, CRAWL_THROTTLE)
        pedal = torch.where(turning.to(dev), crawl_pedal.to(out), out[:, 1])
        pedal = torch.where(leaving.to(dev), pedal.clamp(min=self.exit_throttle), pedal)
        pedal = torch.where(swinging.to(dev), torch.zeros_like(pedal), pedal)
        out[:, 1] = torch.where(backing.to(dev), torch.full_like(pedal, -1.0), pedal)
        return out if torch.is_tensor(action) else out.numpy().astype(np.asarray(action).dtype)

    def _crawl_update(self, read, backwards, planar, side, start) -> None:
        """With ``crawl``: start, steer and end the turns at a crawl from this step's compass readings (``read``:
        the cars it read; ``backwards``, ``side``: what it read; ``planar``: the speed over the ground, m/s)."""
        slow_back = read & backwards & (planar < CRAWL_MPS) & ~self.crawling
        along = read & ~backwards & self.crawling
        self.crawl_reads = torch.where(slow_back | along, self.crawl_reads + 1, torch.zeros_like(self.crawl_reads))
        begin = ~self.crawling & (self.crawl_reads >= CRAWL_ENTER) & ~start & ~self.acting()
        self.crawl_steps = torch.where(begin, torch.zeros_like(self.crawl_steps), self.crawl_steps + 1)
        end = self.crawling & ((self.crawl_reads >= CRAWL_CLEAR) | (self.crawl_steps >= self._crawl_max))
        self.crawling = (self.crawling | begin) & ~end
        self.crawl_reads = torch.where(begin | end, torch.zeros_like(self.crawl_reads), self.crawl_reads)
        self.stopped = torch.where(begin, torch.zeros_like(self.stopped), self.stopped)
        self.crawl_side = torch.where(begin, side, self.crawl_side)

    def reset(self, mask: np.ndarray | torch.Tensor) -> None:
        """Start the clocks afresh for the cars in ``mask`` (N,) bool (their episode ended)."""
        mask = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
        self.stopped[mask] = 0
        self.since[mask] = NOT_ACTING
        self.count[mask] = 0
        self.waited[mask] = 0
        self.cycles[mask] = 0
        self.backwards[mask] = 0
        self.crawling[mask] = False
        self.crawl_steps[mask] = 0
        self.crawl_reads[mask] = 0
        self.yaw_rates[mask] = 0.0

    def state_dict(self) -> dict:
        keys = ("stopped", "since", "side", "count", "yaw_rates", "waited", "cycles", "backwards", "crawling",
                "crawl_steps", "crawl_reads", "crawl_side")
        return {**{key: getattr(self, key).clone() for key in keys}, "ring": self._ring}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            if key == "ring":
                self._ring = int(value)
            else:
                setattr(self, key, value.clone())
