"""The paper's figures from evaluation tables (``gtvision.evaluation``), as PNG and PDF.

Each function takes tables with the columns of :func:`gtvision.evaluation.evaluate` (``margin_m``,
``car_collision_time_s``, ``place``, ...) with a ``driver`` column naming who drove (and, for Figure 6,
the ``variant`` column naming the ablation), and writes
``<out>/<name>.png`` and ``.pdf``; it returns the matplotlib figure.

==========  =============================================================================================
figure      what (paper)
==========  =============================================================================================
Figure 1    winning-margin histograms of the agent and its baselines on one scenario (Fig. 1, bottom)
Figure 4    per scenario, the races' collision time against winning margin, with the contour of each
            driver's bivariate KDE that holds 50% of its races (Fig. 4)
Figure 6    final places of the agent and its ablations on one scenario, box plots in the paper's three
            panels: asymmetric architecture, recurrent module, regularization (Fig. 6)
==========  =============================================================================================

Figure 5 (``figure_5``): a recorded race segment, three rows: the top-down trajectories of the agent
(red) and one opponent (black) at 0.5 s intervals; the Integrated-Gradients maps of the agent's frames
(``gtvision.attribution``) over the frames, top-90% pixels; each snapshot's frame shares through time.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

REQUIRED = {"figure_1": ("driver", "margin_m"), "figure_4": ("driver", "scenario", "margin_m", "car_collision_time_s"),
            "figure_6": ("variant", "scenario", "place")}


def _check(table: pd.DataFrame, name: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED[name] if c not in table.columns]
    if missing:
        raise ValueError(f"{name}: the table lacks columns {missing}; it needs {list(REQUIRED[name])}")
    if table.empty:
        raise ValueError(f"{name}: the table has no rows")
    return table.reset_index(drop=True)  # seaborn needs a unique index


def _scenarios(table: pd.DataFrame) -> list[str]:
    """The table's scenarios in the paper's order (Tokyo, Spa, Sarthe), then any others."""
    from .scenarios import SCENARIO_NAMES
    present = list(dict.fromkeys(table["scenario"]))
    return [s for s in SCENARIO_NAMES if s in present] + [s for s in present if s not in SCENARIO_NAMES]


def _save(fig, out: str | os.PathLike, name: str) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / f"{name}.png", out / f"{name}.pdf"
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    return paths


def _finished_races(table: pd.DataFrame, by: tuple[str, ...] = ("driver",)) -> pd.DataFrame:
    """The races the agent finished, their ``driver`` relabelled with how many of its races (per ``by`` group)
    it did not finish ("biai (2 of 500 not finished)"); every race when the table has no ``finished`` column.

    A race not finished (the stuck rule or the time cap ended it) is scored laps behind the leader, tens of
    times further left than any finished race: drawn, it would squeeze the finished races into a sliver."""
    finished = table["finished"].astype(bool) if "finished" in table else pd.Series(True, index=table.index)
    keys = [table[k] for k in by]
    missing = (~finished).groupby(keys).transform("sum")
    races = finished.groupby(keys).transform("size")
    label = table["driver"].astype(str).where(missing == 0, table["driver"].astype(str) + " ("
                                              + missing.astype(str) + " of " + races.astype(str) + " not finished)")
    return table.assign(driver=label)[finished]


def figure_1(table: pd.DataFrame, out: str | os.PathLike, name: str = "figure_1", bins: int = 30):
    """Histogram of the winning margin per driver (one scenario's races); a line at 0 separates wins.

    Races the agent did not finish are left out of the bars and counted in the driver's legend entry
    (:func:`_finished_races`), so that the finished races keep a readable scale.
    """
    table = _check(table, "figure_1")
    drawn = _finished_races(table)
    if drawn.empty:
        raise ValueError("figure_1: no race was finished: no margin to draw")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.histplot(drawn, x="margin_m", hue="driver", bins=bins, element="step", stat="count", common_bins=True, ax=ax)
    ax.axvline(0.0, color="k", lw=1, ls="--")
    ax.set(xlabel="winning margin (m)", ylabel="races",
           title=f"winning margin, {table['scenario'].iloc[0] if 'scenario' in table else ''}".strip(", "))
    fig.tight_layout()
    _save(fig, out, name)
    return fig


def figure_4(table: pd.DataFrame, out: str | os.PathLike, name: str = "figure_4"):
    """Per scenario: each driver's races as points, and the KDE contour holding 50% of them. Races the agent did
    not finish are left out and counted in the legend (:func:`_finished_races`)."""
    table = _check(table, "figure_4")
    scenarios = _scenarios(table)
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.6 * len(scenarios), 3.8), squeeze=False)
    palette = dict(zip(dict.fromkeys(table["driver"]), sns.color_palette(n_colors=table["driver"].nunique())))
    drawn = _finished_races(table, by=("scenario", "driver"))
    colour = dict(zip(drawn["driver"], drawn.index.map(table["driver"]).map(palette)))
    for ax, sc in zip(axes[0], scenarios):
        part = drawn[drawn["scenario"] == sc]
        for driver, rows in part.groupby("driver", sort=False):
            ax.scatter(rows["margin_m"], rows["car_collision_time_s"], s=8, alpha=0.4, color=colour[driver])
            if len(rows) >= 3 and rows["margin_m"].std() > 0 and rows["car_collision_time_s"].std() > 0:
                _half_mass_contour(ax, rows["margin_m"].to_numpy(), rows["car_collision_time_s"].to_numpy(),
                                   colour[driver])
            ax.plot([], [], color=colour[driver], label=driver)
        ax.axvline(0.0, color="k", lw=0.8, ls="--")
        ax.set(xlabel="winning margin (m)", ylabel="car collision time (s)", title=sc)
        ax.set_ylim(bottom=0.0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out, name)
    return fig


def _half_mass_contour(ax, x: np.ndarray, y: np.ndarray, colour):
    """The contour of a Gaussian KDE of (x, y) that holds 50% of the points (highest-density region; the
    level is the median of the density at the points). Each axis is standardised and the bandwidth is
    Scott's rule, as in scipy's ``gaussian_kde``. (seaborn 0.13's own bivariate KDE, used without scipy,
    draws broken contours with matplotlib 3.11.)"""
    pts = np.stack([(x - x.mean()) / x.std(), (y - y.mean()) / y.std()], 1)  # (n, 2)
    bw = len(pts) ** (-1.0 / 6.0)  # Scott's factor in 2 dimensions

    def density(q):  # (m, 2) -> (m,)
        d2 = (((q[:, None, :] - pts[None, :, :]) / bw) ** 2).sum(-1)
        return np.exp(-0.5 * d2).mean(1)

    level = float(np.median(density(pts)))
    g = np.linspace(-3.5, 3.5, 140)
    gx, gy = np.meshgrid(g, g)
    z = density(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(gx.shape)
    ax.contour(gx * x.std() + x.mean(), gy * y.std() + y.mean(), z, levels=[level], colors=[colour])


FIGURE_6_PANELS = {
    "asymmetric architecture": ("asymmetric", "symmetric_critic"),
    "recurrent module": ("asymmetric", "zero_hidden", "hidden_128", "no_rnn"),
    "regularization": ("asymmetric", "no_aug", "no_reset"),
}
"""Paper Fig. 6's panels, left to right, and the variants (``gtvision.agent.config.VARIANTS``) each compares."""

VARIANT_LABELS = {"asymmetric": "agent", "symmetric_critic": "symmetric\ncritic", "zero_hidden": "zero hidden\ninit",
                  "hidden_128": "hidden 128", "no_rnn": "no RNN", "no_aug": "no image\naugmentation",
                  "no_reset": "no network\nreset", "gt_sophy": "GT Sophy\nbaseline", "biai": "BIAI"}

_METRIC_AXES = {"place": {"ylabel": "final place", "ylim": (20.5, 0.5), "yticks": [1, 5, 10, 15, 20]},
                "margin_m": {"ylabel": "winning margin (m)"}}


def figure_6(table: pd.DataFrame, out: str | os.PathLike, name: str = "figure_6", scenario: str = "tokyo",
             metric: str = "place", panels: dict[str, tuple[str, ...]] = FIGURE_6_PANELS):
    """Paper Fig. 6: box plots of ``metric`` (the final place; or ``margin_m``) of the agent and its ablations on
    ``scenario``, one panel per group of :data:`FIGURE_6_PANELS`. Races are matched to panels by their
    ``variant`` column (``gtvision evaluate`` writes it); variants in no panel are left out."""
    table = _check(table, "figure_6")
    if metric not in _METRIC_AXES:
        raise ValueError(f"figure_6: unknown metric {metric!r}; valid: {', '.join(_METRIC_AXES)}")
    part = table[table["scenario"] == scenario]
    if part.empty:
        raise ValueError(f"figure_6: no races on {scenario!r}; the table has {sorted(set(table['scenario']))}")
    wanted = {v for variants in panels.values() for v in variants}
    present = set(part["variant"])
    if not wanted & present:
        raise ValueError(f"figure_6: none of the panels' variants {sorted(wanted)} raced on {scenario!r}; "
                         f"the table has {sorted(present)}")
    widths = [max(2, sum(v in present for v in variants)) for variants in panels.values()]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.3 * sum(widths) + 1.5, 3.8), squeeze=False,
                             gridspec_kw={"width_ratios": widths}, sharey=True)
    for ax, (title, variants) in zip(axes[0], panels.items()):
        order = [v for v in variants if v in present]
        rows = part[part["variant"].isin(order)]
        if order:
            sns.boxplot(rows, x="variant", y=metric, order=order, ax=ax, color="0.85", width=0.6)
            ax.set_xticks(range(len(order)), [VARIANT_LABELS.get(v, v) for v in order], fontsize=8)
        else:
            ax.text(0.5, 0.5, "not raced", ha="center", va="center", transform=ax.transAxes, color="0.4")
            ax.set_xticks([])
        ax.set(xlabel="", ylabel="", title=title, **{k: v for k, v in _METRIC_AXES[metric].items() if k != "ylabel"})
    axes[0, 0].set_ylabel(_METRIC_AXES[metric]["ylabel"])
    fig.suptitle(f"ablations, {scenario}", fontsize=10)
    fig.tight_layout()
    _save(fig, out, name)
    return fig


