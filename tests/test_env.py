"""The gymnasium environments: the API contract, the observation fields against hand-built scenes,
episodes (training, race, stuck), the autoreset contract, parked cars, and bad input."""
from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import gtvision  # noqa: F401  (registers the ids)
from gtvision import rewards
from gtvision.env import RACE, observations
from gtvision.env.episodes import BOP_RANGE, CURRICULUM_OPPONENTS, TRAINING_EPISODE_S
from gtvision.env.racing import RacingEnv, RacingVectorEnv
from gtvision.sim import core

IDS = ("gtvision/Tokyo-v0", "gtvision/Spa-v0", "gtvision/Sarthe-v0")
SMALL = {"image_size": 16}  # the tests that do not look at the image draw it small


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def straight(make_oval):
    """A flat oval with two 2 km straights, 12 m wide (6 m either side of the centerline)."""
    return make_oval("oval12", width_m=12.0, runoff_m=5.0)


def _scene(track, s_m, lat_m, speed_mps, num_cars):
    """A state of one race: car i at arc length s_m[i], offset lat_m[i], moving along the track."""
    params = core.make_params(track, "alfa_romeo_4c_14")
    state = core.reset(params, 1, num_cars)
    s = torch.tensor([s_m], dtype=torch.float32)
    lat = torch.tensor([lat_m], dtype=torch.float32)
    x, y, _ = track.point_at(s, lat)
    station = track.station_of_s(s)
    return state.replace(x=x, y=y, yaw=track.heading_rad[station], s_m=s, lat_m=lat, station=station,
                         progress_m=s.clone(), vx=torch.tensor([speed_mps], dtype=torch.float32))


# ---------------------------------------------------------------------------- API


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_passes(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite Box bounds of the float features are by design
        check_env(env.unwrapped)
    assert env.observation_space["image"].shape == (64, 64, 3)
    assert env.observation_space["proprio"].shape == (18,)
    assert env.observation_space["course_points"].shape == (177, 3)
    assert env.observation_space["opponent_grid"].shape == (14, 6)
    assert env.action_space.shape == (2,)


def test_make_vec_uses_the_native_vector_env_and_declares_next_step_autoreset():
    envs = gym.make_vec("gtvision/Spa-v0", num_envs=3, num_opponents=2, **SMALL)
    assert isinstance(envs.unwrapped, RacingVectorEnv)
    assert envs.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    obs, info = envs.reset(seed=0)
    assert obs["image"].shape == (3, 16, 16, 3) and obs["proprio"].shape == (3, 18)
    assert obs in envs.observation_space
    assert info["num_opponents"].tolist() == [2, 2, 2]


def test_make_vec_and_make_give_the_same_observations_for_the_same_seed():
    """Sub-environment i of make_vec reset with seed s plays make's episode reset with seed s + i."""
    kwargs = dict(num_opponents=None, **SMALL)  # curriculum: 20 cars per race, some of them parked
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=3, **kwargs)
    single = [gym.make("gtvision/Tokyo-v0", **kwargs) for _ in range(3)]
    vobs, vinfo = envs.reset(seed=11)
    sobs = [env.reset(seed=11 + i) for i, env in enumerate(single)]
    assert len(set(vinfo["num_opponents"].tolist())) > 1  # the sub-environments drew different races
    for i, (obs, info) in enumerate(sobs):
        for key in obs:
            assert np.array_equal(vobs[key][i], obs[key]), key
        assert vinfo["num_opponents"][i] == info["num_opponents"]
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 3, 2)).astype(np.float32)
    actions[..., 1] = np.abs(actions[..., 1])
    for a in actions:
        vobs, vrew, _, _, _ = envs.step(a)
        for i, env in enumerate(single):
            obs, rew, *_ = env.step(a[i])
            for key in ("proprio", "course_points", "opponent_grid"):
                np.testing.assert_allclose(vobs[key][i], obs[key], atol=1e-4, err_msg=key)
            assert (vobs["image"][i] == obs["image"]).mean() > 0.99
            assert vrew[i] == pytest.approx(rew, abs=1e-4)


# ---------------------------------------------------------------------------- observations, by hand


