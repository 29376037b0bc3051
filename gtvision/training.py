"""Training runs: ``gtvision train`` and :func:`train` behind it.

A run trains a preset (``gtvision.agent.presets``) with one of its variants on a scenario's environment
or on any registered gymnasium id (the learner is generic), and writes a run directory:

==================  ========================================================================================
file                contents
==================  ========================================================================================
``config.json``     the :class:`RunConfig`, the resolved preset (``gtvision.agent.presets.resolve``) and the
                    ``machine`` it started on (:func:`machine`: a run's minutes are that machine's)
``metrics.jsonl``   one record per epoch, written as it ends (keys: ``gtvision.agent.loop``)
``tensorboard/``    the same scalars as TensorBoard event files (x axis: environment steps)
``eval.json``       returns of the deterministic policy at the end, when ``eval_episodes`` > 0
``distill.jsonl``   with a ``teacher``: one record per DAgger round (``gtvision.agent.distill``), before epoch 1
``distill/``        with a ``teacher``: the student after each round, a run directory of its own whose epoch N is
                    the actor after N rounds (``gtvision select RUN/distill`` picks one by paper IV-D's rule)
``checkpoints/``    ``epoch_NNNNNN/`` every ``checkpoint_every`` epochs, the newest ``keep_checkpoints``
==================  ========================================================================================

Checkpoints (``gtvision.checkpoints``) hold the networks, optimisers, targets, counters, RNG states, the
environments and the episodes in progress, optionally the replay; each is written atomically and marked
``COMPLETE``. ``train(config, out, resume=True)`` (``gtvision train --resume DIR``) continues from the
newest complete one; with the replay saved, the resumed run equals the uninterrupted one step for step.

Backends: ``local`` (one process, deterministic for a seed on CPU) and ``ray`` (rollout workers as Ray
actors, ``gtvision.agent.distributed``); they differ only in where the steps are collected.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from . import checkpoints
from .agent.config import VARIANTS, check_fields
from .agent.loop import LocalTrainer, run_epochs
from .agent.presets import PRESET_NAMES, resolve
from .agent.rollout import evaluate_policy
from .checkpoints import complete_checkpoints, write_atomic  # noqa: F401  (complete_checkpoints: for users)
from .env import ENV_IDS, env_kwargs_for, env_spaces, reward_config
from .scenarios import SCENARIO_NAMES

BACKENDS = ("local", "ray")
"""Training backends: one process, or Ray rollout workers (``gtvision.agent.distributed``)."""


RUN_CHOICES = {"scenario": SCENARIO_NAMES, "preset": PRESET_NAMES, "variant": VARIANTS, "backend": BACKENDS}
"""The valid values of the RunConfig fields that have a fixed set."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; recorded in the run directory."""

    scenario: str | None = "tokyo"
    """A scenario of Table I ('tokyo', 'spa', 'sarthe'); ignored when ``env_id`` is given."""
    env_id: str | None = None
    """Any registered gymnasium id with Box or Dict observations and Box actions, instead of a scenario."""
    preset: str = "cpu"
    """'paper', 'cpu' or 'smoke' (``gtvision.agent.presets``)."""
    variant: str = "asymmetric"
    """The agent or an ablation (``gtvision.agent.config.VARIANTS``)."""
    backend: str = "local"
    """'local' (one process, deterministic) or 'ray' (rollout workers as Ray actors)."""
    workers: int = 2
    """Ray backend: rollout workers; the sub-environments (``num_envs``) are shared out among them."""
    ray_address: str | None = None
    """Ray backend: None starts a local Ray sized to the machine; 'auto' joins a cluster (``ray start``)."""
    total_steps: int | None = None
    """Stop after this many environment steps (all sub-environments); None: the preset's epochs."""
    max_minutes: float | None = None
    """Stop at the end of the epoch in which this much wall time has passed; None: no limit; 0 (with a
    ``teacher`` only): no RL at all, the distilled agent is the run's result (its checkpoint epoch 0)."""
    seed: int = 0
    """Seed of the networks, the replay and the environments (same seed, same run on CPU, local backend)."""
    device: str = "cpu"
    """Where the learner's networks live ('cpu', 'cuda', 'cuda:1', ...); rollout workers act on the CPU."""
    num_envs: int | None = None
    """Parallel sub-environments; None: the preset's."""
    env_kwargs: dict = dataclasses.field(default_factory=dict)
    """Extra keyword arguments of ``gymnasium.make_vec`` (e.g. ``num_opponents=0`` for a racing scenario)."""
    eval_episodes: int = 0
    """Episodes of the deterministic policy played at the end (``eval.json``)."""
    threads: int | None = None
    """torch intra-op threads; None: leave torch's setting (``gtvision train``: every core)."""
    checkpoint_every: int = 50
    """Write a checkpoint every this many epochs (and at the end); 0: never."""
    keep_checkpoints: int = 3
    """Complete checkpoints kept (the newest)."""
    checkpoint_replay: bool = False
    """Checkpoints hold the replay buffer too (large: the cpu preset's is about 3 GB), so that a resumed
    run continues step for step; without it a resumed run refills the buffer."""
    teacher: str | None = None
    """A checkpoint (or run directory) of a privileged agent whose policy the actor first learns by DAgger
    (``train.distill_rounds`` rounds, ``gtvision.agent.distill``), whose critics then start the RL when they read
    what the learner's do, and, with ``train.kickstart_weight`` > 0, which keeps labelling the states RL collects
    (kickstarting); with ``init`` the DAgger rounds, if any, start from its actor. None: RL alone (the paper)."""
    clear_teacher: str | None = None
    """With ``teacher`` and DAgger rounds: a checkpoint (or run directory) of a second privileged agent that labels
    the states out of traffic (no opponent within ``train.distill_clear_ahead_m`` ahead or
    ``distill_clear_behind_m`` behind), the ``teacher`` labelling those in traffic (``gtvision.agent.distill``).
    Ours (``Paper:`` none): the pushing baseline's pace on a clear road, the shielded baseline's manners in traffic.
    None: the ``teacher`` labels every state."""
    init: str | None = None
    """A checkpoint (or run directory) whose networks the learner starts from (fine-tuning): its actor, and its
    critics with their targets and entropy coefficient where they read what the learner's do (else fresh ones);
    the replay and the optimisers start empty. None: fresh networks."""
    init_critics: str | None = None
    """With ``init``: a checkpoint (or run directory) whose critics, targets and entropy coefficient the learner
    starts from instead of ``init``'s (they must read what the learner's do), e.g. a privileged teacher's for a
    distilled actor (a DAgger round holds fresh critics). None: ``init``'s."""
    overrides: dict = dataclasses.field(default_factory=dict)
    """Preset fields to change, ``{"train.updates_per_epoch": 200, "agent.gamma": 0.99, ...}``
    (sections ``agent``, ``replay``, ``train``: ``gtvision.agent.config``)."""

    def __post_init__(self):
        check_fields(self, {"workers": ">=1", "total_steps": ">=1", "max_minutes": ">=0", "num_envs": ">=1",
                            "eval_episodes": ">=0", "threads": ">=1", "checkpoint_every": ">=0",
                            "keep_checkpoints": ">=1"},
                     {**RUN_CHOICES, "scenario": SCENARIO_NAMES + (None,)}, section="run")
        if self.clear_teacher is not None and self.teacher is None:
            raise ValueError(f"--clear-teacher {self.clear_teacher} labels the states out of traffic beside a "
                             "teacher; give --teacher CHECKPOINT too")
        if self.init_critics is not None and self.init is None:
            raise ValueError(f"--init-critics {self.init_critics} needs --init (the actor the critics go with)")
        if self.max_minutes == 0 and self.teacher is None:
            raise ValueError("run.max_minutes=0 trains nothing; it is for a run with a teacher (--teacher), whose "
                             "distillation then is the whole training")

    def resolved_env_id(self) -> str:
        if self.env_id is not None:
            if self.env_id not in gym.registry:
                import difflib
                close = difflib.get_close_matches(self.env_id, list(gym.registry), n=5)
                raise ValueError(f"unknown env id {self.env_id!r}; registered ids include: "
                                 f"{', '.join(close) or ', '.join(list(gym.registry)[:10])}")
            return self.env_id
        if self.scenario not in SCENARIO_NAMES:
            raise ValueError(f"unknown scenario {self.scenario!r}; valid: {', '.join(SCENARIO_NAMES)}")
        return ENV_IDS[self.scenario]


