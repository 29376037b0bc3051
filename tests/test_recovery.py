"""The recovery reflex (agent.recovery): a three-point turn on on-board information when the car has stood still."""
import types

import gymnasium as gym
import numpy as np
import pytest
import torch

from gtvision.agent.config import AgentConfig
from gtvision.agent.recovery import (FORWARD_SPEED, LATERAL_SPEED, STEER_COMMAND, YAW_RATE, YAW_WINDOW_S,
                                     RecoveryReflex)
from gtvision.agent.rollout import Rollout

pytestmark = pytest.mark.usefixtures("one_thread")


def _proprio(speed, steer):
    p = np.zeros((len(speed), 18), np.float32)
    p[:, FORWARD_SPEED], p[:, STEER_COMMAND] = speed, steer
    return p


def test_a_stopped_car_backs_off_steering_away_then_drives_out_to_its_side_and_a_moving_one_is_left_alone():
    reflex = RecoveryReflex(3, trigger_s=1.5, reverse_s=3.0, exit_s=1.5, exit_throttle=0.3)
    policy = np.array([[0.2, 0.1], [0.2, 0.8], [-0.1, 0.0]], np.float32)
    # car 0 stopped steering left, car 1 at speed, car 2 stopped steering right
    proprio = _proprio([0.0, 20.0, 0.2], [0.5, 0.5, -0.5])
    for _ in range(14):                                      # 1.4 s standing: not yet
        np.testing.assert_array_equal(reflex(policy, proprio), policy)
    out = reflex(policy, proprio)                            # 1.5 s: it begins
    assert out[0, 1] == -1.0 and out[0, 0] < 0               # brake (reverse) and steer right, away from its left
    assert out[2, 1] == -1.0 and out[2, 0] > 0
    np.testing.assert_array_equal(out[1], policy[1])
    assert reflex.count.tolist() == [1, 0, 1]
    for _ in range(29):                                      # the rest of its 3 s of reverse
        out = reflex(policy, proprio)
        assert out[0, 1] == -1.0
    out = reflex(policy, proprio)                            # then out, to full lock on its side, some throttle
    assert out[0, 0] > 0 and out[0, 1] == pytest.approx(0.3) and out[2, 0] < 0
    for _ in range(14):
        reflex(policy, proprio)
    np.testing.assert_array_equal(reflex(policy, proprio), policy)   # 1.5 s later the policy drives again
    reflex.reset(np.array([True, False, False]))
    assert reflex.count.tolist() == [0, 0, 1] and reflex.stopped[0] == 0


def test_with_swing_the_reflex_releases_the_pedals_until_the_steering_reaches_the_exit_lock_then_drives_out():
    """``recovery_swing``: after backing off, car 0 (steering still at the backing lock) rolls with the pedals
    released while the wheel swings, for as many steps as its steering takes; car 1, whose steering is already at
    the exit side, drives out at once; the drive out lasts ``exit_s`` after the wait, and a wheel that never comes
    round is waited for at most ``SWING_MAX_S``."""
    reflex = RecoveryReflex(3, trigger_s=0.1, reverse_s=1.0, exit_s=0.5, exit_throttle=0.3, swing=True)
    policy = np.zeros((3, 2), np.float32)
    reflex(policy, _proprio([0.0, 0.0, 0.0], [0.5, 0.5, 0.5]))             # all three begin, side left
    for _ in range(9):
        out = reflex(policy, _proprio([-2.0] * 3, [-1.0, -1.0, -1.0]))
        assert (out[:, 1] == -1.0).all()                                     # backing, steering right
    steer = [-1.0, 0.95, -1.0]
    waits = 0
    for step in range(40):
        out = reflex(policy, _proprio([5.0] * 3, steer))   # moving: no new start once out
        if step < 3:                                                         # car 0: its wheel swings in 3 steps
            assert out[0, 1] == 0.0 and out[0, 0] > 0
            waits += 1
            steer[0] = min(-1.0 + 0.7 * (step + 1), 0.95)
        elif step < 3 + 5:
            assert out[0, 1] == pytest.approx(0.3) and out[0, 0] > 0           # then 0.5 s out, left lock, throttle
        else:
            np.testing.assert_array_equal(out[0], policy[0])
        if step < 5:
            assert out[1, 1] == pytest.approx(0.3)                              # car 1 goes at once
        if step < 20:
            assert out[2, 1] == 0.0                                             # car 2's wheel stuck: 2 s of wait
        elif step < 25:
            assert out[2, 1] == pytest.approx(0.3)
    assert waits == 3 and reflex.waited.tolist() == [3, 0, 20]
    plain = RecoveryReflex(1, trigger_s=0.1, reverse_s=1.0, exit_s=0.5, exit_throttle=0.3)
    for _ in range(10):
        plain(policy[:1], _proprio([0.0], [-1.0]))
    assert plain(policy[:1], _proprio([0.0], [-1.0]))[0, 1] == pytest.approx(0.3)   # without: throttle at once
    assert AgentConfig(recovery_swing=True).recovery_swing and "recovery_swing" in AgentConfig.SAFETY_LAYERS