def test_a_car_30m_ahead_and_2m_left_fills_the_first_slot_with_the_right_signs(straight):
    # learner at 20 m/s; car 1: 30 m ahead, 2 m left, 25 m/s; car 2: 10 m behind, 1.5 m right;
    # car 3: 80 m ahead (beyond 75 m); car 4: 25 m behind (beyond 20 m); car 5: 12 m ahead, parked
    s0 = 500.0
    state = _scene(straight, [s0, s0 + 30, s0 - 10, s0 + 80, s0 - 25, s0 + 12],
                   [0.0, 2.0, -1.5, 0.0, 0.0, 0.0], [20.0, 25.0, 20.0, 20.0, 20.0, 20.0], 6)
    opponents = torch.tensor([[False, True, True, True, True, False]])
    grid = observations.opponent_grid(state, opponents, straight.length_m)[0]
    assert grid.shape == (14, 6)
    x, y, vx, vy = grid[0, :4].tolist()
    assert x == pytest.approx(30.0, abs=0.05) and y == pytest.approx(2.0, abs=0.05)   # ahead, left (+)
    assert vx == pytest.approx(5.0, abs=1e-3) and vy == pytest.approx(0.0, abs=1e-3)  # 5 m/s faster
    assert grid[7, :2].tolist() == pytest.approx([-10.0, -1.5], abs=0.05)             # behind, right (-)
    # the car 80 m ahead, the one 25 m behind and the parked one are absent: every other row is zero
    assert (grid[1:7] == 0).all() and (grid[8:] == 0).all()


def test_the_grid_keeps_the_seven_nearest_ahead_nearest_first(straight):
    s0 = 500.0
    ahead = [70.0, 5.0, 60.0, 15.0, 50.0, 25.0, 40.0, 35.0, 65.0]  # nine cars within 75 m
    state = _scene(straight, [s0] + [s0 + d for d in ahead], [0.0] * 10, [20.0] * 10, 10)
    grid = observations.opponent_grid(state, torch.arange(10).unsqueeze(0) > 0, straight.length_m)[0]
    assert grid[:7, 0].tolist() == pytest.approx(sorted(ahead)[:7], abs=0.05)
    assert (grid[7:] == 0).all()


def test_the_farthest_course_station_at_50_mps_is_300m_ahead(straight):
    state = _scene(straight, [300.0], [1.0], [50.0], 1)
    pts = observations.course_points(state, straight)[0].view(59, 3, 3)   # (station, edge, xyz)
    # six seconds at 50 m/s: the last station 300 m ahead, the first 300/59 m ahead
    assert pts[-1, 1, 0].item() == pytest.approx(300.0, abs=0.05)
    assert pts[0, 1, 0].item() == pytest.approx(300.0 / 59, abs=0.05)
    # the learner sits 1 m left of the centerline: left limit 5 m to its left, right limit 7 m right
    assert pts[:, 0, 1].tolist() == pytest.approx([5.0] * 59, abs=0.01)
    assert pts[:, 1, 1].tolist() == pytest.approx([-1.0] * 59, abs=0.01)
    assert pts[:, 2, 1].tolist() == pytest.approx([-7.0] * 59, abs=0.01)
    assert pts[..., 2].abs().max().item() < 1e-3   # flat
    # a standing car still sees the minimum horizon
    slow = _scene(straight, [300.0], [0.0], [0.0], 1)
    far = observations.course_points(slow, straight)[0, -2, 0].item()
    assert far == pytest.approx(observations.COURSE_HORIZON_S * observations.COURSE_MIN_SPEED_MPS, abs=0.05)


