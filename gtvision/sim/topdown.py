"""Top-down maps of a track, cars and trajectories (matplotlib), for figures and race videos.

``draw_*`` functions add artists to a matplotlib ``Axes`` (world frame of ``gtvision.sim.track``,
metres, equal aspect). :func:`render_map_frame` draws a whole video frame into a uint8 array, reusing
one Agg figure per (track, size) so that a few hundred frames take seconds, not minutes.

Colours match the ego camera (``gtvision.sim.render``): asphalt grey, grass green, gravel beige,
tarmac run-off light grey, red curbs, concrete barriers.
"""
from __future__ import annotations

import weakref

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

from .render import DEFAULT_CAR_COLORS
from .track import CURB_WIDTH_M, Surface, Track

MAP_BACKGROUND = (0.93, 0.93, 0.90)
ASPHALT = (0.36, 0.36, 0.38)
RUNOFF_COLORS = {
    Surface.ASPHALT: ASPHALT, Surface.CURB: (0.80, 0.14, 0.14), Surface.GRASS: (0.36, 0.60, 0.27),
    Surface.GRAVEL: (0.80, 0.74, 0.58), Surface.TARMAC_RUNOFF: (0.55, 0.56, 0.58),
    Surface.WALL: (0.45, 0.45, 0.45),
}
BARRIER = (0.25, 0.25, 0.25)
CURB_RED = (0.85, 0.12, 0.12)
EDGE_LINE = (0.97, 0.97, 0.97)
MIN_CAR_PX = 7.0
"""In a map frame, a car drawn smaller than this (pixels long) is drawn as a dot of this size."""