DEMO_SEED_OFFSET = 500_009
"""The demonstrations' environments are seeded ``seed + DEMO_SEED_OFFSET`` (apart from the training ones)."""
DISTILL_SEED_OFFSET = 700_000
"""The DAgger rounds' environments are seeded ``seed + DISTILL_SEED_OFFSET + round``."""
DISTILL_DIR = "distill"
"""Subdirectory of a run with a teacher: the student after each DAgger round (epoch N: after N rounds)."""
DISTILL_STATE = "state"
"""Subdirectory of ``DISTILL_DIR`` holding the last finished round's resume state while the rounds run
(``gtvision.agent.distill``; removed when they end)."""

BUDGET_FIELDS = ("total_steps", "max_minutes", "eval_episodes", "threads")
"""RunConfig fields that a resumed run may change (how long and how it runs, not what it trains)."""


def train(config: RunConfig, out: str | os.PathLike, progress: bool = True, resume: bool = False,
          on_epoch=None) -> tuple[Path, list[dict]]:
    """Run ``config``, writing the run directory ``out`` (see the module docstring).

    Returns the directory and the metrics of the epochs run now. Without ``resume`` an existing run
    directory is never overwritten; with it, the run in ``out`` continues from its latest complete
    checkpoint, which must have been made by the same configuration (only ``BUDGET_FIELDS`` may differ).
    """
    env_id = config.resolved_env_id()
    out = Path(out)
    checkpoint = saved_preset = None
    distilling = False
    if resume:
        distilling = _distillation_unfinished(config, out)
        checkpoint = None if distilling else _check_resume(config, out)
        saved_preset = checkpoints.run_preset(out)
    elif (out / "metrics.jsonl").exists():
        raise FileExistsError(f"{out} already holds a run (metrics.jsonl); choose another --out, or --resume it")
    if config.threads:
        torch.set_num_threads(config.threads)
    space, _ = env_spaces(env_id, config.env_kwargs)
    reward = reward_config(env_id, config.env_kwargs)
    preset = resolve(config.preset, config.variant, config.overrides, space, reward_terms=reward is not None)
    if saved_preset is not None and saved_preset != preset:
        # a resumed run trains on as it began, even if the named preset has changed since
        changed = sorted(f"{name}.{f}" for name in ("agent", "replay", "train")
                         for f in getattr(preset, name).__dataclass_fields__
                         if getattr(getattr(preset, name), f) != getattr(getattr(saved_preset, name), f))
        warnings.warn(f"--resume {out}: preset {config.preset!r} has changed since the run began "
                      f"({', '.join(changed)}); the run goes on with the preset it recorded", stacklevel=2)
        preset = saved_preset
    _check_teacher(config, preset, reward is not None)
    if config.init is not None:
        if preset.train.reset_epoch is not None:
            raise ValueError(f"--init {config.init}: the network reset at epoch {preset.train.reset_epoch} would "
                             "discard the networks it starts from; give --set train.reset_epoch=null")
        checkpoints.resolve(config.init)  # refuse what is not a checkpoint before anything is built
        if config.init_critics is not None:
            checkpoints.resolve(config.init_critics)
    num_envs = config.num_envs or preset.train.num_envs
    env_kwargs = env_kwargs_for(env_id, config.env_kwargs, preset.agent)  # no image rendered that none reads
    if config.backend == "ray":
        from .agent.distributed import RayTrainer
        trainer = RayTrainer(env_id, env_kwargs, preset, config.workers, max(1, num_envs // config.workers),
                             config.seed, config.device, config.ray_address, reward=reward)
        num_envs = trainer.num_envs
    else:
        envs = gym.make_vec(env_id, num_envs=num_envs, **env_kwargs)
        teacher = None
        if preset.train.kickstart_weight > 0:  # its labels ride with every collected row
            teacher = checkpoints.load_actor(checkpoints.resolve(config.teacher)[0], envs.single_observation_space,
                                             envs.single_action_space, config.device)
        trainer = LocalTrainer(envs, preset, config.seed, config.device, reward=reward, teacher=teacher)
    demo_seconds = None
    if preset.train.demo_steps > 0 and config.max_minutes != 0:
        # the BIAI's demonstrations (for the RL, so none when only a distillation runs), made again when a run resumes
        t0 = time.perf_counter()
        demo_envs = gym.make_vec(env_id, num_envs=preset.train.num_envs, **env_kwargs)
        trainer.add_demonstrations(demo_envs, preset.train.demo_steps, seed=config.seed + DEMO_SEED_OFFSET)
        demo_envs.close()
        demo_seconds = time.perf_counter() - t0
    epochs = preset.train.epochs
    if config.total_steps is not None:
        steps_per_epoch = max(1, preset.train.env_steps_per_epoch // num_envs) * num_envs
        epochs = max(1, math.ceil(config.total_steps / steps_per_epoch))
    identity = _identity(config)
    if checkpoint is not None:
        checkpoints.restore(trainer, checkpoint)
        _keep_metrics_until(out / "metrics.jsonl", trainer.epoch)  # later epochs are run again
    elif not distilling:  # (a resumed distillation keeps the configuration it recorded)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / checkpoints.CONFIG, json.dumps(
            {"run": dataclasses.asdict(config), "env_id": env_id, "num_envs": num_envs, "epochs": epochs,
             "demo_seconds": demo_seconds, "preset": preset.to_dict(), "machine": machine()}, indent=2, default=str))
    if config.init is not None and checkpoint is None and not distilling:
        _init_networks(config, trainer, out)
    if config.teacher is not None and preset.train.distill_rounds > 0 and checkpoint is None:
        _distill(config, preset, trainer, env_id, env_kwargs, num_envs, out, progress)
        if config.checkpoint_every:  # the distilled agent, before any RL (epoch 0)
            checkpoints.save(trainer, out, identity, config.keep_checkpoints, config.checkpoint_replay)
    history = []
    from tensorboardX import SummaryWriter
    tb = SummaryWriter(str(out / "tensorboard"), purge_step=trainer.epoch + 1 if resume else None)
    with open(out / "metrics.jsonl", "a") as f:
        for record in run_epochs(trainer, epochs, None if config.max_minutes is None else 60.0 * config.max_minutes,
                                 progress):
            f.write(json.dumps({k: _json_number(v) for k, v in record.items()}) + "\n")
            f.flush()
            for key, value in record.items():
                if "/" in key and isinstance(value, (int, float)) and math.isfinite(value):
                    tb.add_scalar(key, value, record["charts/env_steps"])
            history.append(record)
            if config.checkpoint_every and trainer.epoch % config.checkpoint_every == 0:
                checkpoints.save(trainer, out, identity, config.keep_checkpoints, config.checkpoint_replay)
            if on_epoch is not None:
                on_epoch(trainer, record)
    tb.close()
    if config.checkpoint_every and trainer.epoch % config.checkpoint_every != 0:  # the end of the run
        checkpoints.save(trainer, out, identity, config.keep_checkpoints, config.checkpoint_replay)
    agent = trainer.agent
    trainer.close()
    if config.eval_episodes > 0:
        eval_envs = gym.make_vec(env_id, num_envs=min(num_envs, config.eval_episodes), **env_kwargs)
        returns = evaluate_policy(agent, eval_envs, config.eval_episodes, seed=config.seed + 10_000)
        eval_envs.close()
        write_atomic(out / "eval.json", json.dumps(
            {"episodes": len(returns), "mean_return": float(np.mean(returns)),
             "std_return": float(np.std(returns)), "returns": returns.tolist()}, indent=2))
    return out, history