def test_proprio_layout(straight):
    state = _scene(straight, [300.0], [0.0], [20.0], 1)
    state = state.replace(vy=torch.tensor([[0.5]]), yaw_rate=torch.tensor([[0.1]]), ax=torch.tensor([[2.0]]),
                          steer_cmd_rad=torch.tensor([[0.05]]), throttle=torch.tensor([[0.7]]))
    steer = torch.tensor([[0.05, 0.02, 0.03, 0.0]])   # theta_t .. theta_{t-3}
    p = observations.proprio(state, straight, steer, torch.tensor([[0.0, 0.0]]), math.radians(20.0))[0]
    assert p[:3].tolist() == pytest.approx([20.0, 0.5, 0.0])
    assert p[3:6].tolist() == pytest.approx([2.0, 0.0, 0.0])
    assert p[6:9].tolist() == pytest.approx([0.0, 0.0, 0.1])
    assert p[9:12].tolist() == pytest.approx([0.05 / math.radians(20.0), 0.7, 0.0])
    assert p[12:15].tolist() == pytest.approx([0.05, 0.02, 0.03])
    assert p[15:18].tolist() == pytest.approx([0.03, -0.01, 0.03])


def test_env_observation_and_info_follow_the_step():
    env = RacingEnv("tokyo", num_opponents=3, start="grid_back", bop=False, **SMALL)
    obs, info = env.reset(seed=3)
    assert info["place"] == 4 and info["num_opponents"] == 3   # last of a 4-car grid
    assert (obs["opponent_grid"][:3, 0] > 0).all()              # the three cars ahead on the grid
    for _ in range(10):
        obs, reward, _, _, info = env.step([0.0, 1.0])
    assert obs["proprio"][0] > 5.0 and obs["proprio"][10] == 1.0   # moving forward on full throttle
    terms = {name: torch.tensor([info[f"reward_{name}"]]) for name in rewards.TERM_NAMES}
    assert reward == pytest.approx(rewards.weighted_sum(terms).item(), abs=1e-4)
    assert info["reward_progress"] > 0 and info["time_s"] == pytest.approx(1.0, abs=1e-4)


# ---------------------------------------------------------------------------- episodes


def test_training_episodes_sample_the_curriculum_random_starts_and_bop():
    env = RacingEnv("spa", **SMALL)   # the defaults are training episodes (paper IV-B)
    counts, starts = [], []
    for seed in range(24):
        _, info = env.reset(seed=seed)
        b = env.batch
        counts.append(info["num_opponents"])
        starts.append(b.state.s_m[0, 0].item())
        n = info["num_opponents"]
        assert b.state.power_scale[0, 0] == 1.0 and b.state.mass_scale[0, 0] == 1.0   # the learner is stock
        opp = b.state.power_scale[0, 1:n + 1]
        assert ((opp - 1).abs() <= BOP_RANGE + 1e-6).all()
        assert int(b.opponents.sum()) == n
    assert set(counts) <= set(CURRICULUM_OPPONENTS) and len(set(counts)) >= 5
    assert np.ptp(starts) > 0.5 * env.batch.track.length_m   # spread around the lap
    assert env.batch.time_limit_s == TRAINING_EPISODE_S


def test_training_episodes_can_draw_from_a_list_of_opponent_counts():
    env = RacingEnv("tokyo", num_opponents=[2, 5], **SMALL)
    assert env.batch.num_cars == 6
    counts = []
    for seed in range(12):
        _, info = env.reset(seed=seed)
        counts.append(int(info["num_opponents"]))
        assert int(env.batch.opponents.sum()) == counts[-1]
        # the cars an episode does not race stand parked far from the learner
        st = env.batch.state
        far = torch.hypot(st.x[0, 1:] - st.x[0, 0], st.y[0, 1:] - st.y[0, 0]) > 400.0
        assert far.tolist() == [k >= counts[-1] for k in range(5)]
    assert set(counts) == {2, 5}
    for bad in ([], [3, 20], [True], "12"):
        with pytest.raises(ValueError, match="num_opponents must be"):
            RacingEnv("tokyo", num_opponents=bad, **SMALL)


def test_race_episodes_start_last_of_twenty_without_bop_and_end_at_the_finish():
    env = RacingEnv("tokyo", **{**RACE, "laps": 1}, **SMALL)
    _, info = env.reset(seed=0)
    b = env.batch
    assert info["place"] == 20 and info["num_opponents"] == 19
    assert (b.state.power_scale == 1).all() and (b.state.mass_scale == 1).all()
    assert b.state.progress_m[0, 0] == b.state.progress_m[0].min()   # the back of the grid
    assert b.time_limit_s > b.plan.qss_lap_time_s                    # a cap, well above a lap
    # hand-built: the learner a metre before the line at the end of its lap, at 30 m/s
    L = b.track.length_m
    st = b.state
    b.state = st.replace(progress_m=st.progress_m.index_put((torch.tensor([0]), torch.tensor([0])),
                                                            torch.tensor(L - 1.0)),
                         vx=st.vx.index_put((torch.tensor([0]), torch.tensor([0])), torch.tensor(30.0)))
    _, _, terminated, truncated, info = env.step([0.0, 0.5])
    assert terminated and not truncated and info["finished"]


