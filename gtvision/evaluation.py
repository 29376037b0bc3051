"""Evaluation races (paper IV-C, IV-D): ``gtvision evaluate`` and :func:`evaluate` behind it.

An episode is a 4-lap race from the back of a 20-car grid against 19 BIAI cars, BoP off
(``gtvision.env.RACE``); every episode of an evaluation runs in one batch of the vector environment.
The driver in the agent's seat is the BIAI itself (the baseline of IV-C) or a trained checkpoint's
actor (deterministic: the Gaussian's mean).

Per episode (one row of the results table; ``driver``, ``variant`` (:func:`driver_variant`) and ``scenario``
come first):

======================  ===================================================================================
column                  meaning
======================  ===================================================================================
``margin_m``            winning margin (IV-C): the agent's course progress minus the best opponent's when
                        the agent finishes; positive = the lead over the second car, negative = the deficit.
                        Unfinished races: the deficit to the winner when the winner finished (:func:`race_margin`)
``car_collision_time_s`` time in contact with other cars (IV-C)
``place``               final place, 1..20; last for a race the agent did not finish (:func:`race_place`)
``wall_time_s``         time in contact with a barrier
``off_course_time_s``   time with at least three tyres outside the track limits
``lap_1_s`` ..          each completed lap (timed line to line; the first from the rolling crossing of the line)
``best_clean_lap_s``    the best completed lap without wall contact or off-course time in it (NaN: none)
``finished``            the agent completed the race (else the time cap or the stuck rule ended it)
``race_time_s``         race time when the episode ended
``progress_m``          course distance the agent covered
======================  ===================================================================================

:func:`select_checkpoint` is the rule of IV-D: the best mean winning margin among the checkpoints whose
mean collision time is under a threshold.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import checkpoints
from .agent.rollout import Rollout
from .scenarios import SCENARIO_NAMES
from .sim.core import CONTROL_HZ

DRIVERS = ("biai",)
"""Built-in drivers for the agent's seat (besides checkpoints)."""


def driver_variant(driver: str | os.PathLike) -> str:
    """What drives: a built-in driver's name, or the variant (``gtvision.agent.config.VARIANTS``) a checkpoint
    was trained as."""
    if str(driver) in DRIVERS:
        return str(driver)
    return checkpoints.run_preset(checkpoints.resolve(driver)[1]).variant


def results_name(driver: str | os.PathLike, scenario: str) -> str:
    """``eval_<scenario>_<who>``: ``biai``, a run's name, or ``<run>_<epoch_N>`` for one of its checkpoints (so
    the checkpoints of different runs do not share a name)."""
    path = Path(driver)
    if str(driver) in DRIVERS:
        who = str(driver)
    elif path.parent.name == "checkpoints":
        who = f"{path.parent.parent.name}_{path.name}"
    else:
        who = path.name
    return f"eval_{scenario}_{who}"


def race_envs(driver, scenario: str, num_envs: int, laps: int, device: str, max_time_s: float | None = None,
              opponents: int | None = None, render_image: bool | None = None):
    """Evaluation races (``gtvision.env.RACE`` with ``laps``, and ``opponents`` BIAI cars instead of 19 when
    given) and the driver's policy (None for the BIAI). The races render the agent's view only when the
    driver reads it (``gtvision.env.env_kwargs_for``), or as ``render_image`` says."""
    from .env import ENV_IDS, RACE, env_kwargs_for
    from .env.episodes import MAX_OPPONENTS

    if scenario not in SCENARIO_NAMES:
        raise ValueError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIO_NAMES)}")
    kwargs = {**RACE, "laps": laps}
    if opponents is not None:
        if not isinstance(opponents, int) or not 0 <= opponents <= MAX_OPPONENTS:
            raise ValueError(f"opponents must be an int in 0..{MAX_OPPONENTS}, got {opponents!r}")
        kwargs["num_opponents"] = opponents
    if max_time_s is not None:
        kwargs["max_time_s"] = float(max_time_s)
    if render_image is not None:
        kwargs["render_image"] = render_image
    env_id = ENV_IDS[scenario]
    if str(driver) not in DRIVERS:
        if not Path(driver).exists():
            raise ValueError(f"driver {str(driver)!r} is neither a checkpoint path nor one of: {', '.join(DRIVERS)}")
        _, run_dir = checkpoints.resolve(driver)  # refuse what is not a checkpoint before building anything
        kwargs = env_kwargs_for(env_id, kwargs, checkpoints.run_preset(run_dir).agent)
    elif render_image is None:
        kwargs["render_image"] = False  # the BIAI drives from the simulator's state
    envs = gym.make_vec(env_id, num_envs=num_envs, device=device, **kwargs)
    if str(driver) in DRIVERS:
        return envs, None
    try:
        agent = checkpoints.load_actor(driver, envs.single_observation_space, envs.single_action_space, device)
    except ValueError:
        envs.close()
        raise
    return envs, agent