# ---------------------------------------------------------------------------- distillation

def _check_teacher(config: RunConfig, preset, racing: bool):
    """A teacher needs ``train.distill_rounds`` > 0 or ``train.kickstart_weight`` > 0, a racing environment, the
    local backend and no network reset (without a teacher the distillation settings are unused; kickstarting
    needs one)."""
    rounds, kickstart = preset.train.distill_rounds, preset.train.kickstart_weight
    if config.teacher is None:
        if kickstart > 0:
            raise ValueError(f"train.kickstart_weight={kickstart} keeps the actor near a teacher's policy; give "
                             "--teacher CHECKPOINT")
        return
    if rounds == 0 and kickstart == 0:
        raise ValueError(f"--teacher {config.teacher}: the preset distils no round (train.distill_rounds=0) and "
                         "does not kickstart (train.kickstart_weight=0); give --set train.distill_rounds=N or "
                         "--set train.kickstart_weight=W")
    if config.clear_teacher is not None and rounds == 0:
        raise ValueError(f"--clear-teacher {config.clear_teacher} labels DAgger's states; the preset distils no round "
                         "(train.distill_rounds=0): give --set train.distill_rounds=N")
    if not racing:
        raise ValueError(f"--teacher {config.teacher}: distillation needs a gtvision racing scenario")
    if config.backend != "local":
        raise ValueError(f"--teacher {config.teacher}: distillation runs on the local backend, not {config.backend!r}")
    if preset.train.reset_epoch is not None:
        raise ValueError(f"--teacher {config.teacher}: the network reset at epoch {preset.train.reset_epoch} would "
                         "discard the distilled actor; give --set train.reset_epoch=null")
    checkpoints.resolve(config.teacher)  # refuse what is not a checkpoint before anything is built
    if config.clear_teacher is not None:
        checkpoints.resolve(config.clear_teacher)


