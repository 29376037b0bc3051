"""Whole races of the built-in AI: a grid of BIAI cars, results and videos. (An agent races in
``gtvision.evaluation``, whose recordings are :class:`RaceLog` too and draw with :func:`write_race_video`.)

``run_race`` is what ``gtvision race`` and notebook 01 call. Many races run batched: every tensor has
leading axes ``[races, cars]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .scenarios import get_scenario
from . import core
from .biai import BIAIConfig, biai_controls, driving_plan

RACE_TIME_CAP_FACTOR = 1.8
"""A race ends, finished or not, after this many times the BIAI's expected race time."""
START_REACTION_S = 0.3
"""Each driver's reaction to the start is drawn uniformly from [0, this] seconds (per race and car,
from the seed): without it the races of a batch, identical cars on identical grids, would be copies."""


@dataclass
class RaceLog:
    """What :func:`run_race` returns: per-car results and, if asked, the trajectories."""

    scenario: str
    laps: int
    results: "object"
    """pandas.DataFrame, one row per (race, car): place, finished, finish_time_s, best_lap_s, ..."""
    params: core.SimParams
    final_state: core.SimState
    qss_lap_time_s: float
    trajectory: dict = field(default_factory=dict)
    """If recorded: 'x', 'y', 'yaw', 'speed' arrays of shape (T, R, C) at 10 Hz, and 't' (T,)."""

    def summary(self) -> dict:
        """Aggregates over all cars of all races."""
        r = self.results
        return {
            "races": int(r["race"].nunique()),
            "cars": int(len(r)),
            "finished": int(r["finished"].sum()),
            "car_contacts": int(r["car_contacts"].sum()),
            "car_contact_time_s": float(r["car_contact_time_s"].sum()),
            "wall_time_s": float(r["wall_time_s"].sum()),
            "off_course_time_s": float(r["off_course_time_s"].sum()),
            "wall_time_max_s": float(r["wall_time_s"].max()),
            "off_course_time_max_s": float(r["off_course_time_s"].max()),
            "best_lap_s": float(r["best_lap_s"].min()),
            "qss_lap_s": float(self.qss_lap_time_s),
        }


def final_places(state: core.SimState) -> torch.Tensor:
    """(R, C) int64 final place (1 = winner): finishers by finish time, then the rest by progress."""
    # float64: at 1e9 a float32 key would only resolve progress to 64 m
    key = torch.where(state.finished, state.finish_time_s.double(), 1e9 - state.progress_m.double())
    order = key.argsort(dim=1)
    places = torch.empty_like(order)
    ranks = torch.arange(1, state.num_cars + 1, device=order.device).expand_as(order)
    places.scatter_(1, order, ranks)
    return places


