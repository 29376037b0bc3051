"""Training runs (DESIGN 7): ``gtvision train`` and :func:`train` behind it.

A run trains a preset (``gtvision.agent.presets``) with one of its variants on a scenario's environment
or on any registered gymnasium id (the learner is generic), and writes a run directory:

==================  ========================================================================================
file                contents
==================  ========================================================================================
``config.json``     the :class:`RunConfig` and the resolved preset
``metrics.jsonl``   one record per epoch, written as it ends (keys: ``gtvision.agent.loop``)
``tensorboard/``    the same scalars as TensorBoard event files (x axis: environment steps)
``eval.json``       returns of the deterministic policy at the end, when ``eval_episodes`` > 0
``checkpoints/``    ``epoch_NNNNNN/`` every ``checkpoint_every`` epochs, the newest ``keep_checkpoints``
==================  ========================================================================================

A checkpoint holds the networks, optimisers, targets, counters, RNG states, the environments and the
episodes in progress (``trainer.pt``), optionally the replay (``replay/``), and ``meta.json`` naming the
configuration; it is written to a temporary directory renamed into place, then marked ``COMPLETE``.
``train(config, out, resume=True)`` (``gtvision train --resume DIR``) continues from the newest complete
one; with the replay saved, the resumed run equals the uninterrupted one step for step.

Backends: ``local`` (one process, deterministic for a seed on CPU) and ``ray`` (rollout workers as Ray
actors, ``gtvision.agent.distributed``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from .agent.loop import LocalTrainer, evaluate_policy, reward_config_of, run_epochs
from .agent.presets import PRESET_NAMES, Preset, get_preset
from .scenarios import SCENARIO_NAMES

BACKENDS = ("local", "ray")
"""Training backends: one process, or Ray rollout workers (``gtvision.agent.distributed``)."""


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
    """Stop at the end of the epoch in which this much wall time has passed; None: no limit."""
    seed: int = 0
    device: str = "cpu"
    num_envs: int | None = None
    """Parallel sub-environments; None: the preset's."""
    env_kwargs: dict = dataclasses.field(default_factory=dict)
    """Extra keyword arguments of ``gymnasium.make_vec`` (e.g. ``num_opponents=0`` for a racing scenario)."""
    eval_episodes: int = 0
    """Episodes of the deterministic policy played at the end (``eval.json``)."""
    threads: int | None = None
    """torch intra-op threads; None: leave torch's setting."""
    checkpoint_every: int = 50
    """Write a checkpoint every this many epochs (and at the end); 0: never."""
    keep_checkpoints: int = 3
    """Complete checkpoints kept (the newest)."""
    checkpoint_replay: bool = False
    """Checkpoints hold the replay buffer too (large: the cpu preset's is about 3 GB), so that a resumed
    run continues step for step; without it a resumed run refills the buffer."""
    overrides: dict = dataclasses.field(default_factory=dict)
    """Preset fields to change, ``{"train.updates_per_epoch": 200, "agent.gamma": 0.99, ...}``
    (sections ``agent``, ``replay``, ``train``: ``gtvision.agent.config``)."""

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
        from .env import ENV_IDS
        return ENV_IDS[self.scenario]


BUDGET_FIELDS = ("total_steps", "max_minutes", "eval_episodes", "threads")
"""RunConfig fields that a resumed run may change (how long and how it runs, not what it trains)."""