def test_a_stuck_learner_is_truncated():
    env = RacingEnv("tokyo", num_opponents=0, stuck_s=1.5, **SMALL)
    env.reset(seed=0)
    for k in range(15):
        _, _, terminated, truncated, info = env.step([0.0, 0.0])   # standing still
        assert truncated == (k == 14) and not terminated
    assert info["stuck_time_s"] == pytest.approx(1.5, abs=1e-4)


def test_autoreset_next_step_contract():
    """NEXT_STEP: the step after an episode ends returns the next episode's first observation,
    reward 0 and no termination, ignoring that step's action."""
    kwargs = dict(max_time_s=0.5, **SMALL)   # five control steps per episode
    envs = gym.make_vec("gtvision/Spa-v0", num_envs=2, **kwargs)
    envs.reset(seed=4)
    full = np.array([[0.0, 1.0], [1.0, 1.0]], np.float32)
    for k in range(5):
        obs, rew, term, trunc, info = envs.step(full)
        assert not term.any() and trunc.tolist() == [k == 4] * 2
    assert info["time_s"] == pytest.approx([0.5, 0.5], abs=1e-4)
    obs, rew, term, trunc, info = envs.step(full)   # the action is ignored: both sub-envs reset
    assert rew.tolist() == [0.0, 0.0] and not term.any() and not trunc.any()
    assert info["time_s"].tolist() == [0.0, 0.0] and info["speed_mps"].tolist() == [0.0, 0.0]
    assert all(info[f"reward_{name}"].tolist() == [0.0, 0.0] for name in rewards.TERM_NAMES)
    # that first observation is the one a single env gives after its own episode ends and reset()
    for i in range(2):
        env = gym.make("gtvision/Spa-v0", **kwargs)
        env.reset(seed=4 + i)
        for _ in range(5):
            env.step(full[i])
        first, first_info = env.reset()
        for key in first:
            assert np.array_equal(obs[key][i], first[key]), key
        assert info["num_opponents"][i] == first_info["num_opponents"]
    # and the new episode runs on
    obs, rew, term, trunc, info = envs.step(full)
    assert info["time_s"] == pytest.approx([0.1, 0.1], abs=1e-4) and (rew != 0).all()


def test_parked_cars_do_not_take_part_in_the_race():
    """A curriculum race that draws 3 opponents runs in a 20-car batch; the 16 cars it does not use
    are parked: the race is the same as a 4-car race."""
    kwargs = dict(start="grid_back", bop=False, **SMALL)
    curriculum = RacingEnv("tokyo", num_opponents=None, **kwargs)
    seed = next(s for s in range(100) if curriculum.reset(seed=s)[1]["num_opponents"] == 3)
    four = RacingEnv("tokyo", num_opponents=3, **kwargs)
    obs_c, _ = curriculum.reset(seed=seed)
    obs_4, _ = four.reset(seed=seed)
    assert curriculum.batch.num_cars == 20 and four.batch.num_cars == 4
    for k in range(40):
        a = [0.2 * math.sin(k / 5), 1.0]
        obs_c, rew_c, *_ = curriculum.step(a)
        obs_4, rew_4, *_ = four.step(a)
    c, f = curriculum.batch.state, four.batch.state
    # the same to float32's rounding: a batch of 20 cars and one of 4 may sum in another order (on an AVX2 CPU
    # the positions differ by some 4e-6 m after 40 steps; on AVX-512 they were equal to the bit)
    assert torch.allclose(c.x[:, :4], f.x, rtol=0, atol=1e-4) and torch.allclose(c.y[:, :4], f.y, rtol=0, atol=1e-4)
    for key in obs_c:
        assert np.allclose(obs_c[key], obs_4[key], rtol=1e-5, atol=1e-3), key
    assert rew_c == pytest.approx(rew_4, abs=1e-5)
    # the parked cars stand still on their spots, far from everything
    park = curriculum.batch.parking
    assert torch.equal(c.x[0, 4:], park.x[4:]) and (c.speed_mps[0, 4:] == 0).all()
    gap = torch.hypot(c.x[0, 4:, None] - c.x[0, None, :4], c.y[0, 4:, None] - c.y[0, None, :4])
    assert gap.min() > 500.0
    assert (c.car_contact_time_s[0, 4:] == 0).all()