def test_the_reflex_takes_torch_actions_and_refuses_bad_settings():
    reflex = RecoveryReflex(1, trigger_s=0.0, reverse_s=1.0, exit_s=0.0, exit_throttle=0.0)
    out = reflex(torch.tensor([[0.5, 0.5]]), torch.as_tensor(_proprio([0.0], [0.0])))
    assert torch.is_tensor(out) and out[0, 1] == -1.0 and out[0, 0] < 0   # straight: it turns the nose left
    with pytest.raises(ValueError, match="exit_throttle must be in"):
        RecoveryReflex(1, 1.5, 3.0, 1.5, 1.5)
    with pytest.raises(ValueError, match="reverse_s"):
        RecoveryReflex(1, 1.5, -1.0, 1.5, 0.3)
    with pytest.raises(ValueError, match="agent.recovery_exit_throttle=2.0"):
        AgentConfig(recovery_exit_throttle=2.0)


def test_a_car_crawling_below_the_stop_speed_triggers_the_reflex_and_one_above_it_does_not():
    """``recovery_stop_mps``: a car crawling at 2 m/s (along a barrier, the wrong way) counts as stopped under a
    3 m/s trigger speed, not under the default 1 m/s."""
    default = RecoveryReflex(2, trigger_s=0.5, reverse_s=1.0, exit_s=0.5, exit_throttle=0.3)
    faster = RecoveryReflex(2, trigger_s=0.5, reverse_s=1.0, exit_s=0.5, exit_throttle=0.3, stop_mps=3.0)
    policy = np.array([[0.0, 0.4], [0.0, 0.4]], np.float32)
    proprio = _proprio([2.0, 4.0], [0.0, 0.0])               # car 0 crawls at 2 m/s, car 1 drives at 4 m/s
    for _ in range(5):
        default(policy, proprio)
        out = faster(policy, proprio)
    assert default.count.tolist() == [0, 0] and faster.count.tolist() == [1, 0]
    assert out[0, 1] == -1.0 and out[1, 1] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="stop_mps"):
        RecoveryReflex(1, 1.5, 3.0, 1.5, 0.3, stop_mps=-1.0)
    with pytest.raises(ValueError, match="agent.recovery_stop_mps=-1.0"):
        AgentConfig(recovery_stop_mps=-1.0)


def test_with_side_yaw_the_reflex_turns_the_nose_back_against_the_last_seconds_rotation_whatever_the_steering():
    """``recovery_side='yaw'``: car 0 spun left (yaw rate +) and car 1 right before they stopped, both steering
    left; car 2 did not turn and keeps the steering's side (right). With 'steer' all follow the steering."""
    steps = round(YAW_WINDOW_S * 10)
    yaw, steer = RecoveryReflex(3, 0.5, 1.0, 0.5, 0.3, side="yaw"), RecoveryReflex(3, 0.5, 1.0, 0.5, 0.3)
    policy = np.zeros((3, 2), np.float32)
    spinning = _proprio([20.0, 20.0, 20.0], [0.5, 0.5, -0.5])
    spinning[:, YAW_RATE] = [2.0, -2.0, 0.0]
    for _ in range(steps - 5):
        yaw(policy, spinning), steer(policy, spinning)
    stopped = _proprio([0.0, 0.0, 0.0], [0.5, 0.5, -0.5])
    for _ in range(5):
        out_yaw, out_steer = yaw(policy, stopped), steer(policy, stopped)
    assert yaw.count.tolist() == [1, 1, 1] and steer.count.tolist() == [1, 1, 1]
    assert yaw.side.tolist() == [-1.0, 1.0, -1.0] and steer.side.tolist() == [1.0, 1.0, -1.0]
    assert out_yaw[0, 0] > 0 and out_yaw[1, 0] < 0          # backing: steer away from the side it turns the nose to
    state = yaw.state_dict()                                 # a resumed run takes the window up
    resumed = RecoveryReflex(3, 0.5, 1.0, 0.5, 0.3, side="yaw")
    resumed.load_state_dict(state)
    assert torch.equal(resumed.yaw_rates, yaw.yaw_rates) and resumed._ring == yaw._ring
    yaw.reset(np.array([True, False, False]))
    assert float(yaw.yaw_rates[0].abs().sum()) == 0.0 and float(yaw.yaw_rates[1].abs().sum()) > 0
    with pytest.raises(ValueError, match="recovery side must be one of"):
        RecoveryReflex(1, 1.5, 3.0, 1.5, 0.3, side="left")
    with pytest.raises(ValueError, match="agent.recovery_side='left'"):
        AgentConfig(recovery_side="left")


