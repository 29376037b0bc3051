"""Ego-camera renderer and top-down maps: what the agent and a viewer of a video rely on."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from conftest import pose_at
from gtvision.sim.render import CameraConfig, render_ego
from gtvision.sim.track import Surface, TrackSpec, build_track

CAR_L, CAR_W, CAR_H = 4.3, 1.9, 1.3
NO_FOG = dict(fog_m=1e9)  # pure material colours, so a test can recognise them


def _oval_spec(**kw) -> TrackSpec:
    base = dict(name="oval", display_name="Oval", real_length_m=600 + 2 * math.pi * 100,
                segments=(("S", 300.0), ("L", 100.0, 180.0), ("S", 300.0), ("L", 100.0, 180.0)),
                width_m=12.0, runoff_m=(0.0, 0.0), scenery="skyline", wall_height_m=1.2)
    base.update(kw)
    return TrackSpec(**base)


@pytest.fixture(scope="module")
def walled():
    """An oval with walls at both track edges (like Tokyo)."""
    return build_track(_oval_spec())


def _country_spec(elevation) -> TrackSpec:
    return _oval_spec(name="country", real_length_m=1200 + 2 * math.pi * 120,
                      segments=(("S", 600.0), ("L", 120.0, 180.0), ("S", 600.0), ("L", 120.0, 180.0)),
                      runoff_m=(8.0, 8.0), runoff_surface=(Surface.GRASS, Surface.GRAVEL),
                      scenery="treeline", wall_height_m=1.0, elevation=elevation)


@pytest.fixture(scope="module")
def flat():
    """Grass run-off on the left, gravel on the right, barriers 8 m beyond the edges, flat."""
    return build_track(_country_spec(((0.0, 0.0),)))


@pytest.fixture(scope="module")
def hilly():
    """The same circuit with a 40 m climb beginning 250 m down the first straight."""
    L = 1200 + 2 * math.pi * 120
    return build_track(_country_spec(((0.0, 0.0), (250 / L, 0.0), (500 / L, 40.0), (0.6, 40.0),
                                      (0.9, 0.0))))


def _render(track, s, lat, cfg, yaw_offset=0.0, colors=None):
    """The view of car 0 of one race whose cars are at arc lengths ``s`` / offsets ``lat`` ((C,) each)."""
    x, y, yaw = pose_at(track, s, lat, yaw_offset)
    x, y, yaw = x[None], y[None], yaw[None]  # one race: (1, C)
    img = render_ego(track, x, y, yaw, torch.tensor([0]), CAR_L, CAR_W, CAR_H, cfg, colors=colors)
    return img[0].numpy().astype(np.int32)


def _grey(img, lo, hi, spread=8):
    """Pixels whose channels are all within [lo, hi] and within ``spread`` of one another."""
    return (img.max(-1) - img.min(-1) <= spread) & (img.min(-1) >= lo) & (img.max(-1) <= hi)


# ---------------------------------------------------------------------- opponents


@pytest.mark.parametrize("size", [(64, 64), (180, 320)])
def test_car_ahead_is_centred_with_pinhole_width(walled, size):
    cfg = CameraConfig(height_px=size[0], width_px=size[1])
    ego_s, gap = 50.0, 10.0
    with_car = _render(walled, [ego_s, ego_s + gap], [0.0, 0.0], cfg)
    empty = _render(walled, [ego_s, ego_s - 100.0], [0.0, 0.0], cfg)  # opponent out of sight
    H, W = size
    depth = gap - CAR_L / 2 - cfg.eye_forward_m                        # to the car's rear face
    tan_h = math.tan(math.radians(cfg.hfov_deg) / 2)
    tan_v = math.tan(math.radians(cfg.vfov_deg) / 2)
    # a row through the car's body, half a metre above the ground
    row = int(H / 2 + (H / (2 * tan_v)) * (cfg.eye_height_m - 0.55) / depth)
    cols = np.nonzero((with_car[row] != empty[row]).any(-1))[0]
    expected = W * CAR_W / (2 * depth * tan_h)
    assert abs(len(cols) - expected) <= 1.0, (len(cols), expected)
    assert np.all(np.diff(cols) == 1)                                  # one solid body
    assert abs(cols.mean() - (W - 1) / 2) <= 0.5                       # horizontally centred


def test_car_behind_or_beyond_far_is_not_drawn(walled):
    cfg = CameraConfig(far_m=100.0)
    empty = _render(walled, [20.0, 250.0 + 200.0], [0.0, 0.0], cfg)
    behind = _render(walled, [20.0, 10.0], [0.0, 0.0], cfg)
    beyond = _render(walled, [20.0, 20.0 + 120.0], [0.0, 0.0], cfg)
    within = _render(walled, [20.0, 20.0 + 80.0], [0.0, 0.0], cfg)
    assert np.array_equal(behind, empty)
    assert np.array_equal(beyond, empty)
    assert not np.array_equal(within, empty)


def test_nearer_car_occludes_farther_one(walled):
    cfg = CameraConfig()
    s = [50.0, 60.0, 75.0]
    both = _render(walled, s, [0.0, 0.0, 0.0], cfg)
    near_only = _render(walled, [50.0, 60.0, -200.0], [0.0, 0.0, 0.0], cfg)
    far_only = _render(walled, [50.0, -200.0, 75.0], [0.0, 0.0, 0.0], cfg)
    empty = _render(walled, [50.0, -200.0, -250.0], [0.0, 0.0, 0.0], cfg)
    assert not np.array_equal(far_only, empty)      # the far car alone is visible ...
    assert np.array_equal(both, near_only)          # ... and wholly hidden behind the near one


def test_car_has_dark_lower_part_and_window_band(walled):
    cfg = CameraConfig(height_px=128, width_px=128, **NO_FOG)
    colors = torch.tensor([[200, 200, 200], [220, 200, 60]], dtype=torch.uint8)
    img = _render(walled, [50.0, 58.0], [0.0, 0.0], cfg, colors=colors)
    centre = img[:, 64]
    body = (np.abs(centre - np.array([220, 200, 60]) * 0.7).max(-1) < 12)  # rear face, in shade
    rows = np.nonzero(body)[0]
    assert len(rows) >= 4
    bright = centre[rows[0]].sum()
    below = centre[rows.max() + 1]
    inside = centre[rows.min():rows.max()][~body[rows.min():rows.max()]]
    assert below.sum() < 0.6 * bright                          # bumper / wheels are darker
    assert len(inside) >= 2 and (inside.sum(-1) < 0.6 * bright).all()  # a dark rear window band


# ---------------------------------------------------------------------- track surroundings


@pytest.mark.parametrize("circuit", ["oval", "tokyo"])
def test_walls_on_both_sides(walled, circuit):
    if circuit == "tokyo":
        circuits = pytest.importorskip("gtvision.sim.circuits")
        track, s = circuits.load_track("tokyo"), 300.0
    else:
        track, s = walled, 100.0
    img = _render(track, [s], [0.0], CameraConfig(**NO_FOG))
    W = img.shape[1]
    wall = _grey(img, 115, 175)                     # concrete, above its darker lower band
    wall[:, W // 2 - 6:W // 2 + 6] = False
    assert wall[:, : W // 2].sum() >= 20 and wall[:, W // 2:].sum() >= 20


def test_runoff_and_sky_and_ground(flat):
    img = _render(flat, [100.0], [0.0], CameraConfig(**NO_FOG))
    H, W = img.shape[:2]
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    grass = (g > r + 30) & (g > b + 30) & (np.arange(H)[:, None] > H // 2)
    gravel = (r > 150) & (r > b + 30) & (g > b + 20)
    assert grass[:, : W // 2].sum() >= 10 and grass[:, W // 2:].sum() == 0      # grass on the left
    assert gravel[:, W // 2:].sum() >= 10 and gravel[:, : W // 2].sum() == 0    # gravel on the right
    assert (b[0] > r[0] + 40).all()                                             # sky on top
    assert _grey(img[-1], 60, 100).all()                                        # asphalt below


def test_curbs_appear_where_flagged(flat):
    cfg = CameraConfig(**NO_FOG)
    curb = flat.curb_left.numpy()
    entry = int(np.argmax(curb & ~np.roll(curb, 1)))            # where a curb begins (a left turn)
    in_corner = _render(flat, [flat.s_m[entry].item() + 20.0], [0.0], cfg)
    straight = _render(flat, [150.0], [0.0], dataclasses.replace(cfg, far_m=200.0))

    def red(img):
        return ((img[..., 0] > 150) & (img[..., 1] < 90) & (img[..., 2] < 90)).sum()
    assert red(in_corner) >= 10
    assert red(straight) == 0


def test_skyline_is_fixed_in_world_heading(flat):
    cfg = CameraConfig(width_px=65)                  # an odd width has a centre column at yaw
    col = 50
    t_col = (col + 0.5 - 65 / 2) / (65 / (2 * math.tan(math.radians(cfg.hfov_deg) / 2)))
    a = _render(flat, [100.0], [0.0], cfg)
    b = _render(flat, [100.0], [0.0], cfg, yaw_offset=-math.atan(t_col))
    top = slice(0, cfg.height_px // 2 - 2)           # sky and scenery only
    assert not np.array_equal(a[top], b[top])        # the horizon turns with the car ...
    same = (a[top, col] == b[top, 32]).all(-1).mean()
    assert same >= 0.95                              # ... and stays put in the world


def test_climb_ahead_raises_the_ground(flat, hilly):
    cfg = CameraConfig(**NO_FOG)

    def ground_top(img):
        return int(np.argmax(_grey(img[:, 32], 60, 100)))    # first asphalt row in the centre

    on_flat = ground_top(_render(flat, [150.0], [0.0], cfg))
    on_hill = ground_top(_render(hilly, [150.0], [0.0], cfg))
    assert on_flat >= cfg.height_px // 2 - 1
    assert on_hill <= on_flat - 3


# ---------------------------------------------------------------------- API


def test_shapes_dtype_determinism_and_batching(walled):
    B, C = 3, 4
    s = torch.tensor([[10.0, 20.0, 30.0, 45.0], [100.0, 95.0, 120.0, 140.0], [400.0, 410.0, 420.0, 380.0]])
    lat = torch.tensor([[0.0, 2.0, -2.0, 0.0]]).expand(B, C)
    x, y, _ = walled.point_at(s, lat)
    yaw = walled.heading_rad[walled.station_of_s(s)]
    ego = torch.tensor([0, 1, 3])
    for h, w in [(64, 64), (36, 100), (35, 37)]:
        cfg = CameraConfig(height_px=h, width_px=w)
        img = render_ego(walled, x, y, yaw, ego, CAR_L, CAR_W, CAR_H, cfg)
        assert img.dtype == torch.uint8 and img.shape == (B, h, w, 3) and img.device == x.device
        again = render_ego(walled, x, y, yaw, ego, CAR_L, CAR_W, CAR_H, cfg,
                           station=walled.station_of_s(s))
        assert torch.equal(img, again)
        # each race is drawn independently of the others in the batch
        one = render_ego(walled, x[1:2], y[1:2], yaw[1:2], ego[1:2], CAR_L, CAR_W, CAR_H, cfg)
        assert torch.equal(img[1:2], one)


def test_cpu_chunking_does_not_change_the_images(walled, monkeypatch):
    import gtvision.sim.render as render

    s = torch.arange(5.0)[:, None] * 90.0 + torch.tensor([[10.0, 20.0, 35.0]])
    x, y, _ = walled.point_at(s, torch.zeros_like(s))
    yaw = walled.heading_rad[walled.station_of_s(s)]
    ego = torch.tensor([0, 0, 1, 0, 2])
    sizes = torch.tensor([[4.3, 4.6, 4.0]]).expand(5, 3)                # per-race, per-car lengths
    whole = render_ego(walled, x, y, yaw, ego, sizes, CAR_W, CAR_H, station=walled.station_of_s(s))
    monkeypatch.setattr(render, "CPU_CHUNK_SAMPLES", 1)                  # one race per chunk
    chunked = render_ego(walled, x, y, yaw, ego, sizes, CAR_W, CAR_H, station=walled.station_of_s(s))
    assert torch.equal(whole, chunked)


def test_bad_inputs_are_reported(walled):
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="ego"):
        render_ego(walled, x, x, x, torch.tensor([2]), CAR_L, CAR_W, CAR_H)
    with pytest.raises(ValueError, match="near_m"):
        CameraConfig(near_m=500.0)


# ---------------------------------------------------------------------- top-down maps


def test_map_frame_draws_the_cars_where_they_are(flat):
    from gtvision.sim.topdown import render_map_frame

    s = torch.tensor([100.0, 115.0])
    x, y, _ = flat.point_at(s, torch.tensor([0.0, 3.0]))
    yaw = flat.heading_rad[flat.station_of_s(s)]
    magenta = np.array([[255, 0, 255], [0, 255, 255]], dtype=np.uint8)
    near = render_map_frame(flat, x, y, yaw, ego=0, size_px=(200, 300), extent_m=60.0, colors=magenta)
    whole = render_map_frame(flat, x, y, yaw, ego=0, size_px=(200, 300), colors=magenta)
    for frame in (near, whole):
        assert frame.dtype == np.uint8 and frame.shape == (200, 300, 3)
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 4      # not a blank frame
    # ego-centred: the ego car (magenta) is at the centre of the frame
    is_ego = (np.abs(near.astype(int) - [255, 0, 255]).max(-1) < 40)
    rows, cols = np.nonzero(is_ego)
    assert len(rows) >= 10
    assert abs(rows.mean() - 100) < 4 and abs(cols.mean() - 150) < 4
    # the other car, 15 m ahead and 3 m to the left, is where the map's 5 px/m put it
    rows, cols = np.nonzero(np.abs(near.astype(int) - [0, 255, 255]).max(-1) < 40)
    dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
    assert abs(cols.mean() - (150 + 5 * dx)) < 2 and abs(rows.mean() - (100 - 5 * dy)) < 2
    assert (np.abs(whole.astype(int) - [255, 0, 255]).max(-1) < 40).sum() >= 10  # a dot at least


def test_map_drawing_functions(flat):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gtvision.sim.topdown import draw_cars, draw_track, draw_trajectory

    fig, ax = plt.subplots()
    line = draw_track(ax, flat, elevation=True)
    fig.colorbar(line, ax=ax)
    assert line.get_array().shape == (flat.num_stations,)
    cars = draw_cars(ax, [0.0, 10.0], [0.0, 0.0], [0.0, 0.0], 4.4, 1.9, highlight=1)
    assert len(cars.get_paths()) == 2
    path = draw_trajectory(ax, flat.x[:50], flat.y[:50], values=torch.arange(50.0))
    assert len(path.get_segments()) == 49
    x0, x1 = ax.get_xlim()
    assert x0 <= float(flat.x.min()) and x1 >= float(flat.x.max())   # the whole track in view
    plt.close(fig)
