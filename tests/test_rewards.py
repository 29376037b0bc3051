"""The eight reward terms of paper III-C, each against a case computed by hand.

Pure terms first (exact numbers), then the terms read from real simulator steps: three tyres off the
track for a second at 20 m/s, a rear-end bump, an overtake across the start line.
"""
from __future__ import annotations

import math

import pytest
import torch

from conftest import place_cars
from gtvision import rewards
from gtvision.rewards import RewardConfig
from gtvision.sim import core
from gtvision.sim.track import Surface

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def oval(make_oval):
    """A flat oval: two 2 km straights, 14 m wide, 10 m of tarmac run-off (no extra drag)."""
    return make_oval("oval_tarmac", width_m=14.0, runoff_m=10.0,
                     runoff_surface=(Surface.TARMAC_RUNOFF, Surface.TARMAC_RUNOFF))


def _t(*values):
    return torch.tensor(values, dtype=torch.float32)


# ---------------------------------------------------------------------------- the paper's numbers


def test_weights_and_constants_are_the_papers():
    cfg = RewardConfig()
    assert cfg.weights() == {"progress": 1.0, "off_course": 10.0, "wall": 20.0, "car_velocity": 0.5,
                             "car_fixed": 6.0, "overtaking": 3.0, "steering_change": 0.5,
                             "steering_history": 5.0}
    assert (cfg.c_r, cfg.c_f, cfg.c_s, cfg.c_o, cfg.c_d) == (-20.0, 40.0, 182.883569, 0.034, 0.014)
    assert set(cfg.weights()) == set(rewards.TERM_NAMES) and len(rewards.TERM_NAMES) == 8


def test_weighted_sum_is_lambda_times_each_term():
    terms = {name: torch.tensor([float(k + 1)]) for k, name in enumerate(rewards.TERM_NAMES)}
    # 1*1 + 10*2 + 20*3 + 0.5*4 + 6*5 + 3*6 + 0.5*7 + 5*8
    assert rewards.weighted_sum(terms).item() == pytest.approx(1 + 20 + 60 + 2 + 30 + 18 + 3.5 + 40)


# ---------------------------------------------------------------------------- each term by hand


def test_progress_is_the_change_of_course_position():
    assert rewards.progress(_t(105.5, 10.0), _t(100.0, 12.0)).tolist() == pytest.approx([5.5, -2.0])


def test_three_tyres_off_for_one_second_at_20_mps_costs_20_before_weighting():
    # ten 0.1 s control steps, each adding 0.1 s of off-course time at 20 m/s
    t = torch.arange(11, dtype=torch.float32) * 0.1
    total = sum(rewards.off_course(t[k + 1:k + 2], t[k:k + 1], _t(20.0)) for k in range(10))
    assert total.item() == pytest.approx(-20.0, abs=1e-4)
    # on track the accumulator does not grow: no penalty whatever the speed
    assert rewards.off_course(_t(1.0), _t(1.0), _t(80.0)).item() == 0.0


def test_wall_contact_costs_time_in_contact_times_speed():
    # half a control step against the barrier at 30 m/s (backwards: the speed's size counts)
    assert rewards.wall(_t(2.05), _t(2.0), _t(-30.0)).item() == pytest.approx(-1.5, abs=1e-4)
    assert rewards.wall(_t(2.0), _t(2.0), _t(30.0)).item() == 0.0


def test_car_velocity_penalty_is_the_squared_speed_difference_of_new_contacts():
    # a new contact at a 3 m/s speed difference this step: -9; nothing new: 0
    assert rewards.car_velocity(_t(4.0 + 9.0, 4.0), _t(4.0, 4.0)).tolist() == [-9.0, 0.0]


def test_car_fixed_penalty_is_minus_one_per_step_with_a_contact():
    assert rewards.car_fixed(_t(0.35, 0.2, 0.0), _t(0.3, 0.2, 0.0)).tolist() == [-1.0, 0.0, 0.0]


def test_an_overtake_inside_the_window_pays_the_relative_progress():
    # gaps p^i - p (m) of three opponents, a step before and now
    prev = torch.tensor([[5.0, 45.0, -25.0]])
    now = torch.tensor([[-3.0, 38.0, -26.0]])  # passes car 0 (8 m gained), closes on car 1 (7 m)
    counted = torch.tensor([[True, True, True]])
    # car 0 is inside (c_r, c_f) = (-20, 40): +8; car 1 now at 38 m is inside: +7; car 2 is behind c_r
    assert rewards.overtaking(now, prev, counted).item() == pytest.approx(8.0 + 7.0)
    # losing ground inside the window costs as much
    assert rewards.overtaking(prev[:, :1], now[:, :1], counted[:, :1]).item() == pytest.approx(-8.0)
    # a car that is not an opponent (the learner itself, a parked car) never counts
    assert rewards.overtaking(now, prev, torch.tensor([[False, True, True]])).item() == pytest.approx(7.0)
    # the window is open: exactly at c_f does not count
    assert rewards.overtaking(_t(40.0).view(1, 1), _t(45.0).view(1, 1), counted[:, :1]).item() == 0.0


def test_steering_change_is_minus_the_absolute_change():
    assert rewards.steering_change(_t(0.01, -0.02), _t(0.04, 0.01)).tolist() == pytest.approx([-0.03, -0.03])


