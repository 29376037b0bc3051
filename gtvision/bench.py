"""Benchmarks behind ``gtvision bench ...``: throughput measured against a reference in the same run.

``bench sim``: agent-steps per second of the simulator. One agent-step is one 10 Hz control step of
a 20-car race (6 physics ticks at 60 Hz, the BIAI driving the 19 opponents) in which the agent's car
is rendered at 64x64, as a rollout worker needs it. The agent's car is the last of the grid, as in the
paper's evaluation races (IV-C): its view is full of cars, the renderer's costliest case. The reference is gymnasium's ``CarRacing-v3``
(box2d, one car, 96x96 frames), stepped in the same process just before. The races run in one
process, or split over worker processes with the threads shared among them (``processes``; the CLI's
default is one per core on CPU), as rollout workers run them: on a 2-core CPU two single-threaded
workers do about twice the work of one process with two threads, whose small tensor operations gain
little from a second thread. CarRacing-v3, one environment, uses one core either way.

``bench env``: the same agent-steps through ``gymnasium.make_vec`` (the native vector environment),
so including what the environment adds to the simulator: the observation (proprioceptive features,
course points, opponent grid), the eight reward terms, episode bookkeeping, ``info`` and the copies
to numpy. The reference is ``bench sim``'s agent-step at the same number of races, alternating with
it step by step in the same run; the target is at most 20% more time per step than the bare simulator.

``bench learner``: seconds per QR-SAC update of the ``paper`` and ``cpu`` presets on the racing
observation (a batch of random data shaped as the replay gives it), next to the machine's dense float32
matmul rate measured in the same run. The paper preset's time is reported as a multiple of its FLOP
lower bound: the update's matmul, convolution and GRU FLOPs done at that rate (target: at most 2x).
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
                 image_size: int = 64, agent: int | None = None, render: bool = True):
        self.params, self.state, self.render = params, state, render
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
        if self.render:
            render_ego(params.track, s.x, s.y, s.yaw, self.ego, car.length_m, car.width_m, car.height_m,
                       self.cam, station=s.station)
        if params.device.type == "cuda":
            torch.cuda.synchronize()
        return t1 - t0, time.perf_counter() - t1


def _timed_steps(num_races: int, scenario: str, steps: int, device: str, num_cars: int, image_size: int,
                 seed: int, compile: bool, barrier=None) -> tuple[float, float, float]:
    """Seconds of ``steps`` agent-steps after two of warm-up: in all, in ``core.step``, in rendering.
    With ``barrier`` (a worker process of :func:`sim_agent_steps_per_s`), the timed steps start together."""
    sim = _BareSim.rolling(num_races, scenario, steps + 2, device, num_cars, image_size, seed, compile)
    for k in range(2):  # warm-up (allocator, caches, lazily built tables, compilation)
        sim.step(k)
    if barrier is not None:
        barrier.wait()
    t_sim = t_render = 0.0
    t0 = time.perf_counter()
    for k in range(steps):
        ds, dr = sim.step(k + 2)
        t_sim += ds
        t_render += dr
    return time.perf_counter() - t0, t_sim, t_render


def _worker(threads: int, barrier, args: tuple, results, index: int):
    torch.set_num_threads(threads)
    results[index] = _timed_steps(*args, barrier=barrier)


def sim_agent_steps_per_s(num_races: int, scenario: str = "tokyo", steps: int = 20, device: str = "cpu",
                          num_cars: int = core.GRID_SIZE, image_size: int = 64, seed: int = 0,
                          compile: bool = False, processes: int = 1) -> dict:
    """Agent-steps/s of ``num_races`` parallel races (see the module docstring), and the split.

    ``processes`` > 1 splits the races over that many worker processes (as rollout workers run them),
    each with an equal share of torch's threads; their timed steps start together and the rate is all
    their agent-steps over the slowest one's time. The split is the mean over the workers."""
    if not 1 <= processes <= num_races:
        raise ValueError(f"processes must be in 1..races; got processes={processes}, races={num_races}")
    if processes == 1:
        total, t_sim, t_render = _timed_steps(num_races, scenario, steps, device, num_cars, image_size, seed, compile)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        threads = max(1, torch.get_num_threads() // processes)
        with ctx.Manager() as manager:
            barrier, results = manager.Barrier(processes), manager.dict()
            shares = [num_races // processes + (i < num_races % processes) for i in range(processes)]
            workers = [ctx.Process(target=_worker, args=(threads, barrier, (shares[i], scenario, steps, device,
                                                                            num_cars, image_size, seed + i,
                                                                            compile), results, i))
                       for i in range(processes)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            if len(results) != processes:
                raise RuntimeError(f"{processes - len(results)} benchmark worker(s) failed (exit codes "
                                   f"{[w.exitcode for w in workers]})")
            times = list(results.values())
        total = max(t[0] for t in times)
        t_sim = sum(t[1] for t in times) / processes
        t_render = sum(t[2] for t in times) / processes
    return {"races": num_races, "processes": processes, "agent_steps_per_s": num_races * steps / total,
            "sim_ms_per_step": 1e3 * t_sim / steps, "render_ms_per_step": 1e3 * t_render / steps,
            "biai_ms_per_step": 1e3 * (total - t_sim - t_render) / steps}


def bench_sim(races=(64, 256, 1024, 2048), scenario: str = "tokyo", steps: int = 20, device: str = "cpu",
              carracing_seconds: float = 5.0, compile: bool = False, processes: int = 1) -> list[dict]:
    """Run the simulator benchmark at each number of parallel races, next to CarRacing-v3 (one process)."""
    ref = carracing_steps_per_s(carracing_seconds)
    rows = []
    for r in races:
        row = sim_agent_steps_per_s(int(r), scenario=scenario, steps=steps, device=device, compile=compile,
                                    processes=processes)
        row["carracing_steps_per_s"] = ref
        row["ratio_vs_carracing"] = None if ref is None else row["agent_steps_per_s"] / ref
        rows.append(row)
    return rows


def _seconds(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def bench_env(races=(64, 256), scenario: str = "tokyo", steps: int = 20, device: str = "cpu",
              seed: int = 0, compile: bool = False, opponents=(19,), render_image: bool = True) -> list[dict]:
    """Agent-steps/s through ``gymnasium.make_vec`` next to the bare simulator, per number of races and of
    opponents (``opponents``: ints 0..19, or None for the training curriculum of paper IV-B, whose races hold
    20 cars, those not drawn parked off the track).

    The environment runs races against BIAI opponents with random agent actions; the bare
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
    for r, n_opp in ((int(r), n) for n in opponents for r in races):
        envs = gym.make_vec(ENV_IDS[sc.name], num_envs=r, num_opponents=n_opp, device=device, compile=compile,
                            render_image=render_image)
        envs.reset(seed=seed)
        actions = np.random.default_rng(seed).uniform(-1.0, 1.0, (steps + 2, r, 2)).astype(np.float32)
        batch = envs.unwrapped.batch
        sim = _BareSim(batch.params, batch.state, torch.from_numpy(actions), agent=0,  # the env's learner
                       render=render_image)
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
        rows.append({"races": r, "opponents": "curriculum" if n_opp is None else n_opp,
                     "sim_ms_per_step": 1e3 * sim_s, "env_ms_per_step": 1e3 * env_s,
                     "sim_agent_steps_per_s": r / sim_s, "env_agent_steps_per_s": r / env_s,
                     "overhead": env_s / sim_s - 1.0})
    return rows


# ---------------------------------------------------------------------------- learner


def matmul_gflops(n: int = 2048, seconds: float = 2.0, device: str = "cpu") -> float:
    """Dense float32 matmul throughput of the machine (GFLOP/s): (n x n) @ (n x n) repeatedly."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    torch.mm(a, b, out=out)  # warm-up
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b, out=out)
        count += 1
    if out.is_cuda:
        torch.cuda.synchronize()
    return 2.0 * n ** 3 * count / (time.perf_counter() - t0) / 1e9


def _learner_batch(agent, preset, seed: int = 0) -> dict:
    """A batch shaped as ``SequenceReplay.sample`` gives it, from random data (B sequences of W rows)."""
    from .agent.networks import is_image_space

    g = torch.Generator().manual_seed(seed)
    cfg = preset.replay
    B, L = cfg.batch_sequences, cfg.seq_len
    W = cfg.burn_in + L + preset.agent.n_step
    obs = {}
    for k in agent.replay_keys:
        space = agent.observation_space[k]
        if is_image_space(space):
            obs[k] = torch.randint(0, 256, (B, W, *space.shape), generator=g, dtype=torch.uint8)
        else:
            obs[k] = torch.randn(B, W, *space.shape, generator=g)
    first = torch.zeros(B, W, dtype=torch.bool)
    first[:, 0] = True
    dev = agent.device
    batch = {"obs": {k: v.to(dev) for k, v in obs.items()},
             "action": (torch.rand(B, W, agent.action_dim, generator=g) * 2 - 1),
             "first": first, "hidden": torch.zeros(B, agent.hidden_size),
             "nstep_return": torch.randn(B, L, generator=g), "nstep_discount": torch.full((B, L), 0.9),
             "bootstrap_index": (torch.arange(L) + cfg.burn_in + preset.agent.n_step).expand(B, L).clone(),
             "mask": torch.ones(B, L)}
    return {k: (v if k == "obs" else v.to(dev)) for k, v in batch.items()}


def update_flops(agent, batch) -> float:
    """Floating-point operations of one ``agent.update(batch)``: the matmuls and convolutions that torch's
    FlopCounterMode counts, plus the GRUs' where it does not see them (a fused GRU kernel, e.g. cuDNN's):
    6 (in + H) H per step and row forward, twice that backward where gradients flow. A GRU whose forward
    the counter did see (CPU: its matmuls) is counted once, by the counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    gru_flops, before = [0.0], {}

    def pre_hook(module, _inputs):
        before[id(module)] = counter.get_total_flops()

    def hook(module, inputs, _output):
        if counter.get_total_flops() > before.pop(id(module)):
            return  # the counter saw this GRU's matmuls (and will see their gradients)
        x = inputs[0]
        fwd = 2.0 * 3 * x.shape[0] * x.shape[1] * (module.input_size + module.hidden_size) * module.hidden_size
        gru_flops[0] += fwd * (3.0 if torch.is_grad_enabled() else 1.0)

    grus = [m for net in (agent.actor, agent.critics, agent.critic_targets) for m in net.modules()
            if isinstance(m, torch.nn.GRU)]
    handles = [h for m in grus for h in (m.register_forward_pre_hook(pre_hook), m.register_forward_hook(hook))]
    try:
        with counter:
            agent.update(batch)
    finally:
        for h in handles:
            h.remove()
    return float(counter.get_total_flops()) + gru_flops[0]


def learner_update_time(preset_name, updates: int = 3, device: str = "cpu", seed: int = 0) -> dict:
    """Seconds per QR-SAC update of a preset (a name or a ``Preset``) on the racing observation (median of
    ``updates``)."""
    import statistics

    from .agent import get_preset
    from .agent.qrsac import QRSACAgent
    from .env.racing import action_space, observation_space

    preset = get_preset(preset_name) if isinstance(preset_name, str) else preset_name
    preset_name = preset.name
    torch.manual_seed(seed)
    agent = QRSACAgent(observation_space(), action_space(), preset.agent, device, burn_in=preset.replay.burn_in)
    batch = _learner_batch(agent, preset, seed)
    flops = update_flops(agent, batch)  # also the warm-up
    times = []
    for _ in range(updates):
        t0 = time.perf_counter()
        agent.update(batch)
        if agent.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    params = sum(p.numel() for net in (agent.actor, agent.critics) for p in net.parameters())
    return {"preset": preset_name, "update_s": statistics.median(times), "gflop_per_update": flops / 1e9,
            "parameters": params, "batch": f"{preset.replay.batch_sequences}x{preset.replay.seq_len}"
                                            f" (+{preset.replay.burn_in} burn-in, +{preset.agent.n_step} n-step)"}


def bench_learner(presets=("paper", "cpu"), updates=(3, 20), device: str = "cpu",
                  matmul_seconds: float = 3.0) -> dict:
    """Update time of each preset next to the machine's dense matmul throughput (measured in the same run).

    ``x_lower_bound`` is the update time over its FLOP lower bound: the update's FLOPs done at the
    measured matmul rate (target for ``paper``: at most 2).
    """
    gflops = matmul_gflops(seconds=matmul_seconds, device=device)
    rows = []
    for name, n in zip(presets, updates):
        row = learner_update_time(name, n, device)
        row["lower_bound_s"] = row["gflop_per_update"] / gflops
        row["x_lower_bound"] = row["update_s"] / row["lower_bound_s"]
        row["updates_per_s"] = 1.0 / row["update_s"]
        rows.append(row)
    return {"matmul_gflops": gflops, "rows": rows}


def _median_times(calls: dict, block: int, rounds: int, device, prepare=None) -> dict:
    """Seconds per call of each of ``calls`` (name -> a function of no arguments), measured in the same run: every
    round times a block of ``block`` calls of each in turn, after a warm-up round; the median over ``rounds``.
    ``prepare(name)``, untimed, before each block."""
    import statistics

    times = {name: [] for name in calls}
    for r in range(rounds + 1):  # round 0 warms up
        for name, call in calls.items():
            if prepare is not None:
                prepare(name)
            t0 = time.perf_counter()
            for _ in range(block):
                call()
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize()
            if r > 0:
                times[name].append((time.perf_counter() - t0) / block)
    return {name: statistics.median(t) for name, t in times.items()}


UPDATE_CHOICES = (
    ("as the preset", {}),
    ("channels-last convolutions", {"agent.channels_last": True}),
    ("bfloat16 image encoder", {"agent.image_dtype": "bfloat16"}),
    ("actor every 2nd update", {"agent.actor_update_every": 2}),
    ("actor every 4th update", {"agent.actor_update_every": 4}),
    ("actor on half the sequences", {"agent.actor_sequences": "half"}),
    ("actor on a quarter", {"agent.actor_sequences": "quarter"}),
    ("bfloat16, actor every 2nd", {"agent.image_dtype": "bfloat16", "agent.actor_update_every": 2}),
)
"""``bench_update``'s rows: a name and the ``--set`` changes (``agent.actor_sequences`` as a share of the batch)."""

_SHARES = {"half": 2, "quarter": 4}


def bench_update(preset_name: str = "cpu", variant: str = "asymmetric", choices=UPDATE_CHOICES, rounds: int = 5,
                 device: str = "cpu", seed: int = 0) -> dict:
    """Seconds per QR-SAC update of a preset under each of ``choices`` (the ways an update can spend less on the
    vision actor), each next to the preset as it is, measured in the same run: every round times a block of
    4 updates of each choice in turn (4 holds whole cycles of a delayed actor), on one batch each, after a
    warm-up block; a row's time is the median over rounds.

    ``speedup``: the preset's update time over the choice's. ``critic_rows_per_s`` and ``actor_rows_per_s``: the
    trained rows each network learns from per second (a delayed actor or a smaller actor batch trains on fewer
    rows per update: what an update buys, not only what it costs)."""
    from .agent.presets import apply_overrides, get_preset
    from .agent.qrsac import QRSACAgent
    from .env.racing import action_space, observation_space

    base = get_preset(preset_name, variant)
    block, runs = 4, []
    for name, overrides in choices:
        overrides = dict(overrides)
        share = overrides.get("agent.actor_sequences")
        if share in _SHARES:
            overrides["agent.actor_sequences"] = max(1, base.replay.batch_sequences // _SHARES[share])
        preset = apply_overrides(base, overrides)
        torch.manual_seed(seed)
        agent = QRSACAgent(observation_space(), action_space(), preset.agent, device, burn_in=preset.replay.burn_in)
        batch = _learner_batch(agent, preset, seed)
        runs.append((name, overrides, preset, agent, batch))
    times = _median_times({name: (lambda agent=agent, batch=batch: agent.update(batch))
                           for name, _, _, agent, batch in runs}, block, rounds, device)
    rows, reference = [], times[runs[0][0]]
    for name, overrides, preset, agent, _ in runs:
        update_s = times[name]
        B, L = preset.replay.batch_sequences, preset.replay.seq_len
        m = B if preset.agent.actor_sequences is None else min(B, preset.agent.actor_sequences)
        rows.append({"choice": name, "set": " ".join(f"{k}={v}" for k, v in overrides.items()),
                     "update_s": update_s, "speedup": reference / update_s,
                     "critic_rows_per_s": B * L / update_s,
                     "actor_rows_per_s": m * L / preset.agent.actor_update_every / update_s})
    return {"preset": base.name, "variant": base.variant, "device": str(device),
            "batch": f"{base.replay.batch_sequences}x{base.replay.seq_len} (+{base.replay.burn_in} burn-in)",
            "rows": rows}


ACT_CHOICES = (("float32", "float32", False), ("bfloat16", "bfloat16", False),
               ("float32, channels-last", "float32", True), ("bfloat16, channels-last", "bfloat16", True))
"""``bench_act``'s rows: a name, ``AgentConfig.image_dtype`` and ``AgentConfig.channels_last``."""


def bench_act(checkpoint, races: int = 100, steps: int = 10, rounds: int = 3, scenario: str = "tokyo",
              device: str = "cpu", seed: int = 0) -> dict:
    """Milliseconds per control step of ``races`` races of an exported vision agent (its networks, safety layers,
    the simulator and the rendering: a step of ``gtvision evaluate``) under each of ``ACT_CHOICES`` (how its image
    encoders compute, ``AgentConfig.COMPUTE_SETTINGS``: the same weights), measured in the same run: every round
    runs a block of ``steps`` steps of each choice in turn on the same races, after a warm-up round; a row's time is
    the median over rounds. ``speedup``: float32's step time over the choice's."""
    from .agent.networks import ImageEncoder
    from .agent.rollout import Rollout
    from .evaluation import race_envs

    envs, agent = race_envs(checkpoint, scenario, races, 4, device)
    encoders = [] if agent is None else [m for m in agent.actor.modules() if isinstance(m, ImageEncoder)]
    if not encoders:
        raise ValueError(f"bench act times an agent's image encoders: {checkpoint} has none (an actor that reads "
                         "no image, or the BIAI)")
    exported = (agent.config.image_dtype, agent.config.channels_last)
    rollout = Rollout(envs, agent, seed=seed, eval_mode=True)
    settings = {name: (dtype, channels_last) for name, dtype, channels_last in ACT_CHOICES}

    def prepare(name):
        for encoder in encoders:
            encoder.set_compute(*settings[name])

    times = _median_times({name: (lambda: rollout.step(None)) for name in settings}, steps, rounds, agent.device,
                          prepare)
    reference = times[ACT_CHOICES[0][0]]
    rows = [{"choice": name, "step_ms": 1000 * times[name], "speedup": reference / times[name],
             "exported": (dtype, channels_last) == exported} for name, dtype, channels_last in ACT_CHOICES]
    return {"checkpoint": str(checkpoint), "races": races, "device": str(device), "encoders": len(encoders),
            "rows": rows}


TRAINING_ENV = {"start_speed_mps": 20.0, "stuck_s": 3.0}
"""``bench_training``'s episodes: rolling starts (a fresh policy moves), the stuck rule after 3 s."""


def training_rates(trainer, epochs: int) -> dict:
    """Seconds of collection and of updates over ``epochs`` epochs of ``trainer`` (each epoch as
    ``Trainer.run_epoch`` runs it: the epoch's environment steps, then its updates)."""
    cfg = trainer.cfg
    steps = max(1, cfg.env_steps_per_epoch // trainer.num_envs)
    collect_s = learn_s = 0.0
    env_steps, updates = trainer.env_steps, trainer.updates
    for _ in range(epochs):
        t0 = time.perf_counter()
        trainer.finish_collection(trainer.start_collection(steps))
        t1 = time.perf_counter()
        trainer.learn()
        learn_s += time.perf_counter() - t1
        collect_s += t1 - t0
    env_steps, updates = trainer.env_steps - env_steps, trainer.updates - updates
    wall = collect_s + learn_s
    return {"env_steps": env_steps, "updates": updates, "collect_s": collect_s, "learn_s": learn_s,
            "env_steps_per_s": env_steps / wall, "updates_per_s": updates / wall,
            "collection_share": collect_s / wall}


def bench_training(preset_name: str = "cpu", variant: str = "gt_sophy", overrides: dict | None = None,
                   opponents=(0, 19, None), epochs: int = 5, scenario: str = "tokyo", device: str = "cpu",
                   seed: int = 0) -> dict:
    """Training's rate (updates and environment steps per second of the local loop, collection included)
    for each opponent count (None: the IV-B curriculum), next to the update alone (``learner_update_time``)
    of the same preset, measured in the same run.

    Each row trains a fresh learner up to its first epoch with updates (``learning_starts``: a window per
    environment) and then ``epochs`` timed ones; no demonstrations, no reset. ``overrides`` as ``gtvision train --set``."""
    import dataclasses

    import gymnasium as gym

    from .agent.loop import LocalTrainer
    from .agent.presets import apply_overrides, get_preset
    from .env import ENV_IDS, env_kwargs_for

    if scenario not in ENV_IDS:
        raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(ENV_IDS)}")
    preset = apply_overrides(get_preset(preset_name, variant), overrides or {})
    window = preset.replay.burn_in + preset.replay.seq_len + preset.agent.n_step  # rows a stream needs to sample
    train = dataclasses.replace(preset.train, learning_starts=preset.train.num_envs * window, demo_steps=0,
                                reset_epoch=None)
    preset = dataclasses.replace(preset, train=train)
    update = learner_update_time(preset, updates=max(5, train.updates_per_epoch // 4), device=device, seed=seed)
    rows = []
    for n in opponents:
        kwargs = env_kwargs_for(ENV_IDS[scenario], {**TRAINING_ENV, "num_opponents": n}, preset.agent)
        envs = gym.make_vec(ENV_IDS[scenario], num_envs=train.num_envs, vectorization_mode="vector_entry_point",
                            device=device, **kwargs)
        trainer = LocalTrainer(envs, preset, seed=seed, device=device)
        try:
            while trainer.updates == 0:  # fill learning_starts, up to the first epoch with updates
                trainer.run_epoch()
            row = training_rates(trainer, epochs)
        finally:
            trainer.close()
        rows.append({"opponents": "curriculum" if n is None else n, **row,
                     "x_update_only": row["updates_per_s"] * update["update_s"]})
    return {"preset": preset.name, "variant": variant, "update": update, "rows": rows}