class StandingAgent:
    """A policy that never touches the pedals or the wheel, with the recovery reflex's settings when asked."""

    device = torch.device("cpu")

    def __init__(self, recovery):
        self.config = types.SimpleNamespace(recovery=recovery, recovery_trigger_s=1.0, recovery_reverse_s=3.0,
                                            recovery_exit_s=1.0, recovery_exit_throttle=0.3)

    def initial_hidden(self, n):
        return torch.zeros(n, 0)

    def act(self, obs, hidden, eval_mode=False):
        return np.zeros((len(hidden), 2), np.float32), hidden


@pytest.mark.parametrize("recovery", [False, True])
def test_in_a_race_a_car_that_stands_still_is_backed_off_by_its_reflex_and_the_actions_taken_are_the_reflexs(
        recovery):
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=1, num_opponents=0, start="grid_back", start_speed_mps=0.0,
                        image_size=16, render_image=False)
    rollout = Rollout(envs, StandingAgent(recovery), seed=0, eval_mode=True)
    speeds, pedals = [], []
    for _ in range(35):
        step = rollout.step()
        speeds.append(float(step.next_obs["proprio"][0, FORWARD_SPEED]))
        pedals.append(float(step.action[0, 1]))
    if recovery:
        assert pedals[9] == -1.0 and min(speeds) < -0.5   # from 1 s standing it brakes, and reverse engages
        state = rollout.state_dict()
        assert state["reflex"]["count"].tolist() == [1]
        resumed = Rollout(envs, StandingAgent(recovery), seed=1, eval_mode=True)   # a resumed run takes its clocks up
        resumed.load_state_dict(state)
        assert int(resumed.reflex.since[0]) == int(rollout.reflex.since[0]) == 25 and bool(resumed.reflex.acting()[0])
    else:
        assert set(pedals) == {0.0} and max(abs(s) for s in speeds) < 0.1 and "reflex" not in rollout.state_dict()
    envs.close()


class CountingAgent(StandingAgent):
    """A standing policy whose memory counts its steps."""

    def __init__(self, forget):
        super().__init__(True)
        self.config.recovery_forget = forget

    def initial_hidden(self, n):
        return torch.zeros(n, 1)

    def act(self, obs, hidden, eval_mode=False):
        return np.zeros((len(hidden), 2), np.float32), hidden + 1


@pytest.mark.parametrize("forget", [False, True])
def test_with_forget_the_actors_memory_starts_afresh_when_the_reflex_hands_the_wheel_back(forget):
    """``recovery_forget``: the reflex (1 s stopped, 3 s back, 1 s out) hands back after its 40th step; the policy's
    memory then restarts from zero (with forget) or runs on (without)."""
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=1, num_opponents=0, start="grid_back", start_speed_mps=0.0,
                        image_size=16, render_image=False)
    rollout = Rollout(envs, CountingAgent(forget), seed=0, eval_mode=True)
    acting, memory = [], []
    for _ in range(55):
        rollout.step()
        acting.append(bool(rollout.reflex.acting()[0]))
        memory.append(float(rollout.hidden[0, 0]))
    last = max(i for i, a in enumerate(acting) if a)         # the reflex's last step
    assert acting[last - 1] and not acting[last + 1] and last == 9 + 40 - 1
    if forget:
        assert memory[last] == 0.0 and memory[last + 1] == 1.0 and memory[last - 1] == last
    else:
        assert memory == [float(i + 1) for i in range(55)]
    envs.close()


