"""Benchmarks behind ``gtvision bench ...``: throughput measured against a reference in the same run.

``bench sim``: agent-steps per second of the simulator. One agent-step is one 10 Hz control step of
a 20-car race (6 physics ticks at 60 Hz, the BIAI driving the 19 opponents) in which the agent's car
is rendered at 64x64, as a rollout worker needs it. The reference is gymnasium's ``CarRacing-v3``
(box2d, one car, 96x96 frames), stepped in the same process just before.
"""
from __future__ import annotations

import time

import torch

from .scenarios import get_scenario
from .sim import core
from .sim.biai import biai_controls, driving_plan
from .sim.render import CameraConfig, render_ego


def carracing_steps_per_s(seconds: float = 5.0, seed: int = 0) -> float | None:
    """Steps per second of gymnasium's CarRacing-v3 with random actions; None without box2d."""
    try:
        import gymnasium as gym
        env = gym.make("CarRacing-v3")
    except Exception:  # box2d missing: gymnasium raises DependencyNotInstalled
        return None
    env.reset(seed=seed)
    env.action_space.seed(seed)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        n += 1
        if term or trunc:
            env.reset()
    rate = n / (time.perf_counter() - t0)
    env.close()
    return rate


def sim_agent_steps_per_s(num_races: int, scenario: str = "tokyo", steps: int = 20, device: str = "cpu",
                          num_cars: int = core.GRID_SIZE, image_size: int = 64, seed: int = 0) -> dict:
    """Agent-steps/s of ``num_races`` parallel races (see the module docstring), and the split."""
    sc = get_scenario(scenario)
    params = core.make_params(sc.track, sc.car, device=device)
    plan = driving_plan(params.track, params.car)
    gen = torch.Generator().manual_seed(seed)
    state = core.reset(params, num_races, num_cars, start="random", generator=gen,
                       initial_speed_mps=20.0)
    cam = CameraConfig(height_px=image_size, width_px=image_size)
    ego = torch.zeros(num_races, dtype=torch.long, device=params.device)
    car = params.car
    agent_actions = torch.rand(steps + 2, num_races, 2, generator=gen).to(params.device) * 2 - 1

    def one(k, state):
        controls = biai_controls(state, params, plan)
        controls[:, 0] = agent_actions[k]  # the agent's car: a policy's actions, not the BIAI's
        t0 = time.perf_counter()
        state = core.step(state, controls, params)
        t1 = time.perf_counter()
        img = render_ego(params.track, state.x, state.y, state.yaw, ego, car.length_m, car.width_m,
                         car.height_m, cam, station=state.station)
        if params.device.type == "cuda":
            torch.cuda.synchronize()
        return state, t1 - t0, time.perf_counter() - t1, img

    for k in range(2):  # warm-up (allocator, caches, lazily built tables)
        state, *_ = one(k, state)
    t_sim = t_render = 0.0
    t0 = time.perf_counter()
    for k in range(steps):
        state, ds, dr, _ = one(k + 2, state)
        t_sim += ds
        t_render += dr
    total = time.perf_counter() - t0
    return {"races": num_races, "agent_steps_per_s": num_races * steps / total,
            "sim_ms_per_step": 1e3 * t_sim / steps, "render_ms_per_step": 1e3 * t_render / steps,
            "biai_ms_per_step": 1e3 * (total - t_sim - t_render) / steps}


def bench_sim(races=(64, 256, 1024), scenario: str = "tokyo", steps: int = 20, device: str = "cpu",
              carracing_seconds: float = 5.0) -> list[dict]:
    """Run the simulator benchmark at each number of parallel races, next to CarRacing-v3."""
    ref = carracing_steps_per_s(carracing_seconds)
    rows = []
    for r in races:
        row = sim_agent_steps_per_s(int(r), scenario=scenario, steps=steps, device=device)
        row["carracing_steps_per_s"] = ref
        row["ratio_vs_carracing"] = None if ref is None else row["agent_steps_per_s"] / ref
        rows.append(row)
    return rows
