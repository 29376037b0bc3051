"""The simulator's contract: what a training run, a race and a reward rely on.

Determinism, robustness under abuse, barriers that hold at top speed, the 3-of-4-tyres track-limit
rule, contact and wall accumulators, control validation, the 10 Hz / 60 Hz timing of paper III-B,
clear errors for bad names, a clean BIAI lap, and the cars' published performance.
"""
from __future__ import annotations

import dataclasses
import math
import shutil

import pytest
import torch

from conftest import place_cars
from gtvision.scenarios import SCENARIO_NAMES, get_scenario
from gtvision.sim import core
from gtvision.sim.biai import biai_controls, biai_rescuing, driving_plan
from gtvision.sim.cars import CAR_NAMES, CARS, get_car
from gtvision.sim.circuits import TRACK_NAMES, load_track
from gtvision.sim.race import final_places

TICK_S = 1.0 / core.PHYSICS_HZ
STEP_S = core.TICKS_PER_CONTROL * TICK_S


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def oval(make_oval):
    """A flat oval: two 2 km straights, 14 m wide, 10 m of grass run-off before the barriers."""
    return make_oval("oval", width_m=14.0, runoff_m=10.0)


def _corner_excess_m(state: core.SimState, params: core.SimParams) -> torch.Tensor:
    """How far the body's outermost corner lies beyond the barrier on the car's side (m; <= 0 inside)."""
    track, car = params.track, params.car
    psi = state.yaw - track.heading_rad[state.station]
    hl, hw = car.length_m / 2, car.width_m / 2
    reach = hl * torch.sin(psi).abs() + hw * torch.cos(psi).abs()
    left = state.lat_m + reach - track.wall_left_m[state.station]
    right = -state.lat_m + reach - track.wall_right_m[state.station]
    return torch.maximum(left, right)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal, NaN where NaN (lap times before the first lap are NaN)."""
    return a.shape == b.shape and a.dtype == b.dtype and bool(
        (a == b).all() if not a.is_floating_point() else ((a == b) | (a.isnan() & b.isnan())).all())


def _pedal(R: int, C: int, steer: float, pedal: float) -> torch.Tensor:
    return torch.tensor([steer, pedal]).expand(R, C, 2).clone()


# ---------------------------------------------------------------------------- determinism


def _bop_rollout(params, seed: int, steps: int = 25):
    state = core.reset(params, 2, 20, bop=True, generator=torch.Generator().manual_seed(seed))
    first = state
    snapshot = {f.name: getattr(state, f.name).clone() for f in dataclasses.fields(state)}
    ctl_gen = torch.Generator().manual_seed(1234)  # the same controls whatever the BoP seed
    for _ in range(steps):
        ctl = torch.rand(2, 20, 2, generator=ctl_gen) * 2 - 1
        ctl[..., 1] = ctl[..., 1].abs()  # mostly on the throttle: the grid moves off and bumps
        state = core.step(state, ctl, params)
    return first, snapshot, state


def test_same_seed_is_bitwise_identical_and_step_is_pure():
    params = core.make_params("spa", "alfa_romeo_4c_14")
    first, snapshot, a = _bop_rollout(params, seed=7)
    _, _, b = _bop_rollout(params, seed=7)
    for name in ("x", "y", "yaw", "vx", "vy", "yaw_rate", "contact_dv_sq", "car_contact_time_s"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.speed_mps.mean() > 10.0  # the cars really drove
    # step never changes its input
    for name, value in snapshot.items():
        assert _same(getattr(first, name), value), name
    # a different seed draws a different balance of performance, hence a different race
    _, _, c = _bop_rollout(params, seed=8)
    assert not torch.equal(a.power_scale, c.power_scale)
    assert not torch.equal(a.x, c.x)
    assert (a.power_scale - 1).abs().max() <= 0.25 and (a.mass_scale - 1).abs().max() <= 0.25



@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_physics_matches_the_eager_physics_and_repeats():
    """``compile=True`` fuses the tick (inductor): the same race to float32 rounding, bitwise repeatable."""
    eager = core.make_params("spa", "alfa_romeo_4c_14")
    compiled = dataclasses.replace(eager, compile=True)
    _, _, a = _bop_rollout(eager, seed=7)
    _, _, b = _bop_rollout(compiled, seed=7)
    _, _, c = _bop_rollout(compiled, seed=7)
    assert float(b.contact_count.sum()) > 0  # the grid bumped: the narrow phase ran between the graphs
    for name in ("x", "y", "yaw", "vx", "vy", "yaw_rate", "car_contact_time_s"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=2e-3, rtol=1e-4, msg=name)
        assert torch.equal(getattr(b, name), getattr(c, name)), name
    with pytest.raises(TypeError, match="compile"):
        core.make_params("spa", "alfa_romeo_4c_14", compile="yes")


# ---------------------------------------------------------------------------- robustness


def test_twenty_cars_under_random_extreme_controls_stay_finite_and_inside_the_barriers():
    """Tokyo (walls at the track edges), 2 races x 20 cars from a 216 km/h rolling start,
    full lock and full pedals chosen at random every step: 3000 physics ticks."""
    params = core.make_params("tokyo", "audi_tt_cup_16")
    track = params.track
    R, C, steps = 2, 20, 500
    gen = torch.Generator().manual_seed(3)
    state = core.reset(params, R, C, start="random", bop=True, generator=gen, initial_speed_mps=60.0)
    allowed_nonfinite = {"lap_start_time_s", "last_lap_time_s", "best_lap_time_s", "finish_time_s"}
    half_diag = math.hypot(params.car.length_m, params.car.width_m) / 2
    max_speed = worst_corner = 0.0
    wall_steps = car_steps = 0
    for k in range(steps):
        steer = torch.randint(0, 2, (R, C), generator=gen).float() * 2 - 1
        pedal = torch.where(torch.rand(R, C, generator=gen) < 0.75, 1.0, -1.0)
        state = core.step(state, torch.stack([steer, pedal], -1), params)
        for f in dataclasses.fields(state):
            v = getattr(state, f.name)
            if v.is_floating_point():
                ok = torch.isfinite(v)
                if f.name in allowed_nonfinite:  # NaN / inf stand for "no lap yet", by design
                    ok = ok | torch.isnan(v) | (torch.isinf(v) & (f.name == "best_lap_time_s"))
                assert bool(ok.all()), f"non-finite {f.name} at step {k}"
        wall_l, wall_r = track.wall_left_m[state.station], track.wall_right_m[state.station]
        beyond = torch.where(state.lat_m > 0, state.lat_m - wall_l, -state.lat_m - wall_r)
        assert beyond.max() <= half_diag + 0.05, f"a car left the world at step {k}"
        worst_corner = max(worst_corner, float(_corner_excess_m(state, params).max()))
        max_speed = max(max_speed, float(state.speed_mps.max()))
        assert max_speed < 150.0
        wall_steps += int(state.wall_contact.sum())
        car_steps += int(state.car_contact.sum())
    # a car pushed by another can poke a little through a barrier for a tick (the push is resolved
    # after the barrier within a tick; the next tick's barrier pass puts it back), never more
    assert worst_corner < 0.25
    # the abuse really happened: fast cars, walls and cars hit
    assert max_speed > 55.0 and wall_steps > 100 and car_steps > 100
    assert int(state.contact_count.sum()) > 0


# ---------------------------------------------------------------------------- barriers


def test_sarthe_car_aimed_at_the_wall_at_top_speed_stays_inside():
    """Paper IV-A: the Hyundai reaches ~340 km/h at Sarthe. Aimed 35 degrees at either barrier
    of the Mulsanne straight at 342 km/h, full throttle, it is stopped by the barrier at every tick."""
    params = core.make_params("sarthe", "hyundai_n_2025_vgt_gr1")
    track = params.track
    s0 = 1700.0  # on the Mulsanne straight
    st0 = track.station_of_s(torch.tensor(s0))
    window = track.curvature[int(st0) - 50:int(st0) + 150]
    assert window.abs().max() < 1e-4, "s0 is no longer on a straight"
    state = core.reset(params, 2, 1, initial_speed_mps=95.0)
    yaw_off = torch.tensor([[math.radians(35.0)], [math.radians(-35.0)]])  # race 0 left, race 1 right
    state = place_cars(state, track, s0, 0.0, yaw_off, speed_mps=95.0)

    excess_per_tick = []
    real_tick = core._tick

    def watched_tick(st, steer, p):
        out = real_tick(st, steer, p)
        excess_per_tick.append(float(_corner_excess_m(out, p).max()))
        return out

    full_throttle = _pedal(2, 1, 0.0, 1.0)
    times = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "_tick", watched_tick)
        for _ in range(20):
            state = core.step(state, full_throttle, params)
            times.append(state.wall_time_s.clone())
            assert torch.isfinite(state.x).all() and torch.isfinite(state.vx).all()
    assert len(excess_per_tick) == 20 * core.TICKS_PER_CONTROL
    assert max(excess_per_tick) <= 0.02  # never through the barrier, at any 60 Hz tick
    assert state.wall_contact.all()
    assert (state.lat_m[0] > 0).all() and (state.lat_m[1] < 0).all()  # each against its own wall
    assert (times[-1] > times[1]).all() and (times[-1] > 1.0).all()
    assert (state.speed_mps < 80.0).all()  # the impact took speed off


def test_wall_time_grows_only_in_contact_with_a_barrier(oval):
    params = core.make_params(oval, "alfa_romeo_4c_14")
    state = place_cars(core.reset(params, 1, 1, initial_speed_mps=40.0), oval, 300.0, 0.0, speed_mps=40.0)
    cruise = _pedal(1, 1, 0.0, 0.3)
    for _ in range(30):  # a clean run down the straight
        state = core.step(state, cruise, params)
        assert not state.wall_contact.any()
    assert float(state.wall_time_s) == 0.0
    # drift into the left barrier (17 m from the centerline) at 10 degrees
    state = place_cars(state, oval, float(state.s_m), 0.0, math.radians(10.0), speed_mps=30.0)
    touched = 0
    for _ in range(60):
        before = float(state.wall_time_s)
        state = core.step(state, cruise, params)
        grown = float(state.wall_time_s) - before
        assert -1e-6 <= grown <= STEP_S + 1e-6
        touched += bool(state.wall_contact)
        if grown == 0:
            assert not state.wall_contact.any()
    assert touched > 0 and float(state.wall_time_s) > 0
    # back on the centerline, clear of the wall: the accumulator stops
    held = float(state.wall_time_s)
    state = place_cars(state, oval, float(state.s_m), 0.0, speed_mps=30.0)
    for _ in range(10):
        state = core.step(state, cruise, params)
    assert not state.wall_contact.any() and float(state.wall_time_s) == held


# ---------------------------------------------------------------------------- track limits


def test_off_course_needs_three_of_four_tyres_outside(oval):
    """Paper III-C: a car is off course when at least three tyres are outside the track limits."""
    params = core.make_params(oval, "alfa_romeo_4c_14")
    car = params.car
    psi = math.radians(20.0)
    # lateral offset of each tyre from the centre of gravity when the car points psi to the left
    tyre_lat = sorted((f * math.sin(psi) + l * math.cos(psi) for f, l in core._wheel_offsets(car)),
                      reverse=True)
    s0 = 500.0
    edge = float(oval.width_left_m[oval.station_of_s(torch.tensor(s0))])
    # (side, tyres out): the car centre sits midway between the n-th and (n+1)-th outermost tyre's reach
    cases = [("L", 1), ("L", 2), ("L", 3), ("L", 4), ("R", 2), ("R", 3)]
    lat, yaw = [], []
    for side, n in cases:
        inner = tyre_lat[n] if n < 4 else tyre_lat[3] - 0.6
        off = edge - 0.5 * (tyre_lat[n - 1] + inner)
        sign = 1.0 if side == "L" else -1.0  # mirror image on the right edge
        lat.append([sign * off])
        yaw.append([sign * psi])
        # the placement really puts n tyres beyond the line, none within 0.2 m of it
        tyres = [off + t for t in tyre_lat]
        assert sum(t > edge for t in tyres) == n and min(abs(t - edge) for t in tyres) > 0.2
    R = len(cases)
    state = core.reset(params, R, 1)
    state = place_cars(state, oval, s0, torch.tensor(lat), torch.tensor(yaw), speed_mps=0.0)
    state = core.step(state, torch.zeros(R, 1, 2), params)
    expect = torch.tensor([[n >= 3] for _, n in cases])
    assert torch.equal(state.off_course, expect)
    assert state.speed_mps.max() < 1e-3  # stationary: the placement held
    assert torch.equal(state.off_course_time_s == 0, ~expect)
    assert state.off_course_time_s[expect].tolist() == pytest.approx([STEP_S] * int(expect.sum()), abs=1e-5)
    assert not state.wall_contact.any()
    # a second step adds another 0.1 s only to the cars off course
    state = core.step(state, torch.zeros(R, 1, 2), params)
    n_off = int(expect.sum())
    assert state.off_course_time_s[expect].tolist() == pytest.approx([2 * STEP_S] * n_off, abs=1e-5)
    assert (state.off_course_time_s[~expect] == 0).all()


# ---------------------------------------------------------------------------- contacts


def test_car_contact_accumulators_count_onsets_and_time_in_contact(oval):
    params = core.make_params(oval, "alfa_romeo_4c_14")
    car = params.car
    coast = torch.zeros(1, 2, 2)
    # car 0 ahead, car 1 behind, 100 m apart at the same speed
    state = place_cars(core.reset(params, 1, 2, initial_speed_mps=20.0), oval,
                       torch.tensor([[300.0, 200.0]]), 0.0, speed_mps=20.0)
    for _ in range(10):
        state = core.step(state, coast, params)
    assert float(state.car_contact_time_s.max()) == 0.0
    assert int(state.contact_count.max()) == 0 and float(state.contact_dv_sq.max()) == 0.0

    # rear car 0.35 m behind, 6 m/s faster: a rear-end bump; then it brakes away
    s_front = float(state.s_m[0, 0])
    state = place_cars(state, oval, torch.tensor([[s_front, s_front - car.length_m - 0.35]]), 0.0,
                       speed_mps=torch.tensor([[20.0, 26.0]]))
    brake_rear = torch.tensor([[[0.0, 0.0], [0.0, -1.0]]])
    for k in range(15):
        state = core.step(state, coast if k < 2 else brake_rear, params)
        if k == 1:
            assert (state.car_contact_time_s > 0).all()  # the bump came within 0.2 s
    assert torch.equal(state.contact_count, torch.tensor([[1, 1]]))  # one bump, one onset for each
    closing_sq = 6.0 ** 2
    assert state.contact_dv_sq.tolist()[0] == pytest.approx([closing_sq] * 2, rel=0.1)
    t_bump = state.car_contact_time_s.clone()
    assert (t_bump > 0).all() and (t_bump < 0.5).all()
    assert not state.car_contact.any()

    # apart again: the accumulators hold
    for _ in range(5):
        state = core.step(state, brake_rear, params)
    assert torch.equal(state.car_contact_time_s, t_bump)
    assert torch.equal(state.contact_count, torch.tensor([[1, 1]]))

    # a slow approach (1 m/s, slower than the contact margin per tick) then a sustained push at full
    # throttle: one more onset, not one per tick, and its time accumulates
    s_front = float(state.s_m[0, 0])
    state = place_cars(state, oval, torch.tensor([[s_front, s_front - car.length_m - 0.1]]), 0.0,
                       speed_mps=torch.tensor([[20.0, 21.0]]))
    push = torch.tensor([[[0.0, 0.0], [0.0, 1.0]]])
    for _ in range(10):
        state = core.step(state, push, params)
    assert torch.equal(state.contact_count, torch.tensor([[2, 2]]))
    assert (state.car_contact_time_s - t_bump > 0.6).all()
    assert state.contact_dv_sq.tolist()[0] == pytest.approx([closing_sq + 1.0] * 2, rel=0.1)


def test_contact_yaw_share_scales_the_yaw_kick_of_an_off_centre_bump(oval):
    """A rear car 8 m/s faster hits the front car's corner (1.2 m to the side): the front car's yaw rate
    just after the bump grows with ``contact_yaw_share`` (0: no kick from the impulse, 1: the rigid body's)."""
    kicks = {}
    for share in (0.0, core.CAR_CONTACT_YAW_SHARE, 1.0):
        params = core.make_params(oval, "alfa_romeo_4c_14", contact_yaw_share=share)
        assert params.contact_yaw_share == share
        car = params.car
        state = core.reset(params, 1, 2, initial_speed_mps=20.0)
        state = place_cars(state, oval, torch.tensor([[300.0, 300.0 - car.length_m - 0.05]]),
                           torch.tensor([[0.0, 1.2]]), speed_mps=torch.tensor([[20.0, 28.0]]))
        state = core.step(state, torch.zeros(1, 2, 2), params)
        assert int(state.contact_count[0, 0]) == 1
        kicks[share] = abs(float(state.yaw_rate[0, 0]))
    assert kicks[0.0] < 0.02  # the tyres alone barely turn a car going straight
    assert kicks[1.0] > 2.0 * kicks[core.CAR_CONTACT_YAW_SHARE] > 0.04
    with pytest.raises(ValueError, match=r"contact_yaw_share must be a number in \[0, 1\], got 1.5"):
        core.make_params(oval, "alfa_romeo_4c_14", contact_yaw_share=1.5)


# ---------------------------------------------------------------------------- controls and timing


def test_bad_controls_raise_and_out_of_range_controls_are_clipped(oval):
    params = core.make_params(oval, "alfa_romeo_4c_14")
    state = core.reset(params, 1, 2, initial_speed_mps=30.0)
    for bad in (math.nan, math.inf, -math.inf):
        ctl = torch.zeros(1, 2, 2)
        ctl[0, 1, 0] = bad
        with pytest.raises(ValueError, match="finite"):
            core.step(state, ctl, params)
    for shape in ((1, 2, 3), (1, 2), (2, 2, 2), (1, 1, 2)):
        with pytest.raises(ValueError, match="shape"):
            core.step(state, torch.zeros(shape), params)
    big = core.step(state, torch.tensor([[[5.0, 5.0], [-7.0, -3.0]]]), params)
    unit = core.step(state, torch.tensor([[[1.0, 1.0], [-1.0, -1.0]]]), params)
    for f in dataclasses.fields(big):
        assert _same(getattr(big, f.name), getattr(unit, f.name)), f.name


def test_steering_is_interpolated_over_the_ticks_and_pedals_are_held(oval):
    """Paper III-B: 10 Hz actions, 60 Hz physics; the delta steering is at most 3 degrees a step."""
    params = core.make_params(oval, "alfa_romeo_4c_14")
    state = core.reset(params, 1, 1, initial_speed_mps=20.0)
    ticks = []
    real_tick = core._tick

    def watched_tick(st, steer, p):
        ticks.append((float(steer), float(st.throttle), float(st.brake)))
        return real_tick(st, steer, p)

    deg = math.radians
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "_tick", watched_tick)
        state = core.step(state, _pedal(1, 1, 1.0, 0.7), params)
    assert [t[0] for t in ticks] == pytest.approx([deg(3.0) * k / 6 for k in range(1, 7)], abs=1e-7)
    assert all(t[1:] == pytest.approx((0.7, 0.0)) for t in ticks)  # zero-order hold
    assert float(state.steer_rad) == pytest.approx(deg(3.0), abs=1e-7)
    assert float(state.steer_cmd_rad) == pytest.approx(deg(3.0), abs=1e-7)
    assert float(state.throttle) == pytest.approx(0.7) and float(state.brake) == 0.0

    state = core.step(state, _pedal(1, 1, 1.0, -0.4), params)
    assert float(state.steer_rad) == pytest.approx(deg(6.0), abs=1e-6)
    assert float(state.throttle) == 0.0 and float(state.brake) == pytest.approx(0.4)
    # a half step moves half as far
    state = core.step(state, _pedal(1, 1, -0.5, 0.0), params)
    assert float(state.steer_rad) == pytest.approx(deg(4.5), abs=1e-6)
    # the wheel stops at the car's lock, either way
    lock = deg(params.car.max_steer_deg)
    for _ in range(10):
        state = core.step(state, _pedal(1, 1, 1.0, 0.0), params)
    assert float(state.steer_rad) == pytest.approx(lock, abs=1e-6)
    state = core.step(state, _pedal(1, 1, -1.0, 0.0), params)
    assert float(state.steer_rad) == pytest.approx(lock - deg(3.0), abs=1e-6)
    for _ in range(20):
        state = core.step(state, _pedal(1, 1, -1.0, 0.0), params)
    assert float(state.steer_rad) == pytest.approx(-lock, abs=1e-6)


