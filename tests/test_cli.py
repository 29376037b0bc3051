"""The command line: the main job on a tiny budget, the benchmark's bookkeeping, and bad input."""
import subprocess
import sys

import pytest

from gtvision import bench, cli


def test_race_prints_the_table_and_writes_the_csv_and_video(tmp_path, capsys):
    video = tmp_path / "race.gif"
    code = cli.main(["race", "--scenario", "spa", "--laps", "1", "--cars", "3", "--max-time", "6",
                     "--video", str(video), "--video-speedup", "10", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "place" in out and "finished 0/3" in out  # 6 s is not a lap: nobody finishes
    assert "most for a car" in out
    table = (tmp_path / "race_spa.csv").read_text().splitlines()
    assert len(table) == 1 + 3  # header + one row per car
    assert video.stat().st_size > 1000


def test_unknown_scenario_names_the_valid_ones():
    proc = subprocess.run([sys.executable, "-m", "gtvision.cli", "race", "--scenario", "monza"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "tokyo" in proc.stderr and "spa" in proc.stderr and "sarthe" in proc.stderr


def test_bench_counts_agent_steps_of_every_race():
    row = bench.sim_agent_steps_per_s(num_races=2, steps=2, scenario="tokyo")
    assert row["races"] == 2
    assert row["agent_steps_per_s"] > 0
    assert row["sim_ms_per_step"] > 0 and row["render_ms_per_step"] > 0


def test_bench_splits_the_races_over_worker_processes():
    row = bench.sim_agent_steps_per_s(num_races=5, steps=2, scenario="tokyo", processes=2)  # 3 + 2 races
    assert row["races"] == 5 and row["processes"] == 2
    assert row["agent_steps_per_s"] > 0 and row["sim_ms_per_step"] > 0 and row["render_ms_per_step"] > 0
    with pytest.raises(ValueError, match="processes must be in 1..races; got processes=3, races=2"):
        bench.sim_agent_steps_per_s(num_races=2, steps=2, processes=3)


def test_scenarios_follow_table_one():
    from gtvision.scenarios import get_scenario
    assert get_scenario("tokyo").car_spec.drivetrain == "FWD"
    assert get_scenario("spa").car_spec.tire == "sports_medium"
    assert get_scenario("SARTHE").car_spec.drivetrain == "AWD"
    with pytest.raises(ValueError, match="valid scenarios: tokyo, spa, sarthe"):
        get_scenario("monza")


def test_bench_env_times_make_vec_next_to_the_same_races_in_the_bare_simulator():
    (row,) = bench.bench_env(races=(2,), steps=2, scenario="spa")
    assert row["races"] == 2 and row["env_agent_steps_per_s"] > 0 and row["sim_agent_steps_per_s"] > 0
    assert row["overhead"] == pytest.approx(row["env_ms_per_step"] / row["sim_ms_per_step"] - 1)
    args = cli.build_parser().parse_args(["bench", "env", "--races", "8", "16"])
    assert args.what == "env" and args.races == [8, 16]
