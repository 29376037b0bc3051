"""Fixtures shared by the test modules: one torch thread, flat test ovals, and a smoke-trained vision run; and
helpers that put cars on a track (``from conftest import place_cars, pose_at``)."""
from __future__ import annotations

import math
import os

import pytest
import torch

from gtvision.sim.track import TrackSpec, build_track

STRAIGHT_M = 2000.0
"""Length of each straight of the test ovals (m)."""


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs a worker a core), each worker computes on one torch thread: the workers
    together fill the cores, and more threads a worker would only wait on each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread():
    """The simulator's tensors and the test networks are tiny: on a shared 2-core machine extra
    intra-op threads only spin and wait (a 20-car step is ~5x slower with 2 threads than with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smoke_vision_run(tmp_path_factory):
    """A run of the vision agent (the ``smoke`` preset, 64 steps on Tokyo with one opponent): its directory, for the
    tests that export it with safety layers and race it."""
    from gtvision.training import RunConfig, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run, _ = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, seed=3,
                             env_kwargs={"num_opponents": 1, "max_time_s": 2.0}),
                   tmp_path_factory.mktemp("smoke_vision") / "run", progress=False)
    torch.set_num_threads(threads)
    return run


@pytest.fixture(scope="session")
def make_oval():
    """``make_oval(name, width_m, runoff_m, **spec)``: a flat oval of two ``STRAIGHT_M`` straights
    joined by 150 m half circles (left turns); ``spec`` goes to :class:`TrackSpec`."""
    def make(name: str, width_m: float, runoff_m: float, **spec):
        turn = ("L", 150.0, 180.0)
        return build_track(TrackSpec(
            name=name, display_name="Test oval", real_length_m=2 * STRAIGHT_M + 2 * math.pi * 150,
            segments=(("S", STRAIGHT_M), turn, ("S", STRAIGHT_M), turn), width_m=width_m,
            runoff_m=(runoff_m, runoff_m), **spec))
    return make


def pose_at(track, s_m, lat_m, yaw_offset_rad=0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World pose ``(x, y, yaw)`` of cars at arc length ``s_m`` and lateral offset ``lat_m`` (tensors of
    one shape), heading along the track plus ``yaw_offset_rad`` (broadcast to that shape)."""
    s = torch.as_tensor(s_m, dtype=torch.float32)
    lat = torch.as_tensor(lat_m, dtype=torch.float32)
    x, y, _ = track.point_at(s, lat)
    yaw = track.heading_rad[track.station_of_s(s)] + torch.as_tensor(yaw_offset_rad, dtype=torch.float32)
    return x, y, yaw


def place_cars(state, track, s_m, lat_m, yaw_offset_rad=0.0, speed_mps=None):
    """``state`` with every car at arc length ``s_m`` / lateral offset ``lat_m`` (broadcast to (R, C)),
    heading along the track plus ``yaw_offset_rad``, moving straight ahead (no slip, no yaw rate) at
    ``speed_mps``; without ``speed_mps`` each car keeps its speed."""
    shape = state.x.shape
    s = torch.as_tensor(s_m, dtype=torch.float32).expand(shape).clone()
    lat = torch.as_tensor(lat_m, dtype=torch.float32).expand(shape).clone()
    x, y, yaw = pose_at(track, s, lat, torch.as_tensor(yaw_offset_rad, dtype=torch.float32).expand(shape))
    out = state.replace(x=x, y=y, yaw=yaw, s_m=s, lat_m=lat, station=track.station_of_s(s),
                        progress_m=s.clone(), vy=torch.zeros(shape), yaw_rate=torch.zeros(shape))
    if speed_mps is not None:
        out = out.replace(vx=torch.as_tensor(speed_mps, dtype=torch.float32).expand(shape).clone())
    return out