def evaluate(driver: str | os.PathLike = "biai", scenario: str = "tokyo", episodes: int = 8, seed: int = 0,
             device: str = "cpu", laps: int = 4, progress: bool = True, opponents: int | None = None,
             max_time_s: float | None = None) -> pd.DataFrame:
    """Race ``episodes`` 4-lap races (batched) with ``driver`` in the agent's seat; one row per episode.
    ``opponents`` (0..19) thins the grid: 0 is a time trial from the back of the grid. ``max_time_s`` cuts the
    races short (unfinished at that time; the default is the environment's limit for ``laps``)."""
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive int, got {episodes!r}")
    envs, agent = race_envs(driver, scenario, episodes, laps, device, max_time_s=max_time_s, opponents=opponents)
    rollout = Rollout(envs, agent, seed=seed, eval_mode=True)
    batch = envs.unwrapped.batch
    active = np.ones(episodes, bool)
    laps_seen = np.zeros(episodes, np.int64)
    lap_times: list[list[float]] = [[] for _ in range(episodes)]
    clean_laps: list[list[float]] = [[] for _ in range(episodes)]  # laps without wall or off-course time
    dirt_at_lap = np.zeros(episodes)  # wall + off-course time when the last lap began
    rows: list[dict | None] = [None] * episodes
    race_m = laps * float(batch.track.length_m)
    at_winner = np.full(episodes, np.nan)  # the agent's progress when the leading opponent completed the race
    max_steps = int(math.ceil(batch.time_limit_s * CONTROL_HZ)) + 10
    bar = tqdm(total=max_steps, desc=f"{scenario}: {episodes} race(s)", unit="step", disable=not progress)
    for _ in range(max_steps):
        step = rollout.step(batch.biai_actions().cpu().numpy() if agent is None else None)
        info, terminated, truncated = step.info, step.terminated, step.truncated
        dirt = info["wall_time_s"] + info["off_course_time_s"]
        for i in np.flatnonzero(active & (info["laps_done"] > laps_seen)):
            lap_times[i].append(float(info["last_lap_time_s"][i]))
            if dirt[i] == dirt_at_lap[i]:
                clean_laps[i].append(lap_times[i][-1])
            laps_seen[i], dirt_at_lap[i] = info["laps_done"][i], dirt[i]
        leader = info["progress_m"] - info["margin_m"]
        won = active & np.isnan(at_winner) & (info["num_opponents"] > 0) & (leader >= race_m)
        at_winner[won] = info["progress_m"][won]
        ended = np.flatnonzero(active & (terminated | truncated))
        if ended.size:
            margin = race_margin(info["margin_m"], info["progress_m"], info["finished"], info["num_opponents"],
                                 at_winner, race_m)
            place = race_place(info["place"], info["finished"], info["num_opponents"])
        for i in ended:
            rows[i] = {"episode": int(i), "margin_m": float(margin[i]),
                       "car_collision_time_s": float(info["car_contact_time_s"][i]), "place": int(place[i]),
                       "wall_time_s": float(info["wall_time_s"][i]),
                       "off_course_time_s": float(info["off_course_time_s"][i]),
                       "finished": bool(info["finished"][i]), "race_time_s": float(info["time_s"][i]),
                       "progress_m": float(info["progress_m"][i]),
                       "best_clean_lap_s": min(clean_laps[i], default=math.nan),
                       **{f"lap_{k + 1}_s": t for k, t in enumerate(lap_times[i][:laps])}}
            active[i] = False
        bar.update(1)
        if not active.any():
            break
    bar.close()
    envs.close()
    if active.any():
        raise RuntimeError(f"{int(active.sum())} race(s) did not end within {max_steps} steps")
    table = pd.DataFrame(rows)
    table.insert(0, "driver", str(driver))
    table.insert(1, "variant", driver_variant(driver))
    table.insert(2, "scenario", scenario)
    return table