def train(config: RunConfig, out: str | os.PathLike, progress: bool = True, resume: bool = False,
          on_epoch=None) -> tuple[Path, list[dict]]:
    """Run ``config``, writing the run directory ``out`` (see the module docstring).

    Returns the directory and the metrics of the epochs run now. Without ``resume`` an existing run
    directory is never overwritten; with it, the run in ``out`` continues from its latest complete
    checkpoint, which must have been made by the same configuration (only ``BUDGET_FIELDS`` may differ).
    """
    if config.backend not in BACKENDS:
        raise ValueError(f"unknown backend {config.backend!r}; valid: {', '.join(BACKENDS)}")
    if config.preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {config.preset!r}; valid: {', '.join(PRESET_NAMES)}")
    preset = apply_overrides(get_preset(config.preset, config.variant), config.overrides)
    env_id = config.resolved_env_id()
    out = Path(out)
    checkpoint = None
    if resume:
        checkpoint = _check_resume(config, out)
    elif (out / "metrics.jsonl").exists():
        raise FileExistsError(f"{out} already holds a run (metrics.jsonl); choose another --out, or --resume it")
    if config.threads:
        torch.set_num_threads(config.threads)
    num_envs = config.num_envs or preset.train.num_envs
    train_cfg = preset.train
    epochs = train_cfg.epochs
    if config.total_steps is not None:
        steps_per_epoch = max(1, train_cfg.env_steps_per_epoch // num_envs) * num_envs
        epochs = max(1, math.ceil(config.total_steps / steps_per_epoch))
    probe = gym.make_vec(env_id, num_envs=1, **config.env_kwargs)
    preset = keys_for_space(preset, probe.single_observation_space)
    if preset.train.penalty_ramp_epochs > 0 and reward_config_of(probe) is None:
        # the ramp weighs the racing reward's penalties: another task's reward has none to ramp
        preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, penalty_ramp_epochs=0))
    probe.close()
    if config.backend == "ray":
        from .agent.distributed import RayTrainer
        per_worker = max(1, num_envs // config.workers)
        trainer = RayTrainer(env_id, config.env_kwargs, preset, config.workers, per_worker, config.seed,
                             config.device, config.ray_address)
        num_envs = trainer.num_envs
    else:
        envs = gym.make_vec(env_id, num_envs=num_envs, **config.env_kwargs)
        trainer = LocalTrainer(envs, preset, config.seed, config.device)
    if checkpoint is not None:
        load_checkpoint(trainer, checkpoint)
        _keep_metrics_until(out / "metrics.jsonl", trainer.epoch)  # later epochs are run again
    else:
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(out / "config.json", json.dumps(
            {"run": dataclasses.asdict(config), "env_id": env_id, "num_envs": num_envs, "epochs": epochs,
             "preset": preset.to_dict()}, indent=2, default=str))
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
                save_checkpoint(trainer, out, config)
            if on_epoch is not None:
                on_epoch(trainer, record)
    tb.close()
    if config.checkpoint_every and trainer.epoch % config.checkpoint_every != 0:
        save_checkpoint(trainer, out, config)  # the end of the run
    agent = trainer.agent
    trainer.close()
    if config.eval_episodes > 0:
        eval_envs = gym.make_vec(env_id, num_envs=min(num_envs, config.eval_episodes), **config.env_kwargs)
        returns = evaluate_policy(agent, eval_envs, config.eval_episodes, seed=config.seed + 10_000)
        eval_envs.close()
        _write_atomic(out / "eval.json", json.dumps(
            {"episodes": len(returns), "mean_return": float(np.mean(returns)),
             "std_return": float(np.std(returns)), "returns": returns.tolist()}, indent=2))
    return out, history


# ---------------------------------------------------------------------------- checkpoints

CHECKPOINT_FORMAT = "gtvision-checkpoint-1"
"""Written in every checkpoint's ``meta.json``; anything else is refused as foreign."""
COMPLETE = "COMPLETE"
"""Marker file written last: a checkpoint directory without it is incomplete and ignored."""


def _identity(config: RunConfig) -> dict:
    """The fields of ``config`` that define what a run trains (all but ``BUDGET_FIELDS``), as JSON."""
    d = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    return {k: v for k, v in d.items() if k not in BUDGET_FIELDS}


def save_checkpoint(trainer: LocalTrainer, out: Path, config: RunConfig) -> Path:
    """Write ``out/checkpoints/epoch_NNNNNN`` atomically and keep the newest ``config.keep_checkpoints``.

    The files go to a temporary directory, which ``os.replace`` renames into place; the ``COMPLETE``
    marker is written last. A process killed at any point leaves the previous checkpoints loadable.
    """
    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"epoch_{trainer.epoch:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    torch.save(trainer.state_dict(), tmp / "trainer.pt")
    if config.checkpoint_replay:
        trainer.replay.save(tmp / "replay")
    _write_atomic(tmp / "meta.json", json.dumps({"format": CHECKPOINT_FORMAT, "epoch": trainer.epoch,
                                                 "env_steps": trainer.env_steps, "run": _identity(config),
                                                 "replay": config.checkpoint_replay}, indent=2))
    _fsync_dir(tmp)
    if final.exists():  # an incomplete leftover of a killed run at this epoch
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_atomic(final / COMPLETE, "")
    _fsync_dir(root)
    complete = complete_checkpoints(out)
    for old in complete[:-max(1, config.keep_checkpoints)]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".tmp-*"):
        if leftover != tmp:
            shutil.rmtree(leftover, ignore_errors=True)
    return final


def complete_checkpoints(out: str | os.PathLike) -> list[Path]:
    """The run's complete checkpoint directories, oldest first."""
    root = Path(out) / "checkpoints"
    return sorted(p for p in root.glob("epoch_*") if (p / COMPLETE).exists()) if root.exists() else []