FIGURE_5_INPUTS = ("track", "agent_xy", "opponent_xy", "frames", "attributions", "masks", "frame_shares")
"""The data :func:`figure_5` draws, as :func:`gtvision.attribution.explain_race` returns it."""


def figure_5(track, agent_xy: np.ndarray, opponent_xy: np.ndarray, frames: np.ndarray, attributions: np.ndarray,
             masks: np.ndarray, frame_shares: np.ndarray, out: str | os.PathLike, name: str = "figure_5",
             window_m: float = 120.0):
    """Paper Fig. 5 for N snapshots (0.5 s apart).

    ``agent_xy``, ``opponent_xy``: (N, 2) world positions at the snapshots (the paths are drawn up to each);
    ``frames`` (N, H, W, 3) the agent's images; ``attributions`` (N, H, W) and ``masks`` (N, H, W) bool from
    ``gtvision.attribution``; ``frame_shares`` (N, K) each snapshot's contributions of its K last frames.
    """
    from .sim.topdown import draw_track, draw_trajectory

    n = len(frames)
    if not (len(agent_xy) == len(opponent_xy) == len(attributions) == len(masks) == len(frame_shares) == n):
        raise ValueError("figure_5: agent_xy, opponent_xy, frames, attributions, masks and frame_shares need "
                         f"one entry per snapshot ({n})")
    fig, axes = plt.subplots(3, n, figsize=(2.6 * n, 7.8), squeeze=False)
    for k in range(n):
        ax = axes[0, k]
        draw_track(ax, track, barriers=True, curbs=True, start_line=False)
        draw_trajectory(ax, agent_xy[:k + 1, 0], agent_xy[:k + 1, 1], color="red", linewidth=2)
        draw_trajectory(ax, opponent_xy[:k + 1, 0], opponent_xy[:k + 1, 1], color="black", linewidth=2)
        ax.plot(*agent_xy[k], "o", color="red")
        ax.plot(*opponent_xy[k], "o", color="black")
        cx, cy = agent_xy[k]
        ax.set(xlim=(cx - window_m / 2, cx + window_m / 2), ylim=(cy - window_m / 2, cy + window_m / 2),
               title=f"t = {0.5 * k:.1f} s", aspect="equal")
        ax.axis("off")
        ax = axes[1, k]
        ax.imshow(frames[k])
        heat = np.where(masks[k], np.abs(attributions[k]), np.nan)
        ax.imshow(heat, cmap="autumn", alpha=0.6)
        ax.axis("off")
        ax = axes[2, k]
        shares = frame_shares[k] / max(float(frame_shares[k].sum()), 1e-12)
        lags = np.arange(len(shares)) - len(shares) + 1
        ax.bar(lags, shares, color="0.4")
        ax.set(xlabel="frame (0 = now)", ylim=(0, 1), xticks=lags[::max(1, len(lags) // 4)])
        if k == 0:
            ax.set_ylabel("share of the action")
    axes[1, 0].set_title("top-90% attribution", fontsize=9, loc="left")
    fig.tight_layout()
    _save(fig, out, name)
    return fig