def test_a_vision_agent_exported_with_the_reflex_races_with_it_and_its_networks_are_unchanged(tmp_path,
                                                                                              smoke_vision_run):
    """`gtvision export --set agent.recovery=true`: the reflex reads proprio only, so a vision agent may have it; the
    evaluation's rollout then drives through it."""
    from gtvision import checkpoints, cli
    from gtvision.evaluation import evaluate, race_envs

    run = smoke_vision_run
    out = tmp_path / "reflex"
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(out), "--set", "agent.recovery=true",
                     "--set", "agent.recovery_trigger_s=1.0", "--set", "agent.recovery_stop_mps=3.0"]) == 0
    config = checkpoints.run_preset(out).agent
    assert config.recovery and config.recovery_trigger_s == 1.0 and config.actor_keys == ("image", "proprio")
    envs, agent = race_envs(out, "tokyo", 2, 1, "cpu")
    reflex = Rollout(envs, agent, seed=0, eval_mode=True).reflex
    envs.close()
    assert reflex is not None and reflex.trigger_s == 1.0 and reflex.stop_mps == 3.0
    assert len(evaluate(out, "tokyo", episodes=1, seed=0, laps=1, progress=False)) == 1
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "bad"),
                     "--set", "agent.recovery_exit_throttle=3"]) == 2


class _Compass:
    """A compass that reads 'nose left' off a bright first pixel's red and 'facing backwards' off its green."""

    def __init__(self):
        self.read = 0

    def __call__(self, images):
        self.read += len(images)
        pixel = torch.as_tensor(images)[:, 0, 0].float()
        return torch.stack([127 - pixel[:, 1], pixel[:, 0] - 127], 1)   # logits of cos psi > 0, sin psi > 0


def test_with_side_compass_the_reflex_turns_the_nose_away_from_the_side_the_compass_says_it_points_to():
    """Backing off, the wheel goes to the side the nose points to; driving out, to the other (back towards the
    course). The compass reads a frame only where a reflex begins; the steering plays no part."""
    compass = _Compass()
    reflex = RecoveryReflex(2, trigger_s=0.1, reverse_s=1.0, exit_s=1.0, exit_throttle=0.3, side="compass",
                            compass=compass)
    images = np.zeros((2, 8, 8, 3), np.uint8)
    images[0] = 255                                            # car 0: nose left of the course; car 1: right
    policy = np.zeros((2, 2), np.float32)
    proprio = _proprio([0.0, 0.0], [0.5, 0.5])                 # both steering left
    out = reflex(policy, proprio, images)
    assert reflex.side.tolist() == [-1.0, 1.0] and compass.read == 2
    assert out[0, 0] > 0 and out[1, 0] < 0                     # backing: the wheel towards the nose's side
    for _ in range(10):
        out = reflex(policy, proprio, images)
    assert out[0, 0] < 0 and out[1, 0] > 0 and compass.read == 2   # out: right for car 0, left for car 1
    with pytest.raises(ValueError, match="needs a compass"):
        RecoveryReflex(1, 1.0, 1.0, 1.0, 0.3, side="compass")
    reflex = RecoveryReflex(1, trigger_s=0.1, reverse_s=1.0, exit_s=1.0, exit_throttle=0.3, side="compass",
                            compass=compass)
    with pytest.raises(ValueError, match="image="):
        reflex(policy[:1], proprio[:1])


def test_with_turn_the_reflex_runs_cycles_in_a_row_while_the_compass_reads_the_car_backwards():
    """Car 0 faces backwards for two cycles, then along the course: three cycles in a row, then the policy. Car 1
    faces backwards throughout: ``TURN_CYCLES`` in a row, then the policy. Without ``turn``, one cycle each."""
    from gtvision.agent.recovery import TURN_CYCLES

    def run(turn):
        reflex = RecoveryReflex(2, trigger_s=0.1, reverse_s=0.5, exit_s=0.5, exit_throttle=0.3, side="compass",
                                compass=_Compass(), turn=turn)
        images = np.zeros((2, 8, 8, 3), np.uint8)
        images[:, 0, 0, 1] = 255                                      # both backwards
        policy, proprio = np.zeros((2, 2), np.float32), _proprio([0.0, 0.0], [0.0, 0.0])
        acting = []
        for step in range(90):
            if step == 25:                                            # car 0 faces along the course from 2.5 s
                images[0, 0, 0, 1] = 0                                # (and moves: the policy drives it off)
                proprio = _proprio([5.0, 0.0], [0.0, 0.0])
            reflex(policy, proprio, images)
            acting.append(reflex.acting().tolist())
        return reflex, np.array(acting)

    reflex, acting = run(turn=True)
    assert acting[:30, 0].all() and not acting[30:40, 0].any()        # cycles of 1 s from step 0: 3 in a row
    assert reflex.count[0] == 3 and acting[:TURN_CYCLES * 10, 1].all()
    assert not acting[TURN_CYCLES * 10, 1]                            # then the policy, whatever the compass says
    reflex, acting = run(turn=False)
    assert acting[:10].all() and not acting[10, 0]                    # one cycle, then the policy
    with pytest.raises(ValueError, match="side 'compass'"):
        RecoveryReflex(1, 1.0, 1.0, 1.0, 0.3, side="yaw", turn=True)
    with pytest.raises(ValueError, match="recovery_side='compass'"):
        AgentConfig(recovery_turn=True)


