"""Benchmarks behind ``gtvision bench ...``: throughput measured against a reference in the same run.

``bench sim``: agent-steps per second of the simulator. One agent-step is one 10 Hz control step of
a 20-car race (6 physics ticks at 60 Hz, the BIAI driving the 19 opponents) in which the agent's car
is rendered at 64x64, as a rollout worker needs it. The agent's car is the last of the grid, as in the
paper's evaluation races (IV-C): its view is full of cars, the renderer's costliest case. The reference is gymnasium's ``CarRacing-v3``
(box2d, one car, 96x96 frames), stepped in the same process just before.

``bench env``: the same agent-steps through ``gymnasium.make_vec`` (the native vector environment),
so including what the environment adds to the simulator: the observation (proprioceptive features,
course points, opponent grid), the eight reward terms, episode bookkeeping, ``info`` and the copies
to numpy. The reference is ``bench sim``'s agent-step at the same number of races, alternating with
it step by step in the same run; the target is at most 20% more time per step than the bare simulator.
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


class _BareSim:
    """The bare simulator's agent-step as ``bench sim`` times it: the BIAI drives the opponents, the
    agent's car (0) takes the given actions, ``core.step``, then the agent's view is rendered."""

    def __init__(self, params: core.SimParams, state: core.SimState, agent_actions: torch.Tensor,
                 image_size: int = 64, agent: int | None = None):
        self.params, self.state = params, state
        self.plan = driving_plan(params.track, params.car)
        self.agent_actions = agent_actions.to(params.device)
        """(steps, R, 2) the agent's actions, one row per step."""
        self.cam = CameraConfig(height_px=image_size, width_px=image_size)
        self.agent = state.num_cars - 1 if agent is None else agent
        """The agent's car: by default the last of the grid."""
        self.ego = torch.full((state.num_races,), self.agent, dtype=torch.long, device=params.device)

    @classmethod
    def rolling(cls, num_races: int, scenario: str, steps: int, device: str, num_cars: int, image_size: int,
                seed: int, compile: bool = False) -> _BareSim:
        """Races in grid formation at random points of the lap, rolling at 20 m/s; random actions."""
        sc = get_scenario(scenario)
        params = core.make_params(sc.track, sc.car, device=device, compile=compile)
        gen = torch.Generator().manual_seed(seed)
        state = core.reset(params, num_races, num_cars, start="random", generator=gen, initial_speed_mps=20.0)
        return cls(params, state, torch.rand(steps, num_races, 2, generator=gen) * 2 - 1, image_size)

    def step(self, k: int) -> tuple[float, float]:
        """Agent-step ``k``; returns the seconds spent in ``core.step`` and in rendering."""
        params, car = self.params, self.params.car
        controls = biai_controls(self.state, params, self.plan)
        controls[:, self.agent] = self.agent_actions[k]  # a policy's actions, not the BIAI's
        t0 = time.perf_counter()
        self.state = core.step(self.state, controls, params)
        t1 = time.perf_counter()
        s = self.state
        render_ego(params.track, s.x, s.y, s.yaw, self.ego, car.length_m, car.width_m, car.height_m,
                   self.cam, station=s.station)
        if params.device.type == "cuda":
            torch.cuda.synchronize()
        return t1 - t0, time.perf_counter() - t1


def sim_agent_steps_per_s(num_races: int, scenario: str = "tokyo", steps: int = 20, device: str = "cpu",
                          num_cars: int = core.GRID_SIZE, image_size: int = 64, seed: int = 0,
                          compile: bool = False) -> dict:
    """Agent-steps/s of ``num_races`` parallel races (see the module docstring), and the split."""
    sim = _BareSim.rolling(num_races, scenario, steps + 2, device, num_cars, image_size, seed, compile)
    for k in range(2):  # warm-up (allocator, caches, lazily built tables, compilation)
        sim.step(k)
    t_sim = t_render = 0.0
    t0 = time.perf_counter()
    for k in range(steps):
        ds, dr = sim.step(k + 2)
        t_sim += ds
        t_render += dr
    total = time.perf_counter() - t0
    return {"races": num_races, "agent_steps_per_s": num_races * steps / total,
            "sim_ms_per_step": 1e3 * t_sim / steps, "render_ms_per_step": 1e3 * t_render / steps,
            "biai_ms_per_step": 1e3 * (total - t_sim - t_render) / steps}


def bench_sim(races=(64, 256, 1024), scenario: str = "tokyo", steps: int = 20, device: str = "cpu",
              carracing_seconds: float = 5.0, compile: bool = False) -> list[dict]:
    """Run the simulator benchmark at each number of parallel races, next to CarRacing-v3."""
    ref = carracing_steps_per_s(carracing_seconds)
    rows = []
    for r in races:
        row = sim_agent_steps_per_s(int(r), scenario=scenario, steps=steps, device=device, compile=compile)
        row["carracing_steps_per_s"] = ref
        row["ratio_vs_carracing"] = None if ref is None else row["agent_steps_per_s"] / ref
        rows.append(row)
    return rows


def _seconds(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def bench_env(races=(64, 256), scenario: str = "tokyo", steps: int = 20, device: str = "cpu",
              seed: int = 0, compile: bool = False) -> list[dict]:
    """Agent-steps/s through ``gymnasium.make_vec`` next to the bare simulator, per number of races.

    The environment runs 20-car races (19 BIAI opponents) with random agent actions; the bare
    simulator starts from a copy of its first state and takes the same actions, so both simulate the
    same races. Their steps alternate, one of each in turn (in alternating order), so that other jobs
    on a shared machine slow both alike, and each is timed by its median step. ``overhead`` is the environment's extra
    time per step (target: at most 20%).
    """
    import gymnasium as gym
    import numpy as np

    from .env import ENV_IDS

    sc = get_scenario(scenario)
    rows = []
    for r in races:
        r = int(r)
        envs = gym.make_vec(ENV_IDS[sc.name], num_envs=r, num_opponents=core.GRID_SIZE - 1, device=device,
                             compile=compile)
        envs.reset(seed=seed)
        actions = np.random.default_rng(seed).uniform(-1.0, 1.0, (steps + 2, r, 2)).astype(np.float32)
        batch = envs.unwrapped.batch
        sim = _BareSim(batch.params, batch.state, torch.from_numpy(actions), agent=0)  # the env's learner
        t_sim, t_env = [], []
        for k in range(steps + 2):  # the first two of each warm up (allocator, caches, tables)
            # the order within a pair alternates too: the second of the two finds warmer caches
            if k % 2 == 0:
                ds, de = _seconds(sim.step, k), _seconds(envs.step, actions[k])
            else:
                de, ds = _seconds(envs.step, actions[k]), _seconds(sim.step, k)
            if k >= 2:
                t_sim.append(ds)
                t_env.append(de)
        envs.close()
        sim_s, env_s = float(np.median(t_sim)), float(np.median(t_env))
        rows.append({"races": r, "sim_ms_per_step": 1e3 * sim_s, "env_ms_per_step": 1e3 * env_s,
                     "sim_agent_steps_per_s": r / sim_s, "env_agent_steps_per_s": r / env_s,
                     "overhead": env_s / sim_s - 1.0})
    return rows