# ---------------------------------------------------------------------------- names


def test_unknown_names_raise_listing_the_valid_ones():
    with pytest.raises(ValueError) as e:
        load_track("monza")
    assert "monza" in str(e.value) and all(n in str(e.value) for n in TRACK_NAMES)
    with pytest.raises(ValueError) as e:
        get_car("ferrari_f40")
    assert "ferrari_f40" in str(e.value) and all(n in str(e.value) for n in CAR_NAMES)
    with pytest.raises(ValueError) as e:
        get_scenario("nurburgring")
    assert "nurburgring" in str(e.value) and all(n in str(e.value) for n in SCENARIO_NAMES)
    with pytest.raises(ValueError) as e:
        core.make_params("monza", "alfa_romeo_4c_14")
    assert all(n in str(e.value) for n in TRACK_NAMES)
    with pytest.raises(ValueError) as e:
        core.make_params("spa", "ferrari_f40")
    assert all(n in str(e.value) for n in CAR_NAMES)
    # names are case-insensitive
    assert get_car("Alfa_Romeo_4C_14").name == "alfa_romeo_4c_14"
    assert get_scenario("SPA").car == "alfa_romeo_4c_14"


# ---------------------------------------------------------------------------- BIAI


def test_biai_lap_alone_on_spa_is_clean_and_near_the_qss_lap():
    """Alone, the BIAI laps clean a few percent slower than the QSS minimum.
    A 1-lap race from the grid includes the standing start, so up to 12% slower is allowed."""
    params = core.make_params("spa", "alfa_romeo_4c_14", laps=1)
    plan = driving_plan(params.track, params.car)
    state = core.reset(params, 1, 1)
    for _ in range(2500):
        state = core.step(state, biai_controls(state, params, plan), params)
        if bool(state.finished.all()):
            break
    assert bool(state.finished.all())
    assert float(state.wall_time_s) == 0.0 and float(state.off_course_time_s) == 0.0
    ratio = float(state.finish_time_s) / plan.qss_lap_time_s
    assert 1.03 < ratio < 1.12, f"finish {float(state.finish_time_s):.1f} s, QSS {plan.qss_lap_time_s:.1f} s"