def test_with_wrong_way_the_reflex_begins_when_the_compass_reads_a_slow_car_backwards_for_long_enough():
    """Car 0 crawls (5 m/s) facing backwards: after 2 s the reflex begins, moving as it is. Car 1 faces backwards at
    20 m/s (racing: never). Car 2 crawls backwards for 1.5 s, then faces along the course: never. Off (0 s): never."""
    def run(wrong_way_s):
        reflex = RecoveryReflex(3, trigger_s=1.5, reverse_s=1.0, exit_s=1.0, exit_throttle=0.3, side="compass",
                                compass=_Compass(), wrong_way_s=wrong_way_s)
        images = np.zeros((3, 8, 8, 3), np.uint8)
        images[:, 0, 0, 1] = 255
        proprio = _proprio([5.0, 20.0, 5.0], [0.0, 0.0, 0.0])
        began = []
        for step in range(30):
            if step == 15:
                images[2, 0, 0, 1] = 0
            reflex(np.zeros((3, 2), np.float32), proprio, images)
            began.append((reflex.since == 0).tolist())
        return np.array(began), reflex

    began, reflex = run(2.0)
    assert began[:, 0].nonzero()[0].tolist() == [19] and not began[:, 1:].any()
    assert reflex.count.tolist() == [1, 0, 0]
    began, _ = run(0.0)
    assert not began.any()
    with pytest.raises(ValueError, match="side 'compass'"):
        RecoveryReflex(1, 1.0, 1.0, 1.0, 0.3, wrong_way_s=2.0)
    with pytest.raises(ValueError, match="recovery_side='compass'"):
        AgentConfig(recovery_wrong_way_s=2.0)


def test_compass_scenes_put_the_learner_at_its_labelled_heading_within_the_walls_among_other_cars():
    from gtvision.agent.compass import MAX_CARS, compass_frames, compass_scenes
    from gtvision.sim.cars import get_car
    from gtvision.sim.circuits import load_track

    track, car = load_track("tokyo"), get_car("audi_tt_cup_16")
    x, y, yaw, s, psi = compass_scenes(track, car, 400, torch.Generator().manual_seed(0))
    assert x.shape == (400, 1 + MAX_CARS) and psi.abs().max() <= torch.pi
    heading = track.heading_rad[track.station_of_s(s)]
    err = torch.atan2(torch.sin(yaw[:, 0] - heading - psi), torch.cos(yaw[:, 0] - heading - psi))
    assert err.abs().max() < 1e-4                               # the label is the heading it stands at
    station = track.station_of_s(s)
    lat = ((x[:, 0] - track.x[station]) * -torch.sin(track.heading_rad[station])
           + (y[:, 0] - track.y[station]) * torch.cos(track.heading_rad[station]))
    assert bool((lat < track.wall_left_m[station]).all() and (lat > -track.wall_right_m[station]).all())
    near = (torch.hypot(x[:, 1:] - x[:, :1], y[:, 1:] - y[:, :1]) < 40).sum(1)
    assert 1.5 < near.float().mean() < MAX_CARS                 # other cars stand around most learners
    a, s_a, psi_a = compass_frames("tokyo", 40, seed=3)
    b, _, psi_b = compass_frames("tokyo", 40, seed=3)
    assert a.shape == (40, 64, 64, 3) and a.dtype == torch.uint8 and torch.equal(a, b) and torch.equal(psi_a, psi_b)


