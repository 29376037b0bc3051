"""Tracks: closed 3D centerlines sampled about every metre, with widths, run-off, walls and curbs.

A track is described by a :class:`TrackSpec` (a turtle-graphics list of straights and arcs, a target
length, width and run-off overrides, elevation knots) and built once into a :class:`Track`, whose
per-station tensors are what the simulator and the renderer read.

Frames and units
----------------
World frame: x east, y north, z up, metres. Heading ``heading_rad`` is measured from +x,
counter-clockwise. The left normal of a station is ``(-sin heading, cos heading)``; a lateral offset
``lat_m`` is positive to the left of the centerline. Arc length ``s_m`` starts at the start/finish
line and grows in the racing direction.

Per-station tensors (N stations, spacing ``ds_m`` = length / N, about 1 m):

=====================  ===========  =========================================================
name                   shape/dtype  meaning
=====================  ===========  =========================================================
x, y, z                (N,) f32     centerline position (m)
s_m                    (N,) f32     arc length at the station (m)
tx, ty / nx, ny        (N,) f32     unit tangent / unit left normal
heading_rad            (N,) f32     tangent heading (rad, unwrapped)
curvature              (N,) f32     1/m, positive for a left turn
grade                  (N,) f32     dz/ds
width_left_m/right_m   (N,) f32     centerline to the track-limit line on each side (m)
runoff_left_m/right_m  (N,) f32     track limit to the barrier (m); 0 = wall at the edge
runoff_surface_l/r     (N,) i64     :class:`Surface` of the run-off on each side
curb_left/right        (N,) bool    a curb of ``CURB_WIDTH_M`` lies inside the edge
=====================  ===========  =========================================================
"""
from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field

import numpy as np
import torch

CURB_WIDTH_M = 1.0
"""Width of a curb, measured inward from the track-limit line (curbs are inside the track)."""

INDEX_CELL_M = 4.0
"""Cell size of the world -> station lookup grid."""

INDEX_BAND_M = 12.0
"""Cells farther than this beyond the barriers are 'outside the world' (station -1)."""