def race_margin(margin_m: np.ndarray, progress_m: np.ndarray, finished: np.ndarray, num_opponents: np.ndarray,
                at_winner_m: np.ndarray, race_m: float) -> np.ndarray:
    """The winning margin (m) of races as they end, per race: the environment's margin (the agent's progress minus
    the best opponent's) for a finished race or one without opponents; for a race the agent does not finish,
    its deficit to the winner when the winner completed the race (``at_winner_m``, the agent's progress then;
    NaN when no opponent has finished yet: its progress now), i.e. its progress then minus ``race_m``.

    Paper: IV-C measures the margin when the agent completes the four laps; its agents always did. A car that
    stops (the stuck rule) or is cut by the time cap has no such moment. Measured when its race ends instead, a
    car stuck at the start trails a leader only a few hundred metres up the road and would score better than
    one that drives four slow laps, and the best-margin rule of IV-D would pick it. Measured at the winner's
    finish (as timing a retired car), a car that stops is never better than one that finishes behind."""
    dnf = ~np.asarray(finished, bool) & (np.asarray(num_opponents) > 0)
    at = np.where(np.isnan(at_winner_m), progress_m, at_winner_m)
    return np.where(dnf, np.minimum(at, race_m) - race_m, margin_m)


def race_place(place: np.ndarray, finished: np.ndarray, num_opponents: np.ndarray) -> np.ndarray:
    """The final place of races as they end: the environment's place (finishers by finish time, then the others
    by progress) for a finished race; last (``1 + num_opponents``) for a race the agent did not finish, as a
    retired car is classified behind the cars still running. (Else a car stuck mid-pack would keep the places
    of the cars behind it, which would have passed it.)"""
    return np.where(np.asarray(finished, bool), place, 1 + np.asarray(num_opponents))


def summarize(table: pd.DataFrame) -> dict:
    """Win rate, winning margin, places and times of an evaluation table."""
    return {"episodes": len(table), "win_rate": float((table["place"] == 1).mean()),
            "margin_mean_m": float(table["margin_m"].mean()), "margin_median_m": float(table["margin_m"].median()),
            "place_mean": float(table["place"].mean()), "place_median": float(table["place"].median()),
            "car_collision_time_mean_s": float(table["car_collision_time_s"].mean()),
            "wall_time_mean_s": float(table["wall_time_s"].mean()),
            "off_course_time_mean_s": float(table["off_course_time_s"].mean()),
            "finished": int(table["finished"].sum())}


def select_checkpoint(results: dict[str, pd.DataFrame], max_collision_s: float) -> str:
    """Paper IV-D: among checkpoints whose mean car-collision time is under ``max_collision_s``, the one with
    the best mean winning margin. ``results``: checkpoint name -> its evaluation table."""
    eligible = {name: t["margin_m"].mean() for name, t in results.items()
                if t["car_collision_time_s"].mean() < max_collision_s}
    if not eligible:
        worst = min(t["car_collision_time_s"].mean() for t in results.values())
        raise ValueError(f"no checkpoint has a mean collision time under {max_collision_s} s "
                         f"(the lowest is {worst:.2f} s)")
    return max(eligible, key=eligible.get)


def select_from_run(run: str | os.PathLike, scenario: str = "tokyo", episodes: int = 8, max_collision_s: float = 1.0,
                    seed: int = 0, laps: int = 4, out: str | os.PathLike | None = None, device: str = "cpu",
                    progress: bool = True, from_epoch: int = 0) -> tuple[str | None, pd.DataFrame]:
    """Paper IV-D over a training run: race every complete checkpoint of ``run`` from epoch ``from_epoch`` on
    (``episodes`` races each, the same seeds for all) and pick by :func:`select_checkpoint`. Returns the chosen
    checkpoint's name (None when none is under the threshold) and one summary row per checkpoint; with
    ``out``, each checkpoint's table and summary are written there (``eval_<scenario>_<run>_<checkpoint>``),
    and a checkpoint whose table is already there from races on the same settings (scenario, races, seed,
    laps) is not raced again: calling it again while the run trains races only the new checkpoints."""
    checkpoints.read_run_config(run)
    if isinstance(from_epoch, bool) or not isinstance(from_epoch, int) or from_epoch < 0:
        raise ValueError(f"from_epoch must be an int >= 0, got {from_epoch!r}")
    found = [p for p in checkpoints.complete_checkpoints(run) if checkpoints.checkpoint_epoch(p) >= from_epoch]
    if not found:
        raise checkpoints.NotARunError(f"{run} holds no complete checkpoint from epoch {from_epoch} on "
                                       "(expected RUN/checkpoints/epoch_N/)")
    races = {"scenario": scenario, "episodes": episodes, "seed": seed, "laps": laps}
    tables = {}
    for path in tqdm(found, desc=f"{Path(run).name}: checkpoints", unit="ckpt", disable=not progress):
        name = results_name(path, scenario)
        tables[path.name] = read_results(out, name, races) if out is not None else None
        if tables[path.name] is None:
            tables[path.name] = evaluate(path, scenario, episodes, seed, device, laps=laps, progress=False)
            if out is not None:
                write_results(tables[path.name], out, name, races)
    summary = pd.DataFrame([{"checkpoint": name, **summarize(t)} for name, t in tables.items()])
    summary["eligible"] = summary["car_collision_time_mean_s"] < max_collision_s
    choice = select_checkpoint(tables, max_collision_s) if summary["eligible"].any() else None
    summary["selected"] = summary["checkpoint"] == choice
    return choice, summary