def test_steering_history_is_the_logistic_and_grows_with_the_oscillation():
    c = RewardConfig()
    # a reversal whose size Delta = |delta_t| + |delta_{t-1}| equals c^o sits at the logistic's middle
    half = c.c_o / 2
    assert rewards.steering_history(_t(half), _t(-half)).item() == pytest.approx(-0.5)
    # by hand: -1 / (1 + exp(-c_s (Delta - c_o))) at Delta = 0.05 rad
    by_hand = -1.0 / (1.0 + math.exp(-c.c_s * (0.05 - c.c_o)))
    assert rewards.steering_history(_t(0.02), _t(-0.03)).item() == pytest.approx(by_hand, rel=1e-5)
    # the larger the zig-zag, the larger the penalty, from 0.25 at the smallest reversal to 1
    sizes = torch.linspace(0.015, 3 * math.pi / 180, 20)   # up to the 3-degree step limit
    pen = rewards.steering_history(sizes, -sizes)
    assert (pen[1:] < pen[:-1]).all()
    assert pen[0].item() == pytest.approx(-1.0 / (1.0 + math.exp(-c.c_s * (0.03 - c.c_o))), rel=1e-5)
    assert pen[-1].item() == pytest.approx(-1.0, abs=1e-4)
    # no reversal (same sign), or a change inside the dead band c^d: no penalty
    assert rewards.steering_history(_t(0.04), _t(0.03)).item() == 0.0
    assert rewards.steering_history(_t(0.05), _t(-0.01)).item() == 0.0


# ---------------------------------------------------------------------------- from simulator steps


def _terms(prev, now, length_m, steer=None):
    R, C = now.x.shape
    steer = torch.zeros(R, 3) if steer is None else steer
    opponents = torch.arange(C).expand(R, C) > 0
    return rewards.reward_terms(prev, now, steer, opponents, length_m)


def test_three_tyres_off_track_for_a_second_in_the_simulator(oval):
    """A car with three tyres on the tarmac run-off, coasting at 20 m/s for ten control steps."""
    params = core.make_params(oval, "alfa_romeo_4c_14")
    car = params.car
    psi = math.radians(2.0)  # pointing slightly out: three tyres beyond the left limit at first
    tyre_lat = sorted((f * math.sin(psi) + l * math.cos(psi) for f, l in core._wheel_offsets(car)),
                      reverse=True)
    edge = float(oval.width_left_m[0])
    lat0 = edge - 0.5 * (tyre_lat[2] + tyre_lat[3])  # midway between the 3rd and 4th tyre's reach
    state = place_cars(core.reset(params, 1, 1), oval, 300.0, lat0, psi, speed_mps=20.0)
    total, speeds = 0.0, []
    for _ in range(10):
        now = core.step(state, torch.zeros(1, 1, 2), params)
        assert now.off_course.all()
        total += _terms(state, now, oval.length_m)["off_course"].item()
        speeds.append(now.speed_mps.item())
        state = now
    assert state.off_course_time_s.item() == pytest.approx(1.0, abs=1e-4)
    assert min(speeds) > 19.5  # coasting on tarmac run-off: the speed stays near 20 m/s
    assert total == pytest.approx(-20.0, rel=0.02)
    assert total == pytest.approx(-0.1 * sum(speeds), rel=1e-4)


def test_a_rear_end_bump_costs_the_squared_closing_speed_and_one_fixed_penalty(oval):
    params = core.make_params(oval, "alfa_romeo_4c_14")
    car = params.car
    # the learner (car 0) 0.35 m behind car 1, 6 m/s faster
    state = place_cars(core.reset(params, 1, 2), oval, torch.tensor([[300.0 - car.length_m - 0.35, 300.0]]),
                       0.0, speed_mps=torch.tensor([[26.0, 20.0]]))
    got = []
    for k in range(4):  # the learner coasts into the bump, then brakes away
        now = core.step(state, torch.tensor([[[0.0, 0.0 if k < 2 else -1.0], [0.0, 0.0]]]), params)
        got.append(_terms(state, now, oval.length_m))
        state = now
    velocity = [t["car_velocity"].item() for t in got]
    fixed = [t["car_fixed"].item() for t in got]
    assert velocity[0] == pytest.approx(-36.0, rel=0.1) and velocity[1:] == [0.0] * 3
    assert fixed[0] == -1.0 and sum(fixed) >= -2.0  # the bump lasts a step or two, then they part
    assert fixed[-1] == 0.0


def test_overtaking_across_the_start_line_counts_on_the_closed_course(oval):
    params = core.make_params(oval, "alfa_romeo_4c_14")
    L = oval.length_m
    # the learner 5 m before the line, the opponent 3 m after it: 8 m ahead, not a lap behind
    lat = torch.tensor([[0.0, 3.0]])
    prev = place_cars(core.reset(params, 1, 2), oval, torch.tensor([[L - 5.0, 3.0]]), lat)
    now = place_cars(prev, oval, torch.tensor([[L - 5.0 + 12.0, 3.0 + 2.0]]), lat)
    # the learner moved 12 m, the opponent 2 m: the gap fell from 8 m to -2 m, 10 m gained
    assert rewards.course_gap_m(now.s_m, now.s_m[:, :1], L)[0, 1].item() == pytest.approx(-2.0, abs=1e-3)
    assert _terms(prev, now, L)["overtaking"].item() == pytest.approx(10.0, abs=1e-3)