def _distill(config: RunConfig, preset, trainer, env_id: str, env_kwargs: dict, num_envs: int, out: Path,
             progress: bool):
    """DAgger rounds from ``config.teacher`` into the learner's actor, then its critics if they fit; records in
    ``distill.jsonl``, and the seconds it took as ``distill_seconds`` in ``config.json``."""
    from .agent.distill import adopt_critics, distill, resume_round

    path, run_dir = checkpoints.resolve(config.teacher)
    envs = gym.make_vec(env_id, num_envs=num_envs, **env_kwargs)
    teacher = checkpoints.load_actor(path, envs.single_observation_space, envs.single_action_space, config.device)
    clear_teacher, clear_path = None, None
    if config.clear_teacher is not None:
        clear_path = checkpoints.resolve(config.clear_teacher)[0]
        clear_teacher = checkpoints.load_actor(clear_path, envs.single_observation_space, envs.single_action_space,
                                               config.device)
    rounds_dir = out / DISTILL_DIR
    rounds_dir.mkdir(exist_ok=True)
    state_dir = rounds_dir / DISTILL_STATE
    resumed = resume_round(state_dir)
    if resumed is None:
        write_atomic(rounds_dir / checkpoints.CONFIG, json.dumps(
            {**checkpoints.read_run_config(out), "distill_rounds_of": str(out)}, indent=2))
        open(out / "distill.jsonl", "w").close()
    else:  # the rounds after the last one whose state was left run again
        _keep_records_until(out / "distill.jsonl", "distill/round", resumed["round"])
    with open(out / "distill.jsonl", "a") as f:
        def write(record):
            f.write(json.dumps({k: _json_number(v) for k, v in record.items()}) + "\n")
            f.flush()
            # the student of every round, kept: from round to round its races swing (the last is not the best)
            checkpoints.save_networks(rounds_dir, int(record["distill/round"]) + 1,
                                      {"actor": trainer.agent.actor.state_dict()})
        records = distill(trainer.agent, teacher, envs, preset.train, preset.replay,
                          seed=config.seed + DISTILL_SEED_OFFSET, progress=progress, on_round=write,
                          clear_teacher=clear_teacher, state_dir=state_dir)
    envs.close()
    adopted = adopt_critics(trainer.agent, checkpoints.load_state(path, map_location=config.device)["agent"],
                            checkpoints.run_preset(run_dir).agent)
    saved = json.loads((out / checkpoints.CONFIG).read_text())
    saved.update(distill_seconds=records[-1]["distill/wall_s"], teacher_critics_adopted=adopted,
                 teacher_checkpoint=str(path), **({"clear_teacher_checkpoint": str(clear_path)} if clear_path else {}))
    write_atomic(out / checkpoints.CONFIG, json.dumps(saved, indent=2, default=str))
    shutil.rmtree(state_dir, ignore_errors=True)  # the labelled states are no result to keep (GBs)