def _np(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().double().numpy()
    return np.asarray(v, dtype=np.float64)


def _offset(track: Track, lat) -> np.ndarray:
    """(N, 2) points at lateral offset ``lat`` (scalar or (N,)) from every station."""
    x, y, nx, ny = _np(track.x), _np(track.y), _np(track.nx), _np(track.ny)
    lat = np.broadcast_to(_np(lat), x.shape)
    return np.stack([x + nx * lat, y + ny * lat], axis=1)


def _strips(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """(N, 4, 2) quads between consecutive stations of two closed edge polylines."""
    nxt = np.roll(np.arange(inner.shape[0]), -1)
    return np.stack([inner, inner[nxt], outer[nxt], outer], axis=1)


def _runs(values: np.ndarray):
    """(start, stop) index pairs of the maximal runs of equal values (stop exclusive, may wrap)."""
    n = values.shape[0]
    change = np.nonzero(values != np.roll(values, 1))[0]
    if change.size == 0:
        return [(0, n)]
    ends = np.roll(change, -1)
    return [(int(a), int(b) if b > a else int(b) + n) for a, b in zip(change, ends)]


def draw_track(ax, track: Track, elevation: bool = False, barriers: bool = True, curbs: bool = True,
               start_line: bool = True, cmap: str = "viridis", zorder: float = 1.0):
    """Draw the track surface, run-off, edge lines, barriers, curbs and the start line on ``ax``.

    With ``elevation=True`` the centerline is coloured by its elevation z (m) and the returned
    ``LineCollection`` can be given to ``fig.colorbar``; otherwise the surface ``PolyCollection`` is
    returned.
    """
    half_l, half_r = _np(track.width_left_m), _np(track.width_right_m)
    wall_l, wall_r = _np(track.wall_left_m), _np(track.wall_right_m)
    left_edge, right_edge = _offset(track, half_l), _offset(track, -half_r)
    left_wall, right_wall = _offset(track, wall_l), _offset(track, -wall_r)

    # run-off: one polygon per run of one surface on one side (edge out, barrier back)
    n = left_edge.shape[0]
    patches, colours = [], []
    for surf, edge, wall in ((track.runoff_surface_l.cpu().numpy(), left_edge, left_wall),
                             (track.runoff_surface_r.cpu().numpy(), right_edge, right_wall)):
        for start, stop in _runs(surf):
            idx = np.arange(start, stop + 1) % n          # one station past the run closes the gap
            patches.append(np.concatenate([edge[idx], wall[idx][::-1]]))
            colours.append(RUNOFF_COLORS[Surface(int(surf[start]))])
    ax.add_collection(PolyCollection(patches, facecolors=colours, edgecolors="none", zorder=zorder))
    # asphalt: the ring between the two edges, as one path with two closed loops
    ring = np.concatenate([left_edge, left_edge[:1], right_edge[::-1], right_edge[-1:]])
    surface = PolyCollection([ring], facecolors=[ASPHALT], edgecolors="none", zorder=zorder + 0.1)
    ax.add_collection(surface)

    def closed(p):
        return np.concatenate([p, p[:1]])

    for edge in (left_edge, right_edge):
        ax.plot(*closed(edge).T, color=EDGE_LINE, linewidth=0.6, zorder=zorder + 0.2)
    if barriers:
        for wall in (left_wall, right_wall):
            ax.plot(*closed(wall).T, color=BARRIER, linewidth=1.0, zorder=zorder + 0.3)
    if curbs:
        # curb bands inside the edges where flagged, red and white every 2 m like the ego camera's
        quads, stripe = [], []
        phase = (np.floor(_np(track.s_m) / 2.0).astype(np.int64) % 2 == 0)
        for flag, outer, inner in ((track.curb_left.cpu().numpy(), left_edge,
                                    _offset(track, half_l - CURB_WIDTH_M)),
                                   (track.curb_right.cpu().numpy(), right_edge,
                                    _offset(track, -(half_r - CURB_WIDTH_M)))):
            q = _strips(inner, outer)[flag]
            quads.append(q)
            stripe.append(phase[flag])
        stripe = np.concatenate(stripe)
        face = np.where(stripe[:, None], np.array([CURB_RED]), np.array([EDGE_LINE]))
        ax.add_collection(PolyCollection(np.concatenate(quads), facecolors=face, edgecolors="none",
                                         antialiased=False, zorder=zorder + 0.25))
    if start_line:
        a, b = left_edge[0], right_edge[0]
        ax.plot([a[0], b[0]], [a[1], b[1]], color="white", linewidth=2.5, zorder=zorder + 0.4)
        ax.plot([a[0], b[0]], [a[1], b[1]], color="black", linewidth=1.0, linestyle=(0, (1, 1)),
                zorder=zorder + 0.45)
    ax.set_aspect("equal")
    ax.update_datalim(np.concatenate([left_wall, right_wall]))
    ax.autoscale_view()
    if elevation:
        centre = _offset(track, 0.0)
        segs = _strips(centre, centre)[:, :2]
        line = LineCollection(segs, cmap=cmap, linewidths=2.5, zorder=zorder + 0.5)
        line.set_array(_np(track.z))
        ax.add_collection(line)
        return line
    return surface


def _car_polygons(x, y, yaw, length, width) -> np.ndarray:
    """(C, 4, 2) corners of oriented car rectangles."""
    x, y, yaw = _np(x).reshape(-1), _np(y).reshape(-1), _np(yaw).reshape(-1)
    hl = np.broadcast_to(_np(length), x.shape) / 2
    hw = np.broadcast_to(_np(width), x.shape) / 2
    c, s = np.cos(yaw), np.sin(yaw)
    corners = np.array([(1, 1), (-1, 1), (-1, -1), (1, -1)], dtype=np.float64)   # (4, 2)
    lx = corners[None, :, 0] * hl[:, None]
    ly = corners[None, :, 1] * hw[:, None]
    return np.stack([x[:, None] + c[:, None] * lx - s[:, None] * ly,
                     y[:, None] + s[:, None] * lx + c[:, None] * ly], axis=-1)


def _car_colours(n: int, colors) -> np.ndarray:
    if colors is None:
        pal = np.array(DEFAULT_CAR_COLORS, dtype=np.float64) / 255.0
        return pal[np.arange(n) % len(pal)]
    c = colors.cpu().numpy() if isinstance(colors, torch.Tensor) else np.asarray(colors)
    c = c.reshape(n, 3)
    return c / 255.0 if np.issubdtype(c.dtype, np.integer) else c.astype(np.float64)


def draw_cars(ax, x, y, yaw, length, width, colors=None, highlight=None, zorder: float = 5.0):
    """Draw cars as oriented rectangles.

    ==========  =====================  ========================================================
    x, y, yaw   (C,) m, m, rad         car positions and headings (world frame)
    length      float or (C,) m        car length; ``width`` likewise
    colors      (C, 3) uint8 or 0..1   body colours (default: the renderer's palette)
    highlight   int or (C,) bool       cars outlined thick in yellow (e.g. the agent)
    ==========  =====================  ========================================================
    Returns the ``PolyCollection``.
    """
    polys = _car_polygons(x, y, yaw, length, width)
    n = polys.shape[0]
    face = _car_colours(n, colors)
    mark = np.zeros(n, dtype=bool)
    if highlight is not None:
        h = highlight.cpu().numpy() if isinstance(highlight, torch.Tensor) else np.asarray(highlight)
        if h.dtype == bool:
            mark |= h.reshape(n)
        else:
            mark[h.astype(np.int64).reshape(-1)] = True
    edge = np.where(mark[:, None], np.array([[1.0, 0.85, 0.0]]), np.array([[0.1, 0.1, 0.1]]))
    widths = np.where(mark, 2.0, 0.5)
    coll = PolyCollection(polys, facecolors=face, edgecolors=edge, linewidths=widths, zorder=zorder)
    ax.add_collection(coll)
    return coll


def draw_trajectory(ax, xs, ys, color="tab:blue", values=None, cmap: str = "plasma",
                    linewidth: float = 1.5, alpha: float = 1.0, label=None, zorder: float = 4.0):
    """Draw a path (T,) of world points; with ``values`` (T,), colour it by them (e.g. speed).

    Returns the ``Line2D``, or the ``LineCollection`` (colorbar-friendly) when coloured by values.
    """
    pts = np.stack([_np(xs).reshape(-1), _np(ys).reshape(-1)], axis=1)
    if values is None:
        (line,) = ax.plot(pts[:, 0], pts[:, 1], color=color, linewidth=linewidth, alpha=alpha,
                          label=label, zorder=zorder)
        return line
    segs = np.stack([pts[:-1], pts[1:]], axis=1)
    coll = LineCollection(segs, cmap=cmap, linewidths=linewidth, alpha=alpha, label=label,
                          zorder=zorder)
    coll.set_array(_np(values).reshape(-1)[:-1])
    ax.add_collection(coll)
    return coll


# ---------------------------------------------------------------------- video frames

_FRAMES: dict = {}


def _frame_figure(track: Track, size_px):
    """A cached Agg figure with the track drawn, one per (track, size)."""
    key = (id(track), tuple(size_px))
    hit = _FRAMES.get(key)
    if hit is not None and hit[0]() is track:
        return hit[1]
    h, w = size_px
    dpi = 100
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi, facecolor=MAP_BACKGROUND)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_facecolor(MAP_BACKGROUND)
    ax.set_axis_off()
    draw_track(ax, track)
    wl, wr = _offset(track, _np(track.wall_left_m)), _offset(track, -_np(track.wall_right_m))
    pts = np.concatenate([wl, wr])
    lo, hi = pts.min(0), pts.max(0)
    centre, span = (lo + hi) / 2, (hi - lo) * 1.04 + 20.0
    # whole-track limits with the frame's aspect
    aspect = w / h
    span = np.array([max(span[0], span[1] * aspect), max(span[1], span[0] / aspect)])
    whole = (centre - span / 2, centre + span / 2)
    for k in [k for k, v in _FRAMES.items() if v[0]() is None]:
        del _FRAMES[k]
    state = {"fig": fig, "ax": ax, "whole": whole, "dynamic": []}
    _FRAMES[key] = (weakref.ref(track), state)
    return state


def render_map_frame(track: Track, x, y, yaw, ego=None, size_px=(360, 360), extent_m=None,
                     length_m=4.4, width_m=1.9, colors=None, trails=None) -> np.ndarray:
    """One top-down video frame as an RGB array.

    ==========  ====================  ==========================================================
    x, y, yaw   (C,) m, m, rad        the cars of one race
    ego         int or None           car outlined in yellow; the view centres on it if extent_m
    size_px     (H, W)                frame size in pixels
    extent_m    float or None         width of an ego-centred, north-up view (m); None = whole track
    trails      list of (xs, ys)      optional paths drawn under the cars (e.g. the last seconds)
    returns     (H, W, 3) uint8
    ==========  ====================  ==========================================================
    """
    state = _frame_figure(track, size_px)
    fig, ax = state["fig"], state["ax"]
    for artist in state["dynamic"]:
        artist.remove()
    state["dynamic"] = []
    h, w = size_px
    xs, ys = _np(x).reshape(-1), _np(y).reshape(-1)
    if extent_m is not None and ego is not None:
        cx, cy = xs[int(ego)], ys[int(ego)]
        half_w, half_h = extent_m / 2, extent_m / 2 * h / w
        ax.set_xlim(cx - half_w, cx + half_w)
        ax.set_ylim(cy - half_h, cy + half_h)
    else:
        (x0, y0), (x1, y1) = state["whole"]
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    px_per_m = w / (ax.get_xlim()[1] - ax.get_xlim()[0])
    if trails:
        for i, (tx, ty) in enumerate(trails):
            colour = _car_colours(len(trails), colors)[i]
            state["dynamic"].append(draw_trajectory(ax, tx, ty, color=colour, linewidth=1.0,
                                                    alpha=0.7))
    state["dynamic"].append(draw_cars(ax, xs, ys, yaw, length_m, width_m, colors=colors,
                                      highlight=ego))
    if float(np.max(np.broadcast_to(_np(length_m), xs.shape))) * px_per_m < MIN_CAR_PX:
        # too small to see as rectangles: dots of a fixed pixel size on top
        face = _car_colours(xs.shape[0], colors)
        edge = np.array([[0.1, 0.1, 0.1]] * xs.shape[0])
        if ego is not None:
            edge[int(ego)] = (1.0, 0.85, 0.0)
        state["dynamic"].append(ax.scatter(xs, ys, s=MIN_CAR_PX ** 2, c=face, edgecolors=edge,
                                           linewidths=1.0, zorder=6))
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return rgba[..., :3].copy()


def close_all() -> None:
    """Release the cached video-frame figures."""
    _FRAMES.clear()