def take(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a 1-D per-station table and an integer index of any shape, with
    ``index_select`` (three to four times faster on CPU than advanced indexing). Indices must be in
    ``[0, len(table))``."""
    return table.index_select(0, index.reshape(-1)).view(index.shape)


class Surface(enum.IntEnum):
    """Ground surface codes; ``SURFACE_GRIP`` and ``SURFACE_DRAG_G`` are indexed by them."""

    ASPHALT = 0
    CURB = 1
    GRASS = 2
    GRAVEL = 3
    TARMAC_RUNOFF = 4
    WALL = 5  # beyond the barrier: no ground to drive on


SURFACE_GRIP = (1.0, 0.92, 0.55, 0.45, 0.95, 0.5)
"""Friction multiplier of each :class:`Surface` relative to the tyre's asphalt grip."""

SURFACE_DRAG_G = (0.0, 0.0, 0.06, 0.30, 0.0, 0.3)
"""Extra rolling resistance of each :class:`Surface`, as a deceleration in g."""


@dataclass(frozen=True)
class TrackSpec:
    """Recipe of a circuit facsimile. Fractions are of the lap length, from the start line."""

    name: str
    """Short lower-case id: 'tokyo', 'spa', 'sarthe'."""
    display_name: str
    """What a figure caption calls it."""
    real_length_m: float
    """Published length of the real circuit (m); the built centerline is scaled to it."""
    segments: tuple
    """('S', length_m) straights and ('L'|'R', radius_m, angle_deg) arcs, from the start line."""
    width_m: float
    """Default total track width (m), split evenly about the centerline."""
    width_overrides: tuple = ()
    """(frac_start, frac_end, width_m) ranges."""
    runoff_m: tuple = (0.0, 0.0)
    """Default (left, right) run-off width between track limit and barrier (m)."""
    runoff_surface: tuple = (Surface.GRASS, Surface.GRASS)
    """Default (left, right) run-off surface."""
    runoff_overrides: tuple = ()
    """(frac_start, frac_end, side 'L'|'R'|'B', runoff_m, Surface) ranges."""
    elevation: tuple = ((0.0, 0.0),)
    """(frac, z_m) knots, periodic; linearly interpolated, then smoothed."""
    wall_height_m: float = 1.0
    """Barrier height (m)."""
    scenery: str = "treeline"
    """'skyline' (city buildings) or 'treeline' (forest), drawn by the renderer."""
    curb_min_curvature: float = 1.0 / 300.0
    """Curbs lie on the inside of corners tighter than this (1/m), and outside if twice tighter."""
    curvature_smoothing_m: float = 12.0
    """Gaussian sigma (m) smoothing the arc curvature steps into transition curves."""
    description: str = ""
    """Where the layout comes from (public facts used)."""


@dataclass
class Track:
    """A built track: per-station tensors (see the module docstring) and the lookup grid."""

    name: str
    display_name: str
    real_length_m: float
    length_m: float
    ds_m: float
    x: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor
    s_m: torch.Tensor
    tx: torch.Tensor
    ty: torch.Tensor
    nx: torch.Tensor
    ny: torch.Tensor
    heading_rad: torch.Tensor
    curvature: torch.Tensor
    grade: torch.Tensor
    width_left_m: torch.Tensor
    width_right_m: torch.Tensor
    runoff_left_m: torch.Tensor
    runoff_right_m: torch.Tensor
    runoff_surface_l: torch.Tensor
    runoff_surface_r: torch.Tensor
    curb_left: torch.Tensor
    curb_right: torch.Tensor
    grid_station: torch.Tensor
    """(GH, GW) int64: the nearest station of each lookup cell, -1 outside the world."""
    grid_origin: tuple
    """(x0, y0) world position of the lookup grid's corner cell."""
    wall_height_m: float
    scenery: str
    spec: TrackSpec = field(repr=False)

    @property
    def num_stations(self) -> int:
        return int(self.x.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def wall_left_m(self) -> torch.Tensor:
        """Centerline to the left barrier (m)."""
        return self.width_left_m + self.runoff_left_m

    @property
    def wall_right_m(self) -> torch.Tensor:
        """Centerline to the right barrier (m)."""
        return self.width_right_m + self.runoff_right_m

    def to(self, device) -> "Track":
        """A copy of the track with every tensor on ``device``."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for k, v in moved.items():
            if isinstance(v, torch.Tensor):
                moved[k] = v.to(device)
        return Track(**moved)

    # ------------------------------------------------------------------ lookups
    def wrap_s(self, s_m: torch.Tensor) -> torch.Tensor:
        """Arc length wrapped into [0, length)."""
        return torch.remainder(s_m, self.length_m)

    def station_of_s(self, s_m: torch.Tensor) -> torch.Tensor:
        """Index of the station at or just before arc length ``s_m`` (any real value)."""
        return torch.remainder(torch.floor(s_m / self.ds_m).long(), self.num_stations)

    def point_at(self, s_m: torch.Tensor, lat_m: torch.Tensor | float = 0.0):
        """World (x, y, z) of the point at arc length ``s_m`` and lateral offset ``lat_m``.

        Linear interpolation between stations; shapes broadcast.
        """
        cx, cy, cz, nx, ny = self.interpolate(s_m, self.x, self.y, self.z, self.nx, self.ny)
        return cx + nx * lat_m, cy + ny * lat_m, cz

    def interpolate(self, s_m: torch.Tensor, *fields: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each per-station field (N,) at arc length ``s_m`` (any shape, wrapped onto the lap), by
        linear interpolation between stations."""
        n = self.num_stations
        u = torch.remainder(s_m, self.length_m) / self.ds_m
        i0 = torch.floor(u).long().clamp_(0, n - 1)
        i1 = torch.remainder(i0 + 1, n)
        w = (u - i0).clamp(0.0, 1.0)
        out = []
        for a in fields:
            a0 = take(a, i0)
            out.append(a0 + (take(a, i1) - a0) * w)
        return tuple(out)

    def project(self, x: torch.Tensor, y: torch.Tensor, hint: torch.Tensor, window: int = 6):
        """Project world points onto the centerline, searching ``hint +- window`` stations.

        Args:
            x, y: (...) world positions (m).
            hint: (...) int64 station index near the point (the previous result, usually).
        Returns:
            station (...) int64 nearest station, s_m (...) arc length in [0, length),
            lat_m (...) signed lateral offset (left positive).
        """
        n = self.num_stations
        # candidates from a copy of x, y padded by the window on both sides: no wrap-around of the
        # (..., 2 window + 1) candidate indices, only of the chosen one
        xy_pad = self._padded_xy(window)
        offsets = torch.arange(0, 2 * window + 1, device=x.device)
        idx = (hint.unsqueeze(-1) + offsets).view(-1)
        dx = x.unsqueeze(-1) - xy_pad[0].index_select(0, idx).view(*x.shape, -1)
        dy = y.unsqueeze(-1) - xy_pad[1].index_select(0, idx).view(*x.shape, -1)
        best = (dx * dx + dy * dy).argmin(dim=-1)
        station = torch.remainder(hint + best - window, n)
        ex = x - take(self.x, station)
        ey = y - take(self.y, station)
        along = ex * take(self.tx, station) + ey * take(self.ty, station)
        lat = ex * take(self.nx, station) + ey * take(self.ny, station)
        s = torch.remainder(take(self.s_m, station) + along, self.length_m)
        return station, s, lat

    def _padded_xy(self, pad: int) -> torch.Tensor:
        """(2, N + 2 pad) station x and y, the lap's last ``pad`` stations before and first after."""
        cache = self.__dict__.setdefault("_pad_cache", {})
        if pad not in cache:
            if not 0 <= pad <= self.num_stations:
                raise ValueError(f"project: window {pad} must be in [0, {self.num_stations}] stations")
            xy = torch.stack([self.x, self.y])
            cache[pad] = torch.cat([xy[:, xy.shape[1] - pad:], xy, xy[:, :pad]], dim=1).contiguous()
        return cache[pad]

    def grid_lookup(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Nearest station of each world point from the lookup grid; -1 outside the world."""
        gh, gw = self.grid_station.shape
        ix = torch.floor((x - self.grid_origin[0]) / INDEX_CELL_M).long()
        iy = torch.floor((y - self.grid_origin[1]) / INDEX_CELL_M).long()
        inside = (ix >= 0) & (ix < gw) & (iy >= 0) & (iy < gh)
        flat = (iy.clamp(0, gh - 1) * gw + ix.clamp(0, gw - 1))
        station = self.grid_station.reshape(-1)[flat]
        return torch.where(inside, station, torch.full_like(station, -1))

    def locate(self, x: torch.Tensor, y: torch.Tensor, window: int = 4):
        """Project world points with no hint (grid lookup, then a local search).

        Returns station, s_m, lat_m as :meth:`project`, and ``inside`` (bool: within the world band).
        """
        hint = self.grid_lookup(x, y)
        inside = hint >= 0
        station, s, lat = self.project(x, y, hint.clamp(min=0), window=window)
        return station, s, lat, inside


# ---------------------------------------------------------------------- building


def _periodic_gaussian(values: np.ndarray, sigma_samples: float) -> np.ndarray:
    """Circular convolution of a periodic signal with a Gaussian (sigma in samples)."""
    if sigma_samples <= 0:
        return values.copy()
    n = values.shape[0]
    freqs = np.fft.rfftfreq(n)
    kernel = np.exp(-2.0 * (math.pi * freqs * sigma_samples) ** 2)
    return np.fft.irfft(np.fft.rfft(values) * kernel, n)


def _piecewise(n: int, default, ranges, dtype=np.float64) -> np.ndarray:
    """A per-station array: ``default`` with (frac_start, frac_end, value) ranges painted over.

    A range with frac_start > frac_end wraps over the start line.
    """
    out = np.full(n, default, dtype=dtype)
    frac = (np.arange(n) + 0.5) / n
    for f0, f1, value in ranges:
        mask = (frac >= f0) & (frac < f1) if f0 <= f1 else (frac >= f0) | (frac < f1)
        out[mask] = value
    return out


def _close_segments(segments: tuple) -> list:
    """Adjust arc angles to a net +-360 degrees and straight lengths so the loop closes exactly.

    Straights absorb the position error by the minimum-norm change weighted by their length.
    """
    arcs = [s for s in segments if s[0] in "LR"]
    turn = sum(a[2] if a[0] == "L" else -a[2] for a in arcs)
    if abs(abs(turn) - 360.0) > 45.0:
        raise ValueError(f"segments turn {turn:.1f} degrees in all; a closed circuit turns +-360")
    scale = 360.0 / abs(turn)
    segs = [(s[0], s[1], s[2] * scale) if s[0] in "LR" else s for s in segments]

    # walk the segments exactly
    heading, px, py = 0.0, 0.0, 0.0
    straight_dirs, straight_idx = [], []
    for k, seg in enumerate(segs):
        if seg[0] == "S":
            straight_dirs.append((math.cos(heading), math.sin(heading)))
            straight_idx.append(k)
            px += seg[1] * math.cos(heading)
            py += seg[1] * math.sin(heading)
        else:
            sign = 1.0 if seg[0] == "L" else -1.0
            r, dth = seg[1], math.radians(seg[2]) * sign
            # centre of the arc is to the left (L) or right (R) of the heading
            cx = px - sign * r * math.sin(heading)
            cy = py + sign * r * math.cos(heading)
            heading += dth
            px = cx + sign * r * math.sin(heading)
            py = cy - sign * r * math.cos(heading)
    err = np.array([px, py])
    if not straight_idx:
        if np.linalg.norm(err) > 1e-6 * (1.0 + sum(s[1] for s in segs)):
            raise ValueError(f"cannot close a circuit of arcs only (error {err.round(1).tolist()} m)")
        return segs
    d = np.array(straight_dirs).T  # (2, S)
    lengths = np.array([segs[k][1] for k in straight_idx], dtype=np.float64)
    w = np.diag(lengths)
    gram = d @ w @ d.T
    delta = w @ d.T @ np.linalg.pinv(gram) @ (-err)
    if np.linalg.norm(d @ delta + err) > 1e-6 * (1.0 + np.linalg.norm(err)):
        raise ValueError(f"cannot close the circuit (error {err.round(1).tolist()} m): "
                         "its straights are all parallel to one another")
    new_lengths = lengths + delta
    if (new_lengths < 1.0).any():
        bad = [straight_idx[i] for i in np.nonzero(new_lengths < 1.0)[0]]
        raise ValueError(f"closing the circuit would make straights {bad} shorter than 1 m; "
                         f"fix the segment list (closure error {err.round(1).tolist()} m)")
    for i, k in enumerate(straight_idx):
        segs[k] = ("S", float(new_lengths[i]))
    return segs


def build_track(spec: TrackSpec, ds_target_m: float = 1.0) -> Track:
    """Build a :class:`Track` from its spec (about a second for the longest circuit)."""
    segs = _close_segments(spec.segments)
    raw_len = sum(s[1] if s[0] == "S" else s[1] * math.radians(s[2]) for s in segs)
    k = spec.real_length_m / raw_len
    segs = [("S", s[1] * k) if s[0] == "S" else (s[0], s[1] * k, s[2]) for s in segs]
    length = spec.real_length_m
    n = int(round(length / ds_target_m))
    ds = length / n

    # curvature profile from the segment list, smoothed into transition curves
    s_mid = (np.arange(n) + 0.5) * ds
    kappa = np.zeros(n)
    start = 0.0
    for seg in segs:
        seg_len = seg[1] if seg[0] == "S" else seg[1] * math.radians(seg[2])
        if seg[0] != "S":
            mask = (s_mid >= start) & (s_mid < start + seg_len)
            kappa[mask] = (1.0 if seg[0] == "L" else -1.0) / seg[1]
        start += seg_len
    kappa = _periodic_gaussian(kappa, spec.curvature_smoothing_m / ds)
    total_turn = kappa.sum() * ds
    target_turn = math.copysign(2.0 * math.pi, total_turn)
    kappa += (target_turn - total_turn) * np.abs(kappa) / (np.abs(kappa).sum() * ds)

    heading = np.concatenate([[0.0], np.cumsum(kappa * ds)])[:-1] + 0.5 * kappa * ds
    xs = np.concatenate([[0.0], np.cumsum(np.cos(heading) * ds)])
    ys = np.concatenate([[0.0], np.cumsum(np.sin(heading) * ds)])
    frac = np.arange(n + 1) / n
    xs -= xs[-1] * frac  # spread the small residual closure error along the lap
    ys -= ys[-1] * frac
    xs, ys = xs[:-1], ys[:-1]

    # tangent, heading, curvature from the final points (central differences)
    dx = (np.roll(xs, -1) - np.roll(xs, 1)) / (2 * ds)
    dy = (np.roll(ys, -1) - np.roll(ys, 1)) / (2 * ds)
    norm = np.hypot(dx, dy)
    tx, ty = dx / norm, dy / norm
    head = np.unwrap(np.arctan2(ty, tx))
    dhead = np.angle(np.exp(1j * (np.roll(head, -1) - np.roll(head, 1)))) / (2 * ds)
    curvature = dhead

    # elevation: periodic linear interpolation of the knots, then smoothed
    knots = sorted(spec.elevation)
    kf = np.array([f for f, _ in knots] + [knots[0][0] + 1.0])
    kz = np.array([z for _, z in knots] + [knots[0][1]])
    fr = np.arange(n) / n
    fr_shift = np.where(fr < kf[0], fr + 1.0, fr)
    z = np.interp(fr_shift, kf, kz)
    z = _periodic_gaussian(z, 40.0 / ds)
    grade = (np.roll(z, -1) - np.roll(z, 1)) / (2 * ds)

    # widths and run-off
    width = _periodic_gaussian(_piecewise(n, spec.width_m, spec.width_overrides), 15.0 / ds)
    half = width / 2.0
    left_ranges = [(a, b, r) for a, b, side, r, _ in spec.runoff_overrides if side in "LB"]
    right_ranges = [(a, b, r) for a, b, side, r, _ in spec.runoff_overrides if side in "RB"]
    run_l = _periodic_gaussian(_piecewise(n, spec.runoff_m[0], left_ranges), 6.0 / ds)
    run_r = _periodic_gaussian(_piecewise(n, spec.runoff_m[1], right_ranges), 6.0 / ds)
    run_l, run_r = np.maximum(run_l, 0.0), np.maximum(run_r, 0.0)
    surf_l = _piecewise(n, int(spec.runoff_surface[0]),
                        [(a, b, int(sf)) for a, b, side, _, sf in spec.runoff_overrides if side in "LB"],
                        dtype=np.int64)
    surf_r = _piecewise(n, int(spec.runoff_surface[1]),
                        [(a, b, int(sf)) for a, b, side, _, sf in spec.runoff_overrides if side in "RB"],
                        dtype=np.int64)

    # the inside barrier of a corner must stay well inside the corner's radius
    radius = 1.0 / np.maximum(np.abs(curvature), 1e-6)
    if (half > 0.8 * radius).any():
        i = int(np.argmax(half / radius))
        raise ValueError(f"{spec.name}: corner at s={i * ds:.0f} m (radius {radius[i]:.1f} m) is "
                         f"tighter than the half-width {half[i]:.1f} m allows")
    inside_left = curvature > 0
    max_run = np.maximum(0.8 * radius - half, 0.0)
    run_l = np.where(inside_left, np.minimum(run_l, max_run), run_l)
    run_r = np.where(~inside_left, np.minimum(run_r, max_run), run_r)

    # curbs: inside of every corner tighter than the threshold, outside of the tight ones
    sharp = _periodic_gaussian(np.abs(curvature), 5.0 / ds)
    corner = sharp > spec.curb_min_curvature
    tight = sharp > 2.0 * spec.curb_min_curvature
    curb_l = (corner & inside_left) | (tight & ~inside_left)
    curb_r = (corner & ~inside_left) | (tight & inside_left)

    grid_station, origin = _build_index_grid(xs, ys, half + run_l, half + run_r)

    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return Track(
        name=spec.name, display_name=spec.display_name, real_length_m=spec.real_length_m,
        length_m=float(length), ds_m=float(ds),
        x=f32(xs), y=f32(ys), z=f32(z), s_m=f32(np.arange(n) * ds),
        tx=f32(tx), ty=f32(ty), nx=f32(-ty), ny=f32(tx),
        heading_rad=f32(head), curvature=f32(curvature), grade=f32(grade),
        width_left_m=f32(half), width_right_m=f32(half),
        runoff_left_m=f32(run_l), runoff_right_m=f32(run_r),
        runoff_surface_l=torch.as_tensor(surf_l), runoff_surface_r=torch.as_tensor(surf_r),
        curb_left=torch.as_tensor(curb_l), curb_right=torch.as_tensor(curb_r),
        grid_station=torch.as_tensor(grid_station), grid_origin=origin,
        wall_height_m=float(spec.wall_height_m), scenery=spec.scenery, spec=spec,
    )


def _build_index_grid(xs, ys, wall_l, wall_r):
    """Nearest-station grid over the band within the barriers plus ``INDEX_BAND_M``.

    Every station splats its index onto the cells within its reach; each cell keeps the nearest.
    """
    reach = float(max(wall_l.max(), wall_r.max()) + INDEX_BAND_M)
    x0 = xs.min() - reach - INDEX_CELL_M
    y0 = ys.min() - reach - INDEX_CELL_M
    gw = int(math.ceil((xs.max() + reach + INDEX_CELL_M - x0) / INDEX_CELL_M)) + 1
    gh = int(math.ceil((ys.max() + reach + INDEX_CELL_M - y0) / INDEX_CELL_M)) + 1
    r_cells = int(math.ceil(reach / INDEX_CELL_M)) + 1
    off = np.arange(-r_cells, r_cells + 1)
    ox, oy = np.meshgrid(off, off)
    ox, oy = ox.ravel(), oy.ravel()
    n = xs.shape[0]
    best_d2 = np.full(gh * gw, np.inf)
    best_station = np.full(gh * gw, -1, dtype=np.int64)
    # cells whose centre lies within the station's own lateral reach (barrier + band) on its side
    station_reach_l = wall_l + INDEX_BAND_M
    station_reach_r = wall_r + INDEX_BAND_M
    chunk = max(1, 400_000 // ox.size)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        cx = np.floor((xs[a:b] - x0) / INDEX_CELL_M).astype(np.int64)
        cy = np.floor((ys[a:b] - y0) / INDEX_CELL_M).astype(np.int64)
        gx = cx[:, None] + ox[None, :]
        gy = cy[:, None] + oy[None, :]
        px = x0 + (gx + 0.5) * INDEX_CELL_M
        py = y0 + (gy + 0.5) * INDEX_CELL_M
        ddx = px - xs[a:b, None]
        ddy = py - ys[a:b, None]
        d2 = ddx * ddx + ddy * ddy
        # keep cells within the reach of this station (its lateral band, plus a cell of slack)
        lim = np.maximum(station_reach_l[a:b], station_reach_r[a:b])[:, None] + INDEX_CELL_M
        ok = d2 <= lim * lim
        flat = (gy * gw + gx)[ok]
        dd = d2[ok]
        st = np.broadcast_to(np.arange(a, b)[:, None], d2.shape)[ok]
        order = np.lexsort((dd, flat))
        flat, dd, st = flat[order], dd[order], st[order]
        first = np.ones(flat.shape[0], dtype=bool)
        first[1:] = flat[1:] != flat[:-1]
        flat, dd, st = flat[first], dd[first], st[first]
        better = dd < best_d2[flat]
        best_d2[flat[better]] = dd[better]
        best_station[flat[better]] = st[better]
    return best_station.reshape(gh, gw), (float(x0), float(y0))