def _distillation_unfinished(config: RunConfig, out: Path) -> bool:
    """True when ``out`` is a run of ``config`` whose DAgger rounds were cut short (no checkpoint after them; their
    resume state left in ``distill/state``, or none at all when the run was cut in round 0): ``--resume`` then goes
    on with the rounds, from round 0 when none had finished. ``ValueError`` when the run was made with another
    configuration."""
    if config.teacher is None or checkpoints.complete_checkpoints(out):
        return False
    try:
        saved = checkpoints.read_run_config(out)
    except checkpoints.NotARunError:
        return False                     # the run never began: nothing to resume (``_check_resume`` says so)
    if not (out / DISTILL_DIR / DISTILL_STATE).is_dir() and "distill_seconds" in saved:
        return False                     # the rounds had ended (a cut before the first checkpoint: not resumable)
    _check_identity(config, out)
    return True


def _init_networks(config: RunConfig, trainer, out: Path):
    """The learner's actor from ``config.init``, its critics where they fit from ``config.init_critics`` or else
    ``config.init``; ``ValueError`` when the actor's shape differs, or when ``init_critics``' critics do not fit.
    Records ``init_checkpoint``, ``init_critics_checkpoint`` and ``init_critics_adopted`` in ``config.json``."""
    from .agent.distill import adopt_critics

    path, run_dir = checkpoints.resolve(config.init)
    state = checkpoints.load_state(path, map_location=config.device)["agent"]
    try:
        trainer.agent.actor.load_state_dict(state["actor"])
    except RuntimeError as e:
        raise ValueError(f"--init {path}: its actor does not fit this run's (variant {config.variant!r}, "
                         f"preset {config.preset!r}): {e}") from e
    critics_path = path
    if config.init_critics is not None:
        critics_path, critics_dir = checkpoints.resolve(config.init_critics)
        state, run_dir = checkpoints.load_state(critics_path, map_location=config.device)["agent"], critics_dir
    adopted = adopt_critics(trainer.agent, state, checkpoints.run_preset(run_dir).agent)
    if config.init_critics is not None and not adopted:
        raise ValueError(f"--init-critics {critics_path}: it holds no critics, or they read other inputs than this "
                         f"run's (gtvision.agent.distill.CRITIC_FIELDS)")
    saved = json.loads((out / checkpoints.CONFIG).read_text())
    saved.update(init_checkpoint=str(path), init_critics_checkpoint=str(critics_path), init_critics_adopted=adopted)
    write_atomic(out / checkpoints.CONFIG, json.dumps(saved, indent=2, default=str))


