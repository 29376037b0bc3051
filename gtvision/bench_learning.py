"""``gtvision bench learning``: our learner next to Stable-Baselines3's SAC, same task, same budget, same time.

Both learn the same racing environment (by default Tokyo alone, a rolling start at 20 m/s, the stuck rule
after 3 s, 240 s episodes: :data:`LEARNING_ENV`) under the paper's full reward, for the same minutes of
training, one torch thread each, run at the same time in two processes, so that the machine's speed
counts alike for both. Ours is ``gtvision train`` (a preset, a variant, ``--set`` overrides; by default
the GT Sophy baseline's actor of the ``cpu`` preset); the reference is SB3's ``SAC("MlpPolicy")`` on the
same features flattened (``proprio``, ``course_points``, ``opponent_grid``: gymnasium's
``FilterObservation`` and ``FlattenObservation``), ``learning_starts=2000``, ``gamma=0.99``, its other
settings SB3's defaults.

Per window of training time (:func:`window_table`): the episodes that ended, their mean course progress
(m) and wall-contact time (s), the laps they completed and the best lap. Ours is read from the run's
``metrics.jsonl`` (per-epoch means, weighted by the episodes of each epoch); SB3's from one record per
episode (``sb3/episodes.jsonl``).
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

LEARNING_ENV = {"num_opponents": 0, "start_speed_mps": 20.0, "stuck_s": 3.0, "max_time_s": 240.0}
"""The task both learn: Tokyo's track alone, a rolling start, stopped cars cut short, 240 s episodes."""
SB3_KEYS = ("proprio", "course_points", "opponent_grid")
"""The observation keys SB3's MLP reads (the GT Sophy baseline's)."""
EPISODE_COLUMNS = ("progress_m", "wall_time_s", "laps_done", "best_lap_time_s")


def run_ours(out: str, scenario: str, minutes: float, preset: str, variant: str, overrides: dict, seed: int,
             env_kwargs: dict):
    """``gtvision train`` on one thread for ``minutes`` of training, a checkpoint every 50 epochs (all kept, so
    that each can be raced or time-trialled afterwards; a worker process's body)."""
    from .training import RunConfig, train

    config = RunConfig(scenario=scenario, preset=preset, variant=variant, env_kwargs=env_kwargs,
                       max_minutes=minutes, seed=seed, threads=1, checkpoint_every=50, keep_checkpoints=1000,
                       overrides=overrides)
    train(config, out, progress=False)


def run_sb3(out: str, scenario: str, minutes: float, seed: int, env_kwargs: dict):
    """SB3's SAC on one thread for ``minutes`` of training; one JSON record per ended episode (a worker
    process's body)."""
    import gymnasium as gym
    import torch
    from gymnasium.wrappers import FilterObservation, FlattenObservation
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from .env import ENV_IDS

    torch.set_num_threads(1)
    env = FlattenObservation(FilterObservation(gym.make(ENV_IDS[scenario], **env_kwargs), list(SB3_KEYS)))
    Path(out).mkdir(parents=True, exist_ok=True)
    log = open(Path(out) / "episodes.jsonl", "w")

    class Episodes(BaseCallback):
        def _on_training_start(self):
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            minutes_now = (time.perf_counter() - self.t0) / 60.0
            for done, info in zip(self.locals["dones"], self.locals["infos"]):
                if done:
                    rec = {"minutes": minutes_now, "env_steps": self.num_timesteps,
                           **{k: float(info[k]) for k in EPISODE_COLUMNS if k in info}}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
            return minutes_now < minutes

    model = SAC("MlpPolicy", env, learning_starts=2000, gamma=0.99, seed=seed, verbose=0, device="cpu")
    model.learn(total_timesteps=10 ** 9, callback=Episodes())
    log.close()
    env.close()


