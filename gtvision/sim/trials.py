"""Standard car trials: full throttle from a standstill on a flat straight (0-100 km/h, top speed)."""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from . import core
from .cars import CarSpec, get_car
from .track import Surface, Track, TrackSpec, build_track


@functools.lru_cache(maxsize=2)
def drag_strip(straight_m: float = 8000.0) -> Track:
    """A flat oval whose two straights are long enough for any car's top speed."""
    return build_track(TrackSpec(
        name="drag_strip", display_name=f"Flat oval, {straight_m / 1000:g} km straights",
        real_length_m=2 * straight_m + 2 * math.pi * 400.0,
        segments=(("S", straight_m), ("L", 400.0, 180.0), ("S", straight_m), ("L", 400.0, 180.0)),
        width_m=20.0, runoff_m=(10.0, 10.0), runoff_surface=(Surface.TARMAC_RUNOFF, Surface.TARMAC_RUNOFF),
    ))


def full_throttle_run(car: CarSpec | str, seconds: float = 70.0, device: str = "cpu"):
    """Speed trace of a stock car at full throttle from a standstill (control ``[0, +1]``).

    Returns a pandas.DataFrame with columns ``t_s``, ``speed_kmh`` and ``gear`` (1-based) at 10 Hz.
    """
    import pandas as pd

    car = get_car(car) if isinstance(car, str) else car
    params = core.make_params(drag_strip().to(device), car, device=device)
    state = core.reset(params, num_races=1, num_cars=1, start_s_m=torch.tensor([100.0]))
    controls = torch.tensor([[[0.0, 1.0]]], device=params.device)  # no steering change, full throttle
    t, v, gear = [0.0], [0.0], [1]
    for _ in range(int(seconds * core.CONTROL_HZ)):
        state = core.step(state, controls, params)
        t.append(state.time_s.item())
        v.append(3.6 * state.speed_mps.item())
        gear.append(int(state.gear.item()) + 1)
    return pd.DataFrame({"t_s": t, "speed_kmh": v, "gear": gear})


def acceleration_figures(trace) -> dict:
    """0-100 and 0-200 km/h times (interpolated between samples) and the top speed of a trace."""
    rising = np.maximum.accumulate(trace.speed_kmh.to_numpy())
    t_100, t_200 = (float(np.interp(kmh, rising, trace.t_s, right=np.nan)) for kmh in (100.0, 200.0))
    return {"0_100_s": t_100, "0_200_s": t_200, "top_speed_kmh": float(trace.speed_kmh.max())}
