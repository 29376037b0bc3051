"""gtvision bench learning: the windows of training time, and both learners run side by side."""
import json
import math

import pandas as pd
import pytest

from gtvision.bench_learning import bench_learning, ours_episodes, sb3_episodes, window_table


def test_windows_weigh_each_epochs_episodes_and_count_laps():
    episodes = pd.DataFrame({
        "minutes": [1.0, 4.0, 6.0, 9.5],
        "weight": [1.0, 3.0, 2.0, 2.0],          # episodes that ended in each epoch
        "progress_m": [100.0, 300.0, 4400.0, 1000.0],
        "wall_time_s": [4.0, 0.0, 1.0, 2.0],
        "laps_done": [0.0, 0.0, 1.0, 0.5],
        "best_lap_time_s": [math.nan, math.nan, 120.0, 110.0],
    })
    t = window_table(episodes, window_min=5.0, minutes=15.0)
    assert t["window"].tolist() == ["0-5", "5-10", "10-15"]
    assert t["episodes"].tolist() == [4, 4, 0]
    assert t["progress_m"][0] == pytest.approx((100 + 3 * 300) / 4)
    assert t["wall_time_s"][1] == pytest.approx((2 * 1 + 2 * 2) / 4)
    assert t["laps"].tolist()[:2] == [0.0, 3.0]
    assert math.isnan(t["best_lap_s"][0]) and t["best_lap_s"][1] == 110.0
    assert math.isnan(t["progress_m"][2])


def test_ours_and_sb3s_records_become_episode_rows(tmp_path):
    run = tmp_path / "ours"
    run.mkdir()
    records = [{"epoch": 1, "charts/wall_s": 30.0, "charts/episodes": 0},
               {"epoch": 2, "charts/wall_s": 90.0, "charts/episodes": 2, "episode/progress_m": 50.0,
                "episode/wall_time_s": 1.0, "episode/laps_done": 0.0, "episode/best_lap_time_s": None}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    ours = ours_episodes(run)
    assert ours["minutes"].tolist() == [1.5] and ours["weight"].tolist() == [2]
    assert ours["progress_m"].tolist() == [50.0]
    sb3 = tmp_path / "sb3"
    sb3.mkdir()
    (sb3 / "episodes.jsonl").write_text(json.dumps({"minutes": 0.5, "progress_m": 12.0, "wall_time_s": 0.0,
                                                    "laps_done": 0.0, "best_lap_time_s": math.inf}) + "\n")
    assert sb3_episodes(sb3)[["minutes", "weight", "progress_m"]].values.tolist() == [[0.5, 1.0, 12.0]]


def test_both_learners_run_side_by_side_and_the_table_and_plot_are_written(tmp_path):
    pytest.importorskip("stable_baselines3")
    tables = bench_learning(tmp_path / "bench", minutes=0.1, window_min=0.05, preset="smoke",
                            env_kwargs={"max_time_s": 1.0})
    assert set(tables) == {"ours", "sb3"}
    for t in tables.values():
        assert t["window"].tolist() == ["0-0.05", "0.05-0.1"]
    assert tables["sb3"]["episodes"].sum() > 0 and tables["ours"]["episodes"].sum() > 0  # 1 s episodes end
    table = pd.read_csv(tmp_path / "bench" / "learning.csv")
    assert set(table["learner"]) == {"ours", "sb3"}
    assert (tmp_path / "bench" / "learning.png").stat().st_size > 10_000
    with pytest.raises(FileExistsError, match="already holds"):
        bench_learning(tmp_path / "bench", minutes=0.1, preset="smoke")