# ---------------------------------------------------------------------------- performance


@pytest.mark.parametrize("car_name", list(CARS))
def test_acceleration_and_top_speed_match_the_published_figures(oval, car_name):
    car = get_car(car_name)
    params = core.make_params(oval, car)
    # 0-100 km/h from a standstill on the 2 km straight, full throttle
    state = place_cars(core.reset(params, 1, 1), oval, 200.0, 0.0, speed_mps=0.0)
    v100 = 100.0 / 3.6
    t_100 = None
    for _ in range(80):
        before = float(state.vx)
        state = core.step(state, _pedal(1, 1, 0.0, 1.0), params)
        now = float(state.vx)
        if now >= v100:
            t_100 = float(state.time_s) - STEP_S * (now - v100) / (now - before)
            break
    assert t_100 is not None
    if car.public_0_100_s is not None:
        assert abs(t_100 / car.public_0_100_s - 1) < 0.10, f"0-100 km/h in {t_100:.2f} s"
    else:
        assert t_100 < 3.5
    # top speed: at 90% of the published figure the car still gains speed at full throttle, at
    # 110% it loses speed (the force balance of engine, drag and rolling resistance in the sim)
    top = car.public_top_speed_kmh / 3.6
    start = torch.tensor([[0.9 * top], [1.1 * top]])
    state = place_cars(core.reset(params, 2, 1, initial_speed_mps=start), oval, 200.0, 0.0, speed_mps=start)
    for _ in range(20):
        state = core.step(state, _pedal(2, 1, 0.0, 1.0), params)
    assert float(state.vx[0, 0]) > float(start[0, 0])
    assert float(state.vx[1, 0]) < float(start[1, 0])
    assert (state.lat_m.abs() < 1.0).all()  # straight ahead, on the straight