def machine() -> dict:
    """The machine a run starts on, as its ``config.json`` records it: the CPU's model and the vector instructions
    torch uses on it (``AVX2``, ``AVX512``...), the cores, the torch version. Training minutes are the machine's: the
    same epochs of make race's teacher, equal to the last digit, took about 3.5 times as long on an AMD EPYC with
    AVX2 as on the machine of run MR1 (LOG.md, "make race on another CPU")."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


# ---------------------------------------------------------------------------- resuming

def _identity(config: RunConfig) -> dict:
    """The fields of ``config`` that define what a run trains (all but ``BUDGET_FIELDS``), as JSON."""
    d = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    return {k: v for k, v in d.items() if k not in BUDGET_FIELDS}


def _check_resume(config: RunConfig, out: Path) -> Path:
    """The checkpoint a resumed ``config`` continues from; ``ValueError`` (and nothing touched) if the
    run directory, its configuration or its checkpoints do not fit."""
    return checkpoints.latest_for_resume(out, _check_identity(config, out))


def _check_identity(config: RunConfig, out: Path) -> dict:
    """``config``'s identity (:func:`_identity`), checked against the run in ``out``; ``ValueError`` if they differ."""
    saved = checkpoints.read_run_config(out)
    ours = _identity(config)
    theirs = {k: v for k, v in saved["run"].items() if k not in BUDGET_FIELDS}
    if ours != theirs:
        diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        raise ValueError(f"--resume {out}: the run was made with a different configuration ("
                         + "; ".join(f"{k}: run {theirs.get(k)!r}, now {ours.get(k)!r}" for k in diff) + ")")
    return ours


def _keep_metrics_until(path: Path, epoch: int):
    """Drop the records after ``epoch`` from ``metrics.jsonl`` (atomically)."""
    _keep_records_until(path, "epoch", epoch)


def _keep_records_until(path: Path, key: str, last: int):
    """Drop the records whose ``key`` is above ``last`` from the JSON-lines file ``path`` (atomically)."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    write_atomic(path, "".join(line for line in lines if json.loads(line)[key] <= last))


def _json_number(v):
    """JSON has no NaN: write None instead (``pandas.read_json`` reads it back as NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_metrics(run_dir: str | os.PathLike):
    """``metrics.jsonl`` of a run directory as a pandas DataFrame (one row per epoch)."""
    import pandas as pd
    return pd.read_json(Path(run_dir) / "metrics.jsonl", lines=True)