def test_an_agent_exported_with_the_compass_side_gets_a_compass_stored_with_it_and_races_through_it(
        tmp_path, smoke_vision_run, monkeypatch):
    """`gtvision export --set agent.recovery_side=compass` trains a compass (here a small one), stores it as the part
    'compass' with its training seconds, and the reflex of the loaded agent reads it; an export of that export keeps
    it; an actor that reads no image refuses the compass side."""
    from gtvision import checkpoints, cli
    from gtvision.agent import compass as compass_module
    from gtvision.evaluation import evaluate, race_envs

    small = compass_module.train_compass
    monkeypatch.setattr(compass_module, "train_compass",
                        lambda scenario, **kw: small(scenario, **{**kw, "frames": 600, "epochs": 1}))
    out = tmp_path / "compass"
    assert cli.main(["export", "--checkpoint", str(smoke_vision_run), "--out", str(out), "--set",
                     "agent.recovery=true", "--set", "agent.recovery_side=compass"]) == 0
    exported = checkpoints.read_run_config(out)["exported_from"]
    assert exported["compass"]["frames"] == 600 and exported["compass"]["seconds"] > 0
    assert checkpoints.COMPASS in exported["parts"]
    envs, agent = race_envs(out, "tokyo", 2, 1, "cpu")
    reflex = Rollout(envs, agent, seed=0, eval_mode=True).reflex
    envs.close()
    assert reflex.side_rule == "compass" and isinstance(reflex.compass, compass_module.Compass)
    assert len(evaluate(out, "tokyo", episodes=1, seed=0, laps=1, progress=False)) == 1
    again = tmp_path / "again"
    monkeypatch.setattr(compass_module, "train_compass", lambda *a, **k: pytest.fail("trained a second compass"))
    assert cli.main(["export", "--checkpoint", str(out), "--out", str(again), "--half"]) == 0
    kept = checkpoints.load_state(checkpoints.resolve(again)[0])["agent"][checkpoints.COMPASS]
    stored = checkpoints.load_state(checkpoints.resolve(out)[0])["agent"][checkpoints.COMPASS]
    assert torch.allclose(kept["net.0.weight"].float(), stored["net.0.weight"], atol=1e-3)
    shared = tmp_path / "shared"                                # another agent takes this one's compass
    assert cli.main(["export", "--checkpoint", str(smoke_vision_run), "--out", str(shared), "--set",
                     "agent.recovery=true", "--set", "agent.recovery_side=compass", "--compass-from", str(out)]) == 0
    taken = checkpoints.load_state(checkpoints.resolve(shared)[0])["agent"][checkpoints.COMPASS]
    assert torch.equal(taken["net.0.weight"], stored["net.0.weight"])
    assert checkpoints.read_run_config(shared)["exported_from"]["compass"]["from"] == str(out)
    with pytest.raises(ValueError, match="holds no compass"):
        checkpoints.export(smoke_vision_run, tmp_path / "none", compass_from=smoke_vision_run)
    with pytest.raises(ValueError, match="reads the image"):
        AgentConfig(recovery=True, recovery_side="compass", actor_keys=("proprio",)).check_layers(("proprio",))