def test_final_places_rank_finishers_by_time_then_the_rest_by_progress(oval):
    state = core.reset(core.make_params(oval, "alfa_romeo_4c_14"), 1, 4)
    # two finishers (the later one is car 2), two cars still racing only 10 m apart at 5 km
    state = state.replace(
        finished=torch.tensor([[False, True, True, False]]),
        finish_time_s=torch.tensor([[math.nan, 301.5, 302.0, math.nan]]),
        progress_m=torch.tensor([[5000.0, 6000.0, 6000.0, 5010.0]]))
    assert final_places(state).tolist() == [[4, 1, 2, 3]]


def test_biai_turns_around_after_a_spin_without_scraping_along_a_barrier():
    """A BIAI car left at rest facing the wrong way next to a barrier (after a spin) turns around
    (a three-point turn: Tokyo is narrower than the car's turning circle) and drives on."""
    params = core.make_params("tokyo", "audi_tt_cup_16")
    plan = driving_plan(params.track, params.car)
    track = params.track
    s0 = 2700.0
    st0 = int(track.station_of_s(torch.tensor(s0)))
    near_right = -(float(track.width_right_m[st0]) - 1.5)
    near_left = float(track.width_left_m[st0]) - 1.5
    # four races of one car: right or left barrier, facing back a little to either side
    lat = torch.tensor([[near_right], [near_right], [near_left], [near_left]])
    yaw_off = torch.tensor([[170.0], [-170.0], [170.0], [-170.0]]).mul(math.pi / 180.0)
    state = place_cars(core.reset(params, 4, 1), track, s0, lat, yaw_off, speed_mps=0.0)
    rescuing = []   # DAgger's rescue labels follow the BIAI while it is in trouble (biai_rescuing)
    for _ in range(400):  # 40 s
        rescuing.append(biai_rescuing(state, params))
        state = core.step(state, biai_controls(state, params, plan), params)
    rescuing = torch.stack(rescuing)
    assert rescuing[0].all() and not rescuing[-100:].any(), rescuing.float().mean(0)
    psi = state.yaw - track.heading_rad[state.station]
    psi = torch.atan2(torch.sin(psi), torch.cos(psi))
    assert (psi.abs() < math.radians(30.0)).all(), psi
    assert (state.progress_m > s0 + 100.0).all(), state.progress_m
    assert (state.wall_time_s < 10.0).all(), state.wall_time_s


