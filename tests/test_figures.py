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
        for driver, shift in (("agent", 80.0), ("biai", -300.0), ("no_rnn", -50.0)):
            margin = rng.normal(shift, 60.0, 40)
            rows.append(pd.DataFrame({"scenario": scenario, "driver": driver, "margin_m": margin,
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
        assert len(fig.axes) >= 3  # one panel per scenario
    with pytest.raises(ValueError, match="lacks columns"):
        getattr(figures, name)(table.drop(columns=["driver"]), tmp_path)
