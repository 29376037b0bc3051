"""The three circuit facsimiles: length, closure, no self-intersection, edges, elevation, names."""
import math

import pytest
import torch

from gtvision.sim.circuits import TRACK_NAMES, TRACK_SPECS, load_track
from gtvision.sim.track import Surface

REAL_LENGTH_M = {"tokyo": 4400.0, "spa": 7004.0, "sarthe": 13626.0}


@pytest.fixture(scope="module", params=TRACK_NAMES)
def track(request):
    return load_track(request.param)


def _wrapped(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2.0 * math.pi) - math.pi


def test_names_and_specs():
    assert TRACK_NAMES == ("tokyo", "spa", "sarthe")
    assert set(TRACK_SPECS) == set(TRACK_NAMES)
    for name, spec in TRACK_SPECS.items():
        assert spec.name == name
        assert spec.real_length_m == REAL_LENGTH_M[name]
        assert len(spec.description) > 100


def test_length_and_spacing(track):
    real = REAL_LENGTH_M[track.name]
    assert abs(track.length_m - real) / real < 0.03
    assert abs(track.ds_m - 1.0) < 0.05
    assert track.num_stations == pytest.approx(track.length_m / track.ds_m, abs=1)
    # the sampled polyline itself is as long as the lap, with even spacing
    step = torch.hypot(torch.diff(track.x, append=track.x[:1]),
                       torch.diff(track.y, append=track.y[:1]))
    assert abs(step.sum().item() - real) / real < 0.03
    assert step.min().item() > 0.9 * track.ds_m and step.max().item() < 1.1 * track.ds_m
    assert torch.allclose(track.s_m[1:] - track.s_m[:-1], torch.tensor(track.ds_m), atol=1e-2)


def test_loop_closes(track):
    gap = math.hypot(track.x[0] - track.x[-1], track.y[0] - track.y[-1])
    assert 0.9 * track.ds_m < gap < 1.1 * track.ds_m
    assert abs(track.z[0] - track.z[-1]) < 0.1
    # heading is continuous everywhere, over the start line too
    head = track.heading_rad.double()
    steps = _wrapped(torch.diff(head, append=head[:1]))
    max_turn = track.curvature.abs().max().item() * track.ds_m
    assert steps.abs().max().item() < 1.5 * max_turn + 1e-3


def test_clockwise(track):
    head = track.heading_rad.double()
    net = _wrapped(torch.diff(head, append=head[:1])).sum().item()
    assert net == pytest.approx(-2.0 * math.pi, abs=1e-3)
    total_turn = track.curvature.double().sum().item() * track.ds_m
    assert total_turn == pytest.approx(-2.0 * math.pi, abs=0.05)


def test_no_self_intersection(track):
    """Points anywhere between the barriers locate back to their own station, never another part."""
    stride = 4
    idx = torch.arange(0, track.num_stations, stride)
    frac = torch.linspace(-0.98, 0.98, 9)
    # lateral offset: fractions of the right barrier distance (negative) and of the left one
    lat = torch.where(frac[None, :] < 0, frac[None, :] * track.wall_right_m[idx, None],
                      frac[None, :] * track.wall_left_m[idx, None])
    x = track.x[idx, None] + track.nx[idx, None] * lat
    y = track.y[idx, None] + track.ny[idx, None] * lat
    station, s, lat_back, inside = track.locate(x, y)
    assert inside.all()
    n = track.num_stations
    off = torch.remainder(station - idx[:, None] + n // 2, n) - n // 2
    worst = off.abs().max().item()
    assert worst <= 3, f"{track.name}: a point located {worst} stations away from its own"
    assert torch.allclose(lat_back, lat, atol=0.5)


def test_centerline_keeps_its_distance(track):
    """Different parts of the lap are farther apart than both barriers plus the lookup band."""
    stride = 8
    idx = torch.arange(0, track.num_stations, stride)
    x, y = track.x[idx].double(), track.y[idx].double()
    reach = torch.maximum(track.wall_left_m, track.wall_right_m)[idx].double()
    d = torch.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    n = track.num_stations
    ds_along = torch.remainder(idx[:, None] - idx[None, :] + n // 2, n) - n // 2
    span = 3.0 * (reach[:, None] + reach[None, :]) + 100.0
    far_along = ds_along.abs().double() * track.ds_m > span
    need = reach[:, None] + reach[None, :] + 12.0
    bad = far_along & (d < need)
    assert not bad.any(), f"{track.name}: parts {idx[bad.nonzero()[0]].tolist()} are too close"


def test_width_ranges():
    lo_hi = {"tokyo": (9.0, 12.0), "spa": (12.0, 16.0), "sarthe": (10.0, 16.0)}
    for name in TRACK_NAMES:
        t = load_track(name)
        width = t.width_left_m + t.width_right_m
        lo, hi = lo_hi[name]
        assert width.min().item() >= lo - 0.05 and width.max().item() <= hi + 0.05, name


def test_tokyo_has_walls_at_both_edges():
    t = load_track("tokyo")
    assert (t.runoff_left_m == 0).all() and (t.runoff_right_m == 0).all()
    assert t.scenery == "skyline"


@pytest.mark.parametrize("name", ["spa", "sarthe"])
def test_runoff_and_gravel(name):
    t = load_track(name)
    assert (t.runoff_left_m > 0).float().mean().item() > 0.8
    assert (t.runoff_right_m > 0).float().mean().item() > 0.8
    gravel_l = (t.runoff_surface_l == Surface.GRAVEL) & (t.runoff_left_m > 1.0)
    gravel_r = (t.runoff_surface_r == Surface.GRAVEL) & (t.runoff_right_m > 1.0)
    assert (gravel_l | gravel_r).any()
    assert t.scenery == "treeline"


def test_curbs_at_apexes(track):
    assert track.curb_left.any() and track.curb_right.any()
    # never a curb on a straight (at least 30 m from any bend)
    bend = (track.curvature.abs() > 1e-4).float()[None, None]
    near_bend = torch.nn.functional.max_pool1d(
        torch.cat([bend[..., -30:], bend, bend[..., :30]], dim=-1), 61, stride=1)[0, 0] > 0
    assert not (track.curb_left | track.curb_right)[~near_bend].any()


def test_spa_elevation_range():
    z = load_track("spa").z
    assert 80.0 <= (z.max() - z.min()).item() <= 120.0


def _longest_run(mask: torch.Tensor) -> int:
    """Longest run of True in a circular boolean sequence."""
    if mask.all():
        return int(mask.numel())
    m = torch.cat([mask, mask]).tolist()
    best = cur = 0
    for v in m:
        cur = cur + 1 if v else 0
        best = max(best, cur)
    return min(best, mask.numel())


def test_sarthe_has_the_mulsanne_straight():
    t = load_track("sarthe")
    straight = t.curvature.abs() < 1.0 / 2000.0
    assert _longest_run(straight) * t.ds_m > 1500.0


def test_unknown_name_raises():
    with pytest.raises(ValueError) as err:
        load_track("monza")
    msg = str(err.value)
    assert "monza" in msg
    for name in TRACK_NAMES:
        assert name in msg


def test_case_insensitive_and_cached():
    assert load_track("SPA") is load_track("spa")
    assert load_track("Tokyo").name == "tokyo"


def test_to_device_keeps_the_track():
    t = load_track("tokyo", device="cpu")
    assert t.device.type == "cpu"
    if torch.cuda.is_available():
        g = load_track("tokyo", device="cuda")
        assert g.x.is_cuda and g.grid_station.is_cuda
