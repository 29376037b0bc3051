"""Training runs: the run directory, episode statistics, bad input, determinism (smoke preset, seconds)."""
import json
import math

import numpy as np
import pytest

from gtvision.agent.loop import _EpisodeStats
from gtvision.training import RunConfig, read_metrics, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_run_writes_its_config_and_metrics_and_never_overwrites_a_run(tmp_path):
    cfg = RunConfig(env_id="Pendulum-v1", preset="smoke", total_steps=512, eval_episodes=2, seed=3)
    out, history = train(cfg, tmp_path / "run", progress=False)
    saved = json.loads((out / "config.json").read_text())
    assert saved["run"]["env_id"] == "Pendulum-v1" and saved["preset"]["name"] == "smoke"
    # Pendulum has one Box observation: the actor and the critic see it (no local / global split)
    assert saved["preset"]["agent"]["actor_keys"] is None
    metrics = read_metrics(out)
    assert len(metrics) == len(history) == saved["epochs"] == 8  # 512 steps / 64 per epoch
    assert metrics["charts/env_steps"].iloc[-1] == 512
    assert metrics["charts/updates"].iloc[-1] > 0 and np.isfinite(metrics["losses/critic"].iloc[-1])
    assert metrics["charts/episodes"].sum() == 2  # two envs, one 200-step episode each
    ev = json.loads((out / "eval.json").read_text())
    assert ev["episodes"] == 2 and len(ev["returns"]) == 2 and ev["mean_return"] < 0
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(cfg, out, progress=False)


def test_same_seed_same_run_on_cpu(tmp_path):
    cfg = RunConfig(env_id="Pendulum-v1", preset="smoke", total_steps=192, seed=5)
    _, a = train(cfg, tmp_path / "a", progress=False)
    _, b = train(cfg, tmp_path / "b", progress=False)
    keys = ("losses/critic", "losses/actor", "values/q_mean")
    assert [[h[k] for k in keys] for h in a] == [[h[k] for k in keys] for h in b]


def test_racing_runs_report_laps_places_and_reward_terms(tmp_path):
    cfg = RunConfig(scenario="tokyo", preset="smoke", total_steps=128,
                    env_kwargs={"num_opponents": 2, "max_time_s": 2.0})
    _, history = train(cfg, tmp_path / "run", progress=False)
    ended = [h for h in history if h["charts/episodes"] > 0]
    assert ended, "2 s episodes must end within 64 steps"
    rec = ended[0]
    for key in ("episode/progress_m", "episode/place", "episode/laps_done", "reward/progress",
                "reward/wall", "episode/best_lap_time_s"):
        assert key in rec, key
    assert 1 <= rec["episode/place"] <= 3
    assert math.isnan(rec["episode/best_lap_time_s"])  # nobody times a lap in 2 s


def test_episode_stats_skip_the_autoreset_step_and_sum_reward_terms():
    stats = _EpisodeStats(2)
    info = {"reward_progress": np.array([1.0, 2.0]), "progress_m": np.array([10.0, 20.0]),
            "best_lap_time_s": np.array([np.nan, 95.0])}
    live = np.array([True, True])
    stats.add(np.array([1.0, 1.0]), info, live, np.array([False, True]))   # env 1 ends
    stats.add(np.array([5.0, 7.0]), info, np.array([True, False]), np.array([True, False]))  # env 1 autoresets
    s = stats.summary()
    assert s["charts/episodes"] == 2
    assert s["charts/episodic_return"] == pytest.approx((6.0 + 1.0) / 2)  # env 1's 7.0 is not counted
    assert s["charts/episodic_length"] == pytest.approx(1.5)
    assert s["reward/progress"] == pytest.approx((2.0 + 2.0) / 2)
    assert s["episode/best_lap_time_s"] == 95.0
    assert stats.summary()["charts/episodes"] == 0


@pytest.mark.parametrize(("field", "value", "valid"), [
    ("scenario", "monza", "tokyo, spa, sarthe"), ("preset", "huge", "paper, cpu, smoke"),
    ("env_id", "NoSuchEnv-v9", "registered ids"), ("backend", "slurm", "local"),
])
def test_bad_names_raise_naming_the_valid_ones(tmp_path, field, value, valid):
    with pytest.raises(ValueError, match=valid):
        train(RunConfig(**{field: value}), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