def ours_episodes(run_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per epoch of a run that ended episodes: ``minutes`` of training at its end, ``weight`` (the
    episodes) and their mean :data:`EPISODE_COLUMNS` (``best_lap_time_s``: the epoch's best)."""
    from .training import read_metrics

    m = read_metrics(run_dir)
    m = m[m["charts/episodes"] > 0]
    out = pd.DataFrame({"minutes": m["charts/wall_s"] / 60.0, "weight": m["charts/episodes"]})
    for c in EPISODE_COLUMNS:
        key = f"episode/{c}"
        out[c] = m[key].to_numpy(float) if key in m else np.nan
    return out.reset_index(drop=True)


def sb3_episodes(out: str | os.PathLike) -> pd.DataFrame:
    """SB3's episodes (``episodes.jsonl``), one row each with weight 1."""
    rows = [json.loads(line) for line in (Path(out) / "episodes.jsonl").read_text().splitlines() if line]
    df = pd.DataFrame(rows, columns=["minutes", *EPISODE_COLUMNS])
    df.insert(1, "weight", 1.0)
    return df


def window_table(episodes: pd.DataFrame, window_min: float = 5.0, minutes: float | None = None) -> pd.DataFrame:
    """Per ``window_min`` of training time: ``episodes``, the weighted mean ``progress_m`` and ``wall_time_s``,
    ``laps`` (completed laps, weighted sum) and ``best_lap_s`` (NaN when none). ``episodes``: rows of
    ``minutes``, ``weight`` and :data:`EPISODE_COLUMNS`."""
    end = minutes if minutes is not None else float(episodes["minutes"].max() if len(episodes) else window_min)
    edges = np.arange(0.0, end + 1e-9, window_min)
    if edges[-1] < end:
        edges = np.append(edges, end)
    rows = []
    for a, b in zip(edges[:-1], edges[1:]):
        e = episodes[(episodes["minutes"] > a) & (episodes["minutes"] <= b)]
        w = e["weight"].to_numpy(float)
        total = float(w.sum())

        def mean(col):
            return float((e[col] * w).sum() / total) if total else math.nan

        laps = e["best_lap_time_s"].to_numpy(float)
        rows.append({"window": f"{a:g}-{b:g}", "episodes": int(round(total)), "progress_m": mean("progress_m"),
                     "wall_time_s": mean("wall_time_s"), "laps": float((e["laps_done"] * w).sum()),
                     "best_lap_s": float(np.nanmin(laps)) if np.isfinite(laps).any() else math.nan})
    return pd.DataFrame(rows)


def bench_learning(out: str | os.PathLike, scenario: str = "tokyo", minutes: float = 25.0, window_min: float = 5.0,
                   preset: str = "cpu", variant: str = "gt_sophy", overrides: dict | None = None, seed: int = 0,
                   env_kwargs: dict | None = None, sb3: bool = True) -> dict:
    """Run ours and SB3's SAC side by side (two processes, one thread each) for ``minutes`` of training, into
    ``out/ours`` and ``out/sb3``; return their window tables (:func:`window_table`) and write
    ``out/learning.csv`` and ``out/learning.png``."""
    import multiprocessing as mp

    out = Path(out)
    if (out / "ours" / "metrics.jsonl").exists():
        raise FileExistsError(f"{out} already holds a learning benchmark; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    env_kwargs = {**LEARNING_ENV, **(env_kwargs or {})}
    ctx = mp.get_context("spawn")
    jobs = [ctx.Process(target=run_ours, args=(str(out / "ours"), scenario, minutes, preset, variant,
                                                 overrides or {}, seed, env_kwargs))]
    if sb3:
        jobs.append(ctx.Process(target=run_sb3, args=(str(out / "sb3"), scenario, minutes, seed, env_kwargs)))
    for j in jobs:
        j.start()
    for j in jobs:
        j.join()
    failed = [j.exitcode for j in jobs if j.exitcode != 0]
    if failed:
        raise RuntimeError(f"a learner process failed (exit codes {failed}); see the messages above")
    tables = {"ours": window_table(ours_episodes(out / "ours"), window_min, minutes)}
    if sb3:
        tables["sb3"] = window_table(sb3_episodes(out / "sb3"), window_min, minutes)
    both = pd.concat([t.assign(learner=name) for name, t in tables.items()], ignore_index=True)
    both.to_csv(out / "learning.csv", index=False)
    plot_learning(tables, out / "learning.png")
    return tables


def plot_learning(tables: dict[str, pd.DataFrame], path: str | os.PathLike):
    """Four panels by window: course progress, wall time, laps, best lap; one line per learner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for name, t in tables.items():
        x = np.arange(len(t))
        for ax, col, label in zip(axes, ("progress_m", "wall_time_s", "laps", "best_lap_s"),
                                  ("course progress per episode (m)", "wall contact per episode (s)",
                                   "laps completed", "best lap (s)")):
            ax.plot(x, t[col], marker="o", label=name)
            ax.set_title(label)
            ax.set_xticks(x, t["window"], rotation=45)
            ax.set_xlabel("training minutes")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