def read_results(out: str | os.PathLike, name: str, races: dict) -> pd.DataFrame | None:
    """The table ``name.csv`` in ``out`` when its summary says it was raced on ``races`` (the settings
    :func:`write_results` records), else None."""
    csv, js = Path(out) / f"{name}.csv", Path(out) / f"{name}.json"
    if not (csv.exists() and js.exists()):
        return None
    try:
        recorded = json.loads(js.read_text()).get("races")
    except json.JSONDecodeError:
        return None
    return pd.read_csv(csv) if recorded == races else None


def write_results(table: pd.DataFrame, out: str | os.PathLike, name: str,
                  races: dict | None = None) -> tuple[Path, Path]:
    """``name.csv`` (the table) and ``name.json`` (its summary, and under ``"races"`` the settings it was
    raced on, when given) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv, js = out / f"{name}.csv", out / f"{name}.json"
    table.to_csv(csv, index=False)
    summary = summarize(table) if races is None else {**summarize(table), "races": races}
    js.write_text(json.dumps(summary, indent=2))
    return csv, js


def races_per_minute(scenario: str = "tokyo", episodes: int = 64, seed: int = 0) -> float:
    """Four-lap races per minute of the BIAI in the agent's seat, ``episodes`` batched (IV-C)."""
    t0 = time.perf_counter()
    evaluate("biai", scenario, episodes, seed, progress=False)
    return episodes / ((time.perf_counter() - t0) / 60.0)


def record_race(driver: str | os.PathLike = "biai", scenario: str = "tokyo", laps: int = 4, seed: int = 0,
                max_time_s: float | None = None, device: str = "cpu", progress: bool = True):
    """One evaluation race (the agent, car 0, from the back of the grid) recorded for a video: a
    ``gtvision.sim.race.RaceLog`` whose trajectory holds every car at 10 Hz. ``max_time_s`` cuts it short."""
    from .sim.race import RaceLog

    envs, agent = race_envs(driver, scenario, 1, laps, device, max_time_s)
    rollout = Rollout(envs, agent, seed=seed, eval_mode=True)
    batch = envs.unwrapped.batch
    traj = {k: [] for k in ("x", "y", "yaw", "speed")}
    max_steps = int(math.ceil(batch.time_limit_s * CONTROL_HZ)) + 10
    for _ in tqdm(range(max_steps), desc=f"{scenario} race", unit="step", disable=not progress, leave=False):
        s = batch.state
        for k, v in (("x", s.x), ("y", s.y), ("yaw", s.yaw), ("speed", s.speed_mps)):
            traj[k].append(v.cpu().numpy().copy())
        step = rollout.step(batch.biai_actions().cpu().numpy() if agent is None else None)
        if step.done[0]:
            break
    trajectory = {k: np.stack(v) for k, v in traj.items()}
    trajectory["t"] = np.arange(len(traj["x"])) / CONTROL_HZ
    log = RaceLog(scenario=scenario, laps=laps, results=None, params=batch.params, final_state=batch.state,
                  qss_lap_time_s=batch.plan.qss_lap_time_s, trajectory=trajectory)
    envs.close()
    return log


def write_video(driver: str | os.PathLike, scenario: str, path: str | os.PathLike, laps: int = 4, seed: int = 0,
                max_time_s: float | None = None, speedup: int = 2, progress: bool = True) -> str:
    """An MP4 (or GIF, by the extension) of one evaluation race: the agent's ego view beside the map."""
    from .sim.race import write_race_video

    log = record_race(driver, scenario, laps, seed, max_time_s, progress=progress)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_race_video(log, str(path), ego=0, speedup=speedup, progress=progress)