def load_checkpoint(trainer: LocalTrainer, path: Path):
    """Restore ``trainer`` (and its replay, when the checkpoint holds one) from checkpoint ``path``."""
    try:
        state = torch.load(path / "trainer.pt", weights_only=False)
    except Exception as e:  # noqa: BLE001  (a truncated or foreign file fails in many ways)
        raise ValueError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); it is corrupt") from e
    trainer.load_state_dict(state)
    if (path / "replay").exists():
        trainer.replay.load(path / "replay")
        if state.get("envs") is None:  # the environments start new episodes: cut the stored ones
            trainer.replay.restart_streams(np.arange(trainer.replay.num_envs))


def _check_resume(config: RunConfig, out: Path) -> Path:
    """The checkpoint a resumed ``config`` continues from; ``ValueError`` (and nothing touched) if the
    run directory, its configuration or its checkpoints do not fit."""
    if not (out / "config.json").exists():
        raise ValueError(f"--resume {out}: no run there (config.json missing)")
    saved = json.loads((out / "config.json").read_text())
    ours = _identity(config)
    theirs = {k: v for k, v in saved.get("run", {}).items() if k not in BUDGET_FIELDS}
    if ours != theirs:
        diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        raise ValueError(f"--resume {out}: the run was made with a different configuration ("
                         + "; ".join(f"{k}: run {theirs.get(k)!r}, now {ours.get(k)!r}" for k in diff) + ")")
    checkpoints = complete_checkpoints(out)
    if not checkpoints:
        raise ValueError(f"--resume {out}: no complete checkpoint in {out / 'checkpoints'}")
    path = checkpoints[-1]
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint {path}: meta.json unreadable ({e}); it is corrupt") from e
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("run") != ours:
        raise ValueError(f"checkpoint {path} is foreign: format {meta.get('format')!r} (expected "
                         f"{CHECKPOINT_FORMAT!r}) or made by another configuration")
    return path


def _keep_metrics_until(path: Path, epoch: int):
    """Drop the records after ``epoch`` from ``metrics.jsonl`` (atomically)."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    _write_atomic(path, "".join(line for line in lines if json.loads(line)["epoch"] <= epoch))


def _write_atomic(path: Path, text: str):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply_overrides(preset: Preset, overrides: dict) -> Preset:
    """``preset`` with ``{"section.field": value}`` changed; unknown sections or fields raise, naming the
    valid ones."""
    sections = {"agent": preset.agent, "replay": preset.replay, "train": preset.train}
    if preset.variant != "asymmetric" and overrides:  # the fields a variant sets are what it ablates
        base = get_preset(preset.name, "asymmetric")
        ablated = {f"{name}.{f.name}": getattr(section, f.name) for name, section in sections.items()
                   for f in dataclasses.fields(section) if getattr(section, f.name) != getattr(getattr(base, name), f.name)}
        clash = [f"{key}={ablated[key]!r}" for key in overrides if key in ablated]
        if clash:
            raise ValueError(f"variant {preset.variant!r} sets {', '.join(clash)}; overriding it would undo the "
                             "ablation")
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in sections:
            raise ValueError(f"override {key!r}: unknown section {section!r}; valid: {', '.join(sections)}")
        fields = [f.name for f in dataclasses.fields(sections[section])]
        if name not in fields:
            raise ValueError(f"override {key!r}: {section} has no field {name!r}; valid: {', '.join(fields)}")
        if isinstance(value, list):
            value = tuple(value)
        sections[section] = dataclasses.replace(sections[section], **{name: value})
    return dataclasses.replace(preset, **sections)


def keys_for_space(preset: Preset, space: gym.Space) -> Preset:
    """The preset with the actor and the critic on every observation key when ``space`` lacks the keys
    it names (a Box task such as Pendulum-v1, or a Dict without the racing keys): a generic task has
    no local / global split to make asymmetric."""
    names = set(space.spaces) if isinstance(space, gym.spaces.Dict) else {"obs"}
    wanted = set(preset.agent.actor_keys or ()) | set(preset.agent.critic_keys or ())
    if wanted <= names:
        return preset
    return dataclasses.replace(preset, agent=dataclasses.replace(preset.agent, actor_keys=None, critic_keys=None))


def _json_number(v):
    """JSON has no NaN: write None instead (``pandas.read_json`` reads it back as NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_metrics(run_dir: str | os.PathLike):
    """``metrics.jsonl`` of a run directory as a pandas DataFrame (one row per epoch)."""
    import pandas as pd
    return pd.read_json(Path(run_dir) / "metrics.jsonl", lines=True)
