"""Every figure function writes its PNG and PDF from a small synthetic result set."""
import numpy as np
import pandas as pd
import pytest

from gtvision import figures


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(0)
    rows = []
    for scenario in ("tokyo", "spa", "sarthe"):
        for driver, shift in (("asymmetric", 80.0), ("biai", -300.0), ("no_rnn", -50.0), ("no_aug", 10.0)):
            margin = rng.normal(shift, 60.0, 40)
            rows.append(pd.DataFrame({"scenario": scenario, "driver": f"runs/{driver}", "variant": driver,
                                      "margin_m": margin,
                                      "car_collision_time_s": rng.gamma(2.0, 0.8, 40),
                                      "place": np.where(margin > 0, 1, rng.integers(2, 21, 40))}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("name", ["figure_1", "figure_4", "figure_6"])
def test_figure_functions_write_png_and_pdf(results, tmp_path, name):
    table = results[results["scenario"] == "tokyo"] if name == "figure_1" else results
    fig = getattr(figures, name)(table, tmp_path)
    for ext in ("png", "pdf"):
        path = tmp_path / f"{name}.{ext}"
        assert path.exists() and path.stat().st_size > 1000, path
    if name != "figure_1":
        assert len(fig.axes) == 3  # figure 4: a panel per scenario; figure 6: the paper's three groups
    needed = "variant" if name == "figure_6" else "driver"
    with pytest.raises(ValueError, match="lacks columns"):
        getattr(figures, name)(table.drop(columns=[needed]), tmp_path)


def test_figures_1_and_4_count_unfinished_races_in_the_legend_and_keep_the_finished_ones_scale(results, tmp_path):
    """A race not finished is scored laps behind (here -15 km); Figures 1 and 4 leave it out, so that the
    finished races' margins (-300 to +80 m) keep the axis, and name how many each driver did not finish."""
    table = results.assign(finished=True).reset_index(drop=True)
    tokyo = table.index[table["scenario"] == "tokyo"]
    table.loc[tokyo[:2], ["margin_m", "finished"]] = [-15000.0, False]
    driver = table.loc[tokyo[0], "driver"]
    fig = figures.figure_1(table.loc[tokyo], tmp_path)
    ax = fig.axes[0]
    assert ax.get_xlim()[0] > -1000.0
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"{driver} (2 of 40 not finished)" in legend and "runs/biai" in legend
    fig = figures.figure_4(table, tmp_path)
    tokyo_ax, spa_ax = fig.axes[:2]
    assert tokyo_ax.get_xlim()[0] > -1000.0
    assert f"{driver} (2 of 40 not finished)" in [t.get_text() for t in tokyo_ax.get_legend().get_texts()]
    assert driver in [t.get_text() for t in spa_ax.get_legend().get_texts()]  # Spa: all finished
    with pytest.raises(ValueError, match="no race was finished"):
        figures.figure_1(table.assign(finished=False), tmp_path)


def test_figure_6_puts_each_ablation_in_its_paper_panel_and_refuses_what_it_cannot_draw(results, tmp_path):
    fig = figures.figure_6(results, tmp_path, metric="margin_m", name="margins")
    labels = [[t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes]
    # left: the agent only (no symmetric critic raced); middle: the agent and no RNN; right: agent, no augmentation
    assert labels == [["agent"], ["agent", "no RNN"], ["agent", "no image\naugmentation"]]
    assert (tmp_path / "margins.png").exists()
    with pytest.raises(ValueError, match="unknown metric 'speed'; valid: place, margin_m"):
        figures.figure_6(results, tmp_path, metric="speed")
    with pytest.raises(ValueError, match="no races on 'monza'"):
        figures.figure_6(results, tmp_path, scenario="monza")
    with pytest.raises(ValueError, match="none of the panels' variants"):
        figures.figure_6(results[results["variant"] == "biai"], tmp_path)


def test_figure_5_writes_trajectories_attributions_and_frame_shares(tmp_path):
    from gtvision.sim.circuits import load_track

    track = load_track("spa")
    n = 4
    s = np.linspace(100.0, 160.0, n)
    idx = (s / float(track.length_m) * track.num_stations).astype(int)
    agent = np.stack([track.x.numpy()[idx], track.y.numpy()[idx]], 1)
    rng = np.random.default_rng(0)
    attr = rng.normal(size=(n, 64, 64))
    fig = figures.figure_5(track, agent, agent + 5.0, rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8), attr,
                           np.abs(attr) > 1.0, rng.random((n, 8)), tmp_path)
    assert len(fig.axes) == 3 * n
    assert (tmp_path / "figure_5.png").stat().st_size > 1000 and (tmp_path / "figure_5.pdf").exists()
    with pytest.raises(ValueError, match="one entry per snapshot"):
        figures.figure_5(track, agent[:2], agent, attr, attr, attr, attr, tmp_path)
