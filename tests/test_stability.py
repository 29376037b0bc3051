"""The stability aid (agent.stability): no lifting while the rear axle slides, on on-board information alone."""
import math
import types

import gymnasium as gym
import numpy as np
import pytest
import torch

from gtvision.agent.config import AgentConfig
from gtvision.agent.rollout import Rollout
from gtvision.agent.stability import FORWARD_SPEED, LATERAL_SPEED, YAW_RATE, StabilityAid, rear_axle_m
from gtvision.sim.cars import get_car

pytestmark = pytest.mark.usefixtures("one_thread")


def _proprio(vx, vy, yaw_rate):
    p = np.zeros((len(vx), 18), np.float32)
    p[:, FORWARD_SPEED], p[:, LATERAL_SPEED], p[:, YAW_RATE] = vx, vy, yaw_rate
    return p


def test_the_aid_raises_the_pedal_of_a_car_whose_rear_slides_and_leaves_the_others_and_the_steering_alone():
    aid = StabilityAid(4, rear_axle_m=1.5, slip_deg=6.0, throttle=0.3, min_mps=8.0)
    policy = np.array([[0.4, -1.0], [0.4, -1.0], [-0.2, 0.8], [0.1, -0.5]], np.float32)
    # rear slip = atan2(vy - 1.5 r, vx): car 0 -10 deg (tail out to the right, sliding), car 1 at 3 deg (gripping),
    # car 2 sliding but already on the throttle, car 3 sliding at a crawl
    vx = np.array([30.0, 30.0, 30.0, 5.0])
    vy = np.array([0.0, 30.0 * math.tan(math.radians(3.0)), 0.0, 0.0])
    r = np.array([30.0 * math.tan(math.radians(10.0)) / 1.5, 0.0, -4.0, 2.0])
    out = aid(policy, _proprio(vx, vy, r))
    np.testing.assert_array_equal(out[:, 0], policy[:, 0])
    assert out[:, 1].tolist() == pytest.approx([0.3, -1.0, 0.8, -0.5])
    assert aid.acted.tolist() == [1, 0, 1, 0]
    aid.reset(np.array([True, False, False, False]))
    assert aid.acted.tolist() == [0, 0, 1, 0]
    out = aid(torch.tensor(policy), torch.as_tensor(_proprio(vx, vy, r)))
    assert torch.is_tensor(out) and out[0, 1] == pytest.approx(0.3)


def test_the_aid_refuses_bad_settings_and_needs_the_cars_geometry():
    with pytest.raises(ValueError, match="throttle must be in"):
        StabilityAid(1, 1.5, 6.0, 1.5, 8.0)
    with pytest.raises(ValueError, match="slip_deg"):
        StabilityAid(1, 1.5, -1.0, 0.3, 8.0)
    with pytest.raises(ValueError, match="agent.stability_throttle=2.0"):
        AgentConfig(stability_throttle=2.0)
    agent = types.SimpleNamespace(config=AgentConfig(stability=True))
    with pytest.raises(ValueError, match="car's geometry"):
        StabilityAid.for_agent(agent, 1, None)
    assert StabilityAid.for_agent(types.SimpleNamespace(config=AgentConfig()), 1, None) is None
    car = get_car("audi_tt_cup_16")
    assert StabilityAid.for_agent(agent, 2, car).rear_axle_m == rear_axle_m(car) == pytest.approx(2.505 * 0.60)


class BrakingIntoACorner:
    """A policy that turns 9 degrees left under throttle from a rolling start at 40 m/s, then holds the wheel and
    brakes: the rear of the front-driven car comes round. With the aid's settings when asked."""

    device = torch.device("cpu")

    def initial_hidden(self, n):
        return torch.zeros(n, 0)

    def __init__(self, stability):
        self.config = AgentConfig(stability=stability)
        self.t = 0

    def act(self, obs, hidden, eval_mode=False):
        self.t += 1
        action = [1.0, 1.0] if self.t <= 3 else [0.0, -0.6]
        return np.tile(np.array([action], np.float32), (len(hidden), 1)), hidden


@pytest.mark.parametrize("stability", [False, True])
def test_in_a_race_the_aid_releases_the_brake_of_a_sliding_car_and_only_while_it_slides(stability):
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=1, num_opponents=0, start="grid_back", start_speed_mps=40.0,
                        image_size=16, render_image=False)
    rollout = Rollout(envs, BrakingIntoACorner(stability), seed=0, eval_mode=True)
    car = envs.unwrapped.batch.params.car
    config = AgentConfig()
    pedals, slides = [], []
    for _ in range(30):
        step = rollout.step()
        p = step.obs["proprio"][0]
        slip = math.atan2(p[LATERAL_SPEED] - rear_axle_m(car) * p[YAW_RATE], max(abs(p[FORWARD_SPEED]), 1.0))
        slides.append(abs(slip) > math.radians(config.stability_slip_deg)
                      and p[FORWARD_SPEED] > config.stability_min_mps)
        pedals.append(float(step.action[0, 1]))
    assert any(slides) and not all(slides)   # the policy's braking into the turn slides the rear, not from the start
    if stability:
        wanted = [1.0 if t < 3 else -0.6 for t in range(len(slides))]
        assert pedals == pytest.approx([config.stability_throttle if s else w for s, w in zip(slides, wanted)])
        assert int(rollout.state_dict()["stability"]["acted"][0]) == sum(slides)
    else:
        assert pedals == pytest.approx([1.0] * 3 + [-0.6] * 27)
        assert rollout.stability is None and "stability" not in rollout.state_dict()
    envs.close()


def test_a_vision_agent_exported_with_the_aid_races_with_it(tmp_path, smoke_vision_run):
    """`gtvision export --set agent.stability=true`: the aid reads proprio only, so a vision agent may have it; the
    evaluation's rollout then drives through it."""
    from gtvision import checkpoints, cli
    from gtvision.evaluation import evaluate, race_envs

    run = smoke_vision_run
    out = tmp_path / "aid"
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(out), "--set", "agent.stability=true",
                     "--set", "agent.stability_slip_deg=8"]) == 0
    config = checkpoints.run_preset(out).agent
    assert config.stability and config.stability_slip_deg == 8.0 and config.actor_keys == ("image", "proprio")
    envs, agent = race_envs(out, "tokyo", 2, 1, "cpu")
    aid = Rollout(envs, agent, seed=0, eval_mode=True).stability
    envs.close()
    assert aid is not None and aid.slip_rad == pytest.approx(math.radians(8.0)) and aid.throttle == 0.5
    assert len(evaluate(out, "tokyo", episodes=1, seed=0, laps=1, progress=False)) == 1
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "bad"),
                     "--set", "agent.stability_throttle=3"]) == 2