def test_grid_races_of_a_batch_differ_and_a_seed_repeats():
    """Drivers react to the start after a random delay, so the races of a batch are not copies."""
    from gtvision.sim.race import run_race
    a = run_race("tokyo", laps=1, num_races=2, num_cars=4, seed=3, progress=False, max_time_s=15.0)
    b = run_race("tokyo", laps=1, num_races=2, num_cars=4, seed=3, progress=False, max_time_s=15.0)
    assert torch.equal(a.final_state.x, b.final_state.x)
    assert not torch.equal(a.final_state.x[0], a.final_state.x[1])


@pytest.mark.parametrize("car_name", list(CARS))
def test_steering_held_past_the_limit_pushes_wide_instead_of_spinning(car_name, make_oval):
    """Limit understeer (core.REAR_GRIP_GAIN): coasting at 144 km/h with the wheels held at 3 degrees
    (far more than the grip allows), the car slides wide but does not spin."""
    pad = make_oval("pad", width_m=80.0, runoff_m=10.0)
    params = core.make_params(pad, car_name)
    state = place_cars(core.reset(params, 1, 1), pad, 300.0, 0.0, speed_mps=40.0)
    slip = []
    for k in range(20):  # 2 s
        state = core.step(state, _pedal(1, 1, 1.0 if k == 0 else 0.0, 0.0), params)
        slip.append(math.degrees(math.atan2(float(state.vy), abs(float(state.vx)))))
    assert float(state.wall_time_s) == 0.0
    assert max(abs(b) for b in slip) < 10.0, f"body slip reached {max(abs(b) for b in slip):.0f} deg"