def test_with_crawl_a_slow_car_read_backwards_turns_round_at_full_lock_towards_the_course_until_read_along_it():
    """Car 0 stands facing backwards, nose left: after two readings it steers to the right lock at a crawl (throttle,
    at most CRAWL_THROTTLE) until the compass reads it along the course three times in a row, then the policy drives.
    Car 1 faces backwards at 20 m/s (racing: never); car 2 reads backwards once only (one wrong reading: never).
    Car 3 turns but stands still (its nose at a barrier): after CRAWL_STOP_S a reflex cycle backs it off. Car 4 slides
    backwards at 10 m/s in a spin, its forward speed -10 (not a crawl: never; the plain reflex's clock counts it)."""
    from gtvision.agent.recovery import CRAWL_CLEAR, CRAWL_ENTER, CRAWL_STOP_S, CRAWL_THROTTLE

    reflex = RecoveryReflex(5, trigger_s=1.5, reverse_s=1.0, exit_s=1.0, exit_throttle=0.3, side="compass",
                            compass=_Compass(), crawl=True)
    images = np.zeros((5, 8, 8, 3), np.uint8)
    images[:, 0, 0] = (255, 255, 0)                                   # backwards, nose left
    policy = np.full((5, 2), 0.7, np.float32)                        # the policy: left, throttle
    speeds, outs, crawling = [2.0, 20.0, 2.0, 0.0, -10.0], [], []
    for step in range(45):
        if step == 1:
            images[2, 0, 0, 1] = 0                                    # car 2 reads along from its second step
        if step == 20:
            images[0, 0, 0, 1] = 0                                    # car 0 faces along the course from step 20
        outs.append(reflex(policy, _proprio(speeds, [0.0] * 5), images))
        crawling.append(reflex.crawling.tolist())
    outs, crawling = np.array(outs), np.array(crawling)
    first = CRAWL_ENTER - 1
    assert not crawling[:first, 0].any() and crawling[first:20 + CRAWL_CLEAR - 1, 0].all()
    assert not crawling[20 + CRAWL_CLEAR - 1:, 0].any()
    assert (outs[first:20, 0, 0] < 0).all()                           # right, whatever the policy's left
    assert np.allclose(outs[first:20, 0, 1], min(0.45 * 3.0, CRAWL_THROTTLE))
    assert np.allclose(outs[20 + CRAWL_CLEAR:, 0], 0.7)               # then the policy's
    assert not crawling[:, 1:3].any() and np.allclose(outs[:, 1:3], 0.7)
    stop = first + round(CRAWL_STOP_S * 10)                           # car 3: a cycle begins, backing off (brake)
    assert crawling[stop, 3] and reflex.count[3] >= 1
    assert outs[stop + 1, 3, 1] == -1.0 and outs[stop + 1, 3, 0] > 0  # backing: the wheel to the nose's side (left)
    assert outs[first + 1, 3, 0] < 0                                  # before it, turning right
    assert not crawling[:, 4].any() and np.allclose(outs[:14, 4], 0.7)  # the spin: the policy's, then the reflex's
    sideways = RecoveryReflex(1, 1.5, 1.0, 1.0, 0.3, side="compass", compass=_Compass(), crawl=True)
    slide = _proprio([1.0], [0.0])
    slide[0, LATERAL_SPEED] = 12.0                                # 1 m/s forward, 12 m/s sideways: no crawl
    for _ in range(5):
        sideways(policy[:1], slide, images[:1])
    assert not sideways.crawling[0]
    with pytest.raises(ValueError, match="side 'compass'"):
        RecoveryReflex(1, 1.0, 1.0, 1.0, 0.3, crawl=True)
    with pytest.raises(ValueError, match="recovery_side='compass'"):
        AgentConfig(recovery_crawl=True)


def test_a_turn_at_a_crawl_keeps_the_side_it_began_with_and_its_back_offs_turn_the_same_way():
    """Near 180 degrees the compass's side flips with a few degrees of heading (thirty-fourth session: a car turning
    round swung back and forth, each back-off undoing the turn). Car 0 begins its turn nose left (steering right); its
    readings then say nose right while still backwards: it keeps steering right. Car 1 does the same standing at a
    barrier: its back-off steers the wheel left (reversing, the nose goes on turning right), as it would have had the
    reading not flipped."""
    from gtvision.agent.recovery import CRAWL_ENTER, CRAWL_STOP_S

    reflex = RecoveryReflex(2, trigger_s=1.5, reverse_s=1.0, exit_s=1.0, exit_throttle=0.3, side="compass",
                            compass=_Compass(), crawl=True)
    images = np.zeros((2, 8, 8, 3), np.uint8)
    images[:, 0, 0] = (255, 255, 0)                                   # backwards, nose left
    policy = np.full((2, 2), 0.7, np.float32)
    outs = []
    for step in range(20):
        if step == CRAWL_ENTER + 1:
            images[:, 0, 0, 0] = 0                                    # still backwards, now read nose right
        outs.append(reflex(policy, _proprio([2.0, 0.0], [0.0, 0.0]), images))
    outs = np.array(outs)
    assert reflex.crawling.all() and reflex.count[0] == 0
    assert (outs[CRAWL_ENTER - 1:, 0, 0] < 0).all()                   # right all along, the flip notwithstanding
    stop = CRAWL_ENTER - 1 + round(CRAWL_STOP_S * 10)                 # car 1's back-off, begun after the flip
    assert reflex.count[1] == 1 and reflex.side[1] == -1.0
    assert outs[stop + 1, 1, 1] == -1.0 and outs[stop + 1, 1, 0] > 0  # backing with the wheel to the left
