"""The same code on CUDA (``device=``): simulator, renderer, environments, learner, training and the committed agent.

Skipped where no GPU is visible (CI, the 2-core machines); run on a GPU machine with ``pytest tests/test_cuda.py``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from test_agent import OBS_SPACE, make_agent, random_batch
from test_sim import _bop_rollout

from gtvision import checkpoints
from gtvision.sim import core
from gtvision.sim.circuits import load_track
from gtvision.sim.render import CameraConfig, render_ego

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")

AGENT = Path(__file__).resolve().parents[1] / "papermill_runs" / "agents" / "tokyo_vision"


def test_the_simulator_on_cuda_drives_the_cpu_race():
    """A 20-car grid with the balance of performance, 25 ticks of random controls: the same race to float32 rounding
    (the cars bump, so the tolerance is loose), and bitwise the same race twice on the GPU."""
    cpu = core.make_params("spa", "alfa_romeo_4c_14")
    gpu = core.make_params("spa", "alfa_romeo_4c_14", device="cuda")
    _, _, a = _bop_rollout(cpu, seed=7)
    _, _, b = _bop_rollout(gpu, seed=7)
    _, _, c = _bop_rollout(gpu, seed=7)
    assert b.x.is_cuda and float(b.speed_mps.mean()) > 10.0
    for name in ("x", "y", "yaw", "vx", "vy"):
        torch.testing.assert_close(getattr(b, name).cpu(), getattr(a, name), atol=0.05, rtol=1e-3, msg=name)
        assert torch.equal(getattr(b, name), getattr(c, name)), name


def test_the_renderer_on_cuda_draws_the_cpu_images():
    track = load_track("tokyo")
    s = torch.tensor([[10.0, 25.0, 40.0], [900.0, 915.0, 930.0]])
    lat = torch.tensor([[0.0, 1.5, -1.5]]).expand(2, 3)
    x, y, _ = track.point_at(s, lat)
    yaw = track.heading_rad[track.station_of_s(s)]
    ego, cfg = torch.tensor([0, 0]), CameraConfig()
    dims = (4.3, 1.9, 1.3)
    on_cpu = render_ego(track, x, y, yaw, ego, *dims, cfg)
    on_gpu = render_ego(track.to("cuda"), x.cuda(), y.cuda(), yaw.cuda(), ego.cuda(), *dims, cfg)
    assert on_gpu.is_cuda and on_gpu.dtype == torch.uint8
    differ = (on_gpu.cpu().int() - on_cpu.int()).abs().amax(-1) > 8
    assert differ.float().mean() < 0.01, f"{differ.float().mean():.3%} of the pixels differ"


def test_the_racing_env_steps_on_cuda_and_hands_numpy_to_gymnasium():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, device="cuda", num_opponents=3, max_time_s=3.0)
    obs, info = envs.reset(seed=0)
    assert obs["image"].shape == (2, 64, 64, 3) and isinstance(obs["image"], np.ndarray)
    for _ in range(5):
        obs, reward, terminated, truncated, info = envs.step(np.tile([[0.0, 1.0]], (2, 1)).astype(np.float32))
    assert np.all(np.isfinite(reward)) and np.all(np.isfinite(obs["proprio"]))
    envs.close()


def test_the_vision_learner_updates_on_cuda():
    torch.manual_seed(0)
    agent, preset = make_agent("asymmetric")
    gpu = type(agent)(OBS_SPACE, agent.action_space, preset.agent, device="cuda", burn_in=preset.replay.burn_in)
    assert next(gpu.actor.parameters()).is_cuda
    batch = random_batch(gpu, preset)
    before = [p.detach().clone() for p in gpu.actor.parameters()]
    metrics = gpu.update(batch)
    assert all(np.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(p, q) for p, q in zip(gpu.actor.parameters(), before))
    obs = {k: np.zeros((3, *s.shape), s.dtype) for k, s in OBS_SPACE.spaces.items()}
    action, hidden = gpu.act(obs, gpu.initial_hidden(3))
    assert action.shape == (3, 2) and np.all(np.abs(action) <= 1)


def test_a_run_trained_on_cuda_resumes_and_races_on_the_cpu(tmp_path):
    """The learner on the GPU (rollouts on the CPU); its checkpoint loads where no GPU is (map_location)."""
    from gtvision.evaluation import evaluate
    from gtvision.training import RunConfig, train

    config = RunConfig(scenario="tokyo", preset="smoke", total_steps=64, seed=3, device="cuda",
                       env_kwargs={"num_opponents": 1, "max_time_s": 2.0})
    run, _ = train(config, tmp_path / "run", progress=False)
    state = checkpoints.load_state(checkpoints.resolve(run)[0], map_location="cpu")
    tensors = [v for v in state["agent"]["actor"].values() if isinstance(v, torch.Tensor)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    table = evaluate(run, "tokyo", 1, 0, "cpu", laps=1, progress=False, opponents=0)
    assert len(table) == 1
    train(dataclasses.replace(config, total_steps=128), tmp_path / "run", resume=True, progress=False)


@pytest.mark.skipif(not AGENT.is_dir(), reason="the committed agent is not in this checkout")
def test_the_committed_vision_agent_races_on_cuda():
    from gtvision.evaluation import evaluate

    table = evaluate(AGENT, "tokyo", 2, 0, "cuda", laps=1, progress=False)
    assert len(table) == 2 and table["finished"].all()