def run_race(scenario: str = "tokyo", laps: int = 4, num_races: int = 1, num_cars: int = core.GRID_SIZE,
             seed: int = 0, device: str = "cpu", bop: bool = False, record: bool = False,
             biai: BIAIConfig = BIAIConfig(), progress: bool = True, max_time_s: float | None = None) -> RaceLog:
    """Race ``num_races`` grids of ``num_cars`` BIAI cars over ``laps`` laps, from a standing start.

    Returns a :class:`RaceLog` whose ``results`` table has one row per car. With ``record=True`` the
    10 Hz trajectories of every car are kept (for maps and videos).
    """
    import pandas as pd
    from tqdm import tqdm

    sc = get_scenario(scenario)
    params = core.make_params(sc.track, sc.car, laps=laps, device=device)
    plan = driving_plan(params.track, params.car)
    gen = torch.Generator().manual_seed(seed)
    state = core.reset(params, num_races, num_cars, start="grid", bop=bop, generator=gen)
    expected = laps * plan.qss_lap_time_s / biai.pace + 30.0
    cap = max_time_s if max_time_s is not None else RACE_TIME_CAP_FACTOR * expected
    steps = int(math.ceil(cap * core.CONTROL_HZ))
    traj = {k: [] for k in ("x", "y", "yaw", "speed")} if record else {}
    bar = tqdm(total=steps, desc=f"{sc.name} {num_races}x{num_cars} cars, {laps} laps", unit="step",
               disable=not progress, leave=False)
    reaction_s = torch.rand(num_races, num_cars, generator=gen).to(params.device) * START_REACTION_S
    for k in range(steps):
        controls = biai_controls(state, params, plan, biai)
        if k < START_REACTION_S * core.CONTROL_HZ:
            waiting = reaction_s > k / core.CONTROL_HZ
            controls[..., 1] = torch.where(waiting, torch.zeros_like(controls[..., 1]), controls[..., 1])
        state = core.step(state, controls, params)
        if record:
            traj["x"].append(state.x.cpu().numpy().copy())
            traj["y"].append(state.y.cpu().numpy().copy())
            traj["yaw"].append(state.yaw.cpu().numpy().copy())
            traj["speed"].append(state.speed_mps.cpu().numpy().copy())
        bar.update(1)
        if bool(state.finished.all()):
            break
    bar.close()
    if record:
        traj = {k: np.stack(v) for k, v in traj.items()}
        traj["t"] = np.arange(1, traj["x"].shape[0] + 1) / core.CONTROL_HZ
    R, C = state.num_races, state.num_cars
    per_car = {
        "place": final_places(state), "finished": state.finished, "finish_time_s": state.finish_time_s,
        "best_lap_s": state.best_lap_time_s, "laps": state.laps_done, "car_contacts": state.contact_count,
        "car_contact_time_s": state.car_contact_time_s, "wall_time_s": state.wall_time_s,
        "off_course_time_s": state.off_course_time_s,
    }
    races, cars = torch.meshgrid(torch.arange(R), torch.arange(C), indexing="ij")
    results = pd.DataFrame({"race": races.reshape(-1).numpy(), "car": cars.reshape(-1).numpy(),
                            "grid_slot": cars.reshape(-1).numpy() + 1,
                            **{k: v.reshape(-1).cpu().numpy() for k, v in per_car.items()}})
    return RaceLog(scenario=sc.name, laps=laps, results=results, params=params, final_state=state,
                   qss_lap_time_s=plan.qss_lap_time_s, trajectory=traj)


def write_race_video(log: RaceLog, path: str, race: int = 0, ego: int | None = None, speedup: int = 2,
                     ego_size=(270, 480), map_size=(270, 270), progress: bool = True) -> str:
    """Write an MP4 (or GIF, by extension) of a recorded race: the ego view beside the map.

    ``ego`` defaults to the car that started last on the grid; ``speedup`` keeps every n-th 10 Hz
    frame and plays at 10 fps.
    """
    import imageio.v2 as imageio
    from tqdm import tqdm

    from .render import CameraConfig, render_ego
    from .topdown import render_map_frame

    if not log.trajectory:
        raise ValueError("the race was not recorded: call run_race(..., record=True)")
    tr = log.trajectory
    T, R, C = tr["x"].shape
    if not 0 <= race < R:
        raise ValueError(f"race {race} out of range 0..{R - 1}")
    ego = C - 1 if ego is None else ego
    car = log.params.car
    track = log.params.track
    cam = CameraConfig(height_px=ego_size[0], width_px=ego_size[1])
    frames = range(0, T, max(1, speedup))
    if str(path).lower().endswith(".gif"):
        kwargs = {"duration": 1000 // core.CONTROL_HZ, "loop": 0}
    else:
        kwargs = {"fps": core.CONTROL_HZ, "codec": "libx264", "quality": 7, "macro_block_size": 1}
    with imageio.get_writer(path, **kwargs) as writer:
        for t in tqdm(frames, desc="video", disable=not progress, leave=False):
            x = torch.as_tensor(tr["x"][t, race:race + 1], device=track.device)
            y = torch.as_tensor(tr["y"][t, race:race + 1], device=track.device)
            yaw = torch.as_tensor(tr["yaw"][t, race:race + 1], device=track.device)
            img = render_ego(track, x, y, yaw, torch.tensor([ego], device=track.device),
                             car.length_m, car.width_m, car.height_m, cam)[0].cpu().numpy()
            m = render_map_frame(track, tr["x"][t, race], tr["y"][t, race], tr["yaw"][t, race], ego=ego,
                                 size_px=map_size)
            if m.shape[0] != img.shape[0]:
                pad = np.full((img.shape[0], m.shape[1], 3), 255, np.uint8)
                pad[: min(m.shape[0], img.shape[0])] = m[: img.shape[0]]
                m = pad
            writer.append_data(np.concatenate([img, m[..., :3]], axis=1))
    return str(path)
