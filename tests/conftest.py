"""Fixtures shared by the test modules: one torch thread, and flat test ovals."""
from __future__ import annotations

import math

import pytest
import torch

from gtvision.sim.track import TrackSpec, build_track

STRAIGHT_M = 2000.0
"""Length of each straight of the test ovals (m)."""


@pytest.fixture(scope="module")
def one_thread():
    """The simulator's tensors and the test networks are tiny: on a shared 2-core machine extra
    intra-op threads only spin and wait (a 20-car step is ~5x slower with 2 threads than with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
