"""Put each race's learner at a standstill at a chosen place of the course (for the diagnostics that set up
situations instead of waiting for races to meet them: wall_escape.py, heading_probe.py)."""
import torch

from gtvision.agent.compass import WALL_GAP_M, reach_m
from gtvision.env.episodes import LEARNER
from gtvision.env.observations import vertical_motion

GAP_M = WALL_GAP_M
"""A car put at a wall stands this far from it at its nearest corner (the compass's frames' gap)."""


def at_wall(track, car, s: torch.Tensor, side: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """(n,) the lateral offset (m, + left) of a car at course distance ``s`` beside the left (``side`` +1) or right
    (-1) wall, ``GAP_M`` from it."""
    station = track.station_of_s(s)
    wall = torch.where(side > 0, track.wall_left_m[station], track.wall_right_m[station])
    return side * (wall - reach_m(car, psi) - GAP_M)


def place(batch, s: torch.Tensor, lat: torch.Tensor, psi: torch.Tensor) -> None:
    """Each race's learner (R,) at course distance ``s`` (m; its progress too), lateral offset ``lat`` (m, + left),
    heading ``psi`` (rad) against the course, standing; its stuck clock starts afresh. The observation changes:
    read it again (the env's ``_obs()``)."""
    track, st = batch.track, batch.state
    station = track.station_of_s(s)
    x, y, _ = track.point_at(s, lat)
    zeros = torch.zeros_like(s)
    new = {}
    for name, value in {"x": x, "y": y, "yaw": track.heading_rad[station] + psi, "s_m": s, "lat_m": lat,
                        "progress_m": s, "vx": zeros, "vy": zeros, "yaw_rate": zeros, "station": station}.items():
        column = getattr(st, name).clone()
        column[:, LEARNER] = value.to(column)
        new[name] = column
    batch.state = st.replace(**new)
    batch.stuck_ref_m[:] = batch.state.progress_m[:, LEARNER]
    batch.stuck_time_s[:] = 0.0
    batch.vertical[:] = vertical_motion(batch.state, track)