def test_render_returns_a_video_size_ego_view():
    env = gym.make("gtvision/Tokyo-v0", render_mode="rgb_array", render_size=(90, 160), **SMALL)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (90, 160, 3) and frame.dtype == np.uint8 and frame.std() > 10
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, render_mode="rgb_array", render_size=(90, 160),
                        **SMALL)
    envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 2 and frames[0].shape == (90, 160, 3)


def test_record_video_writes_an_episode(tmp_path):
    """gymnasium's RecordVideo (moviepy, in the test extra) films an episode from ``render``."""
    pytest.importorskip("moviepy")
    from gymnasium.wrappers import RecordVideo
    env = gym.make("gtvision/Tokyo-v0", render_mode="rgb_array", render_size=(90, 160), num_opponents=2,
                   max_time_s=2.0, **SMALL)
    env = RecordVideo(env, str(tmp_path / "videos"), episode_trigger=lambda episode: True, disable_logger=True)
    env.reset(seed=0)
    done = False
    while not done:
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, message", [
    ({"num_opponents": 20}, r"0\.\.19, a list of them .* or None"),
    ({"num_opponents": 2.5}, r"0\.\.19, a list of them .* or None"),
    ({"start": "pole"}, r"valid starts: 'random', 'grid_back'"),
    ({"laps": 0}, "positive int or None"),
    ({"bop": "yes"}, "True or False"),
    ({"image_size": 0}, "image_size must be an int >= 8"),
    ({"device": "quantum"}, "valid devices"),
    ({"max_time_s": -1.0}, "positive number of seconds"),
    ({"render_mode": "human"}, "valid: None, 'rgb_array'"),
    ({"scenario": "monza"}, "valid scenarios: tokyo, spa, sarthe"),
    ({"contact_yaw_share": -0.1}, r"contact_yaw_share must be a number in \[0, 1\], got -0.1"),
])
def test_bad_keyword_values_name_the_valid_ones(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RacingEnv(**kwargs)
    with pytest.raises(ValueError, match=message):
        RacingVectorEnv(num_envs=2, **kwargs)


def test_step_before_reset_wrong_shapes_and_nan_actions_raise():
    env = RacingEnv("tokyo", num_opponents=1, **SMALL)
    with pytest.raises(RuntimeError, match="reset"):
        env.step([0.0, 0.0])
    with pytest.raises(gym.error.ResetNeeded):
        gym.make("gtvision/Tokyo-v0", num_opponents=1, **SMALL).step([0.0, 0.0])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step([0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        env.step([float("nan"), 0.0])
    envs = RacingVectorEnv(num_envs=2, num_opponents=1, **SMALL)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros((2, 2)))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        envs.step(np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        envs.step(np.array([[0.0, np.inf], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="2 seeds"):
        envs.reset(seed=[1, 2, 3])


def test_episodes_draw_standing_and_rolling_starts_from_a_list_of_speeds():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=12, vectorization_mode="vector_entry_point",
                        num_opponents=3, start_speed_mps=[0, 20])
    envs.reset(seed=0)
    batch = envs.unwrapped.batch
    speed = batch.state.speed_mps[:, :4]            # the learner and its three opponents
    standing = speed.abs().amax(1) < 1e-3
    rolling = (speed - 20.0).abs().amax(1) < 1e-3
    assert bool((standing | rolling).all()) and 0 < int(standing.sum()) < 12  # each race one or the other
    reaction = batch.reaction_s[:, 1:4]             # the opponents react to a standing start only
    assert bool((reaction[standing] > 0).all()) and bool((reaction[rolling] == 0).all())
    envs.close()
    with pytest.raises(ValueError, match=r"start_speed_mps must be a number in \[0, 100\] m/s, or a list"):
        gym.make_vec("gtvision/Tokyo-v0", num_envs=1, vectorization_mode="vector_entry_point",
                     start_speed_mps=[0, 200])


def test_episodes_draw_grid_back_and_random_starts_from_a_list():
    """`start=["grid_back", "random"]`: each episode draws one; a grid_back draw is the grid_back episode itself (the
    learner last on the start line, the same positions and progress), and a one-start list draws as before."""
    kw = dict(num_envs=12, vectorization_mode="vector_entry_point", num_opponents=3)
    mixed = gym.make_vec("gtvision/Tokyo-v0", start=["grid_back", "random"], **kw)
    back = gym.make_vec("gtvision/Tokyo-v0", start="grid_back", **kw)
    mixed.reset(seed=0), back.reset(seed=0)
    m, b = mixed.unwrapped.batch.state, back.unwrapped.batch.state
    # the races whose learner stands where grid_back puts it (last on the start line); the others start elsewhere
    on_line = (m.s_m[:, 0] - b.s_m[:, 0]).abs() < 1e-3
    assert 0 < int(on_line.sum()) < 12
    assert bool(((m.s_m[~on_line, 0] - b.s_m[~on_line, 0]).abs() > 1.0).all())
    for field in ("x", "y", "yaw", "progress_m", "lat_m"):  # a grid_back draw: the grid_back start, bit for bit
        torch.testing.assert_close(getattr(m, field)[on_line, :4], getattr(b, field)[on_line, :4], rtol=0, atol=0)
    one = gym.make_vec("gtvision/Tokyo-v0", start=["random"], **kw)
    plain = gym.make_vec("gtvision/Tokyo-v0", start="random", **kw)
    one.reset(seed=0), plain.reset(seed=0)
    torch.testing.assert_close(one.unwrapped.batch.state.x, plain.unwrapped.batch.state.x, rtol=0, atol=0)
    for e in (mixed, back, one, plain):
        e.close()
    with pytest.raises(ValueError, match="unknown start .*'pit'.*or a list of them"):
        gym.make_vec("gtvision/Tokyo-v0", num_envs=1, vectorization_mode="vector_entry_point",
                     start=["grid_back", "pit"])


def test_episodes_draw_situations_whole():
    """`situations=[...]`: each episode draws one situation and begins as it says, its start, opponents, speed and BoP
    together (never a mix of two situations); unnamed keys keep the environment's values; one situation draws as the
    environment without it; bad situations are named."""
    race = {"start": "grid_back", "num_opponents": 19, "start_speed_mps": 0, "bop": False}
    kw = dict(num_envs=16, vectorization_mode="vector_entry_point", render_image=False, num_opponents=[0, 3],
              start_speed_mps=20)
    envs = gym.make_vec("gtvision/Tokyo-v0", situations=[{}, race], **kw)
    _, info = envs.reset(seed=0)
    batch = envs.unwrapped.batch
    state, n = batch.state, info["num_opponents"]
    full = n == 19
    assert 0 < int(full.sum()) < 16 and set(n[~full]) <= {0, 3}   # both drawn; the others from the env's own list
    speed = state.speed_mps[:, 0].numpy()
    assert np.allclose(speed[full], 0.0) and np.allclose(speed[~full], 20.0)   # standing exactly when the grid is full
    power = state.power_scale[:, 1:].numpy()
    assert np.allclose(power[full], 1.0)                                        # no BoP in the race situation
    assert all(np.abs(power[i, :n[i]] - 1.0).max() > 1e-3 for i in np.flatnonzero(~full & (n > 0)))
    back = gym.make_vec("gtvision/Tokyo-v0", num_envs=1, vectorization_mode="vector_entry_point",
                        render_image=False, **race)
    back.reset(seed=0)
    b = back.unwrapped.batch.state
    torch.testing.assert_close(state.progress_m[full, 0], b.progress_m[:, 0].expand(int(full.sum())), rtol=0, atol=0)
    # one situation: the environment's own episodes, bit for bit
    one = gym.make_vec("gtvision/Tokyo-v0", situations=[{}], **kw)
    plain = gym.make_vec("gtvision/Tokyo-v0", **kw)
    one.reset(seed=0), plain.reset(seed=0)
    torch.testing.assert_close(one.unwrapped.batch.state.x, plain.unwrapped.batch.state.x, rtol=0, atol=0)
    for e in (envs, back, one, plain):
        e.close()
    for situations, message in (([{"laps": 3}], "a situation may set num_opponents, start, start_speed_mps, bop, "
                                                "stuck_s, learner_yaw_deg, start_m; got laps"),
                                ([], "non-empty list of dicts"), ({"start": "grid_back"}, "non-empty list of dicts"),
                                ([{"start": "pit"}], "unknown start 'pit'"),
                                ([{}, {"num_opponents": 25}], "num_opponents must be an int in 0..19")):
        with pytest.raises(ValueError, match=message):
            RacingEnv(situations=situations, **SMALL)


def test_random_starts_stand_where_start_m_says_alone_or_in_a_situation_and_bad_ranges_are_named():
    """`start_m=[lo, hi]`: a random start's grid stands with its front car drawn within that stretch of the lap; in a
    situation, only that situation's episodes; without it the grids stand anywhere, as they always did."""
    kw = dict(num_envs=8, vectorization_mode="vector_entry_point", render_image=False, num_opponents=3,
              start_speed_mps=20, image_size=16)
    fronts = {}
    for name, extra in (("plain", {}), ("aimed", {"start_m": [1700, 1950]}),
                        ("mixed", {"situations": [{}, {"start_m": [1700, 1950]}]})):
        envs = gym.make_vec("gtvision/Tokyo-v0", **extra, **kw)
        envs.reset(seed=3)
        fronts[name] = envs.unwrapped.batch.state.s_m.max(1).values.numpy()
        envs.close()
    assert ((fronts["aimed"] >= 1700) & (fronts["aimed"] <= 1950)).all()
    assert ((fronts["plain"] < 1700) | (fronts["plain"] > 1950)).sum() >= 6       # anywhere on the 4.4 km lap
    inside = (fronts["mixed"] >= 1700) & (fronts["mixed"] <= 1950)
    assert 0 < inside.sum() < 8
    for where in ([1950, 1700], [-5, 10], [100], "far"):
        with pytest.raises(ValueError, match="start_m must be None or a range"):
            RacingEnv(start_m=where, **SMALL)


def test_spun_starts_turn_the_learner_alone_and_keep_its_velocity_along_the_course():
    """`learner_yaw_deg`: the learner starts turned by the drawn angle, sliding along the course at the start speed
    (a spin), the other cars straight; a situation's own `stuck_s` truncates its episodes; bad headings are named."""
    kw = dict(num_envs=8, vectorization_mode="vector_entry_point", render_image=False, num_opponents=3,
              start_speed_mps=20)
    plain = gym.make_vec("gtvision/Tokyo-v0", **kw)
    spun = gym.make_vec("gtvision/Tokyo-v0", learner_yaw_deg=[-180, 180], **kw)
    fixed = gym.make_vec("gtvision/Tokyo-v0", learner_yaw_deg=90, **kw)
    for e in (plain, spun, fixed):
        e.reset(seed=3)
    p, s, f = (e.unwrapped.batch.state for e in (plain, spun, fixed))
    torch.testing.assert_close(f.x, p.x, rtol=0, atol=0)               # a fixed heading draws nothing: same places
    torch.testing.assert_close(f.yaw[:, 0], p.yaw[:, 0] + math.pi / 2)
    torch.testing.assert_close(f.yaw[:, 1:], p.yaw[:, 1:])            # only the learner turns
    off = torch.remainder(s.yaw[:, 0] - p.yaw[:, 0] + math.pi, 2 * math.pi) - math.pi
    assert off.abs().max() > 1.0 and off.std() > 0.5                  # drawn per race, far from straight
    for st in (s, f):                                                  # world velocity still along the course
        c, sn = torch.cos(st.yaw[:, 0]), torch.sin(st.yaw[:, 0])
        world = torch.stack([c * st.vx[:, 0] - sn * st.vy[:, 0], sn * st.vx[:, 0] + c * st.vy[:, 0]], -1)
        course = torch.stack([torch.cos(p.yaw[:, 0]), torch.sin(p.yaw[:, 0])], -1) * 20.0
        torch.testing.assert_close(world, course, rtol=0, atol=1e-4)
    # a situation's stuck_s: a learner that stands still is truncated at its situation's limit, not the env's
    stand = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, vectorization_mode="vector_entry_point", render_image=False,
                         num_opponents=0, stuck_s=1.0, situations=[{"stuck_s": 3.0, "learner_yaw_deg": 180,
                                                                    "start_speed_mps": 0}])
    stand.reset(seed=0)
    brake = np.array([[0.0, -1.0]] * 2, np.float32)
    ends = [bool(stand.step(brake)[3].all()) for _ in range(35)]
    assert ends.index(True) == 29                                       # 3 s at 10 steps a second
    for e in (plain, spun, fixed, stand):
        e.close()
    for yaw in (200, [90, -90], [1, 2, 3], [90], "left", True):
        with pytest.raises(ValueError, match="learner_yaw_deg must be a number of degrees in"):
            RacingEnv(learner_yaw_deg=yaw, **SMALL)


def test_no_image_is_rendered_for_a_learner_that_reads_none():
    from gtvision.agent.presets import get_preset
    from gtvision.env import env_kwargs_for

    sophy, vision = get_preset("smoke", "gt_sophy").agent, get_preset("smoke").agent
    assert env_kwargs_for("gtvision/Tokyo-v0", {"num_opponents": 2}, sophy) == {"num_opponents": 2,
                                                                                 "render_image": False}
    assert env_kwargs_for("gtvision/Tokyo-v0", {}, vision) == {}
    assert env_kwargs_for("Pendulum-v1", {}, sophy) == {}
    shown, blank = (gym.make_vec("gtvision/Tokyo-v0", num_envs=2, vectorization_mode="vector_entry_point",
                                 num_opponents=2, render_image=r) for r in (True, False))
    (a, _), (b, _) = shown.reset(seed=1), blank.reset(seed=1)
    assert a["image"].std() > 10 and not b["image"].any()   # black, not rendered
    for k in ("proprio", "course_points", "opponent_grid"):  # the rest of the observation is the same
        np.testing.assert_array_equal(a[k], b[k])


def test_environments_pickled_before_render_image_existed_still_render():
    """A checkpoint's pickled environments from before ``render_image`` resume as they ran (rendering)."""
    import pickle

    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=1, vectorization_mode="vector_entry_point",
                        num_opponents=0, render_image=False)
    envs.reset(seed=0)
    old = pickle.loads(pickle.dumps(envs))
    del old.batch.__dict__["render_image"]             # as the older code pickled it
    del old.batch.__dict__["stuck_limit_s"]            # before situations could set a race's stuck limit
    again = pickle.loads(pickle.dumps(old))
    assert again.batch.render_image is True
    torch.testing.assert_close(again.batch.stuck_limit_s, torch.full((1,), float(again.batch.episode.stuck_s)))
    assert again.step(np.zeros((1, 2), np.float32))[0]["image"].std() > 10
    assert pickle.loads(pickle.dumps(envs)).batch.render_image is False   # a stored value wins


def test_the_contact_yaw_share_reaches_the_simulator_of_both_environments():
    """``contact_yaw_share`` (``gymnasium.make(..., contact_yaw_share=1.0)``) sets the physics of every race."""
    assert RacingEnv(num_opponents=1).batch.params.contact_yaw_share == core.CAR_CONTACT_YAW_SHARE
    env = gym.make("gtvision/Tokyo-v0", num_opponents=1, contact_yaw_share=1.0)
    assert env.unwrapped.batch.params.contact_yaw_share == 1.0
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, num_opponents=1, contact_yaw_share=0.0)
    assert envs.unwrapped.batch.params.contact_yaw_share == 0.0
