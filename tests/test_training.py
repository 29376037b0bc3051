"""Training runs: the run directory, episode statistics, bad input, determinism (smoke preset, seconds)."""
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from gtvision.agent.presets import apply_overrides, get_preset
from gtvision.agent.rollout import EpisodeStats as _EpisodeStats
from gtvision.checkpoints import complete_checkpoints
from gtvision.training import RunConfig, read_metrics, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_run_writes_its_config_and_metrics_and_never_overwrites_a_run(tmp_path):
    cfg = RunConfig(env_id="Pendulum-v1", preset="smoke", total_steps=512, eval_episodes=2, seed=3)
    out, history = train(cfg, tmp_path / "run", progress=False)
    saved = json.loads((out / "config.json").read_text())
    assert saved["run"]["env_id"] == "Pendulum-v1" and saved["preset"]["name"] == "smoke"
    # Pendulum has one Box observation: the actor and the critic see it (no local / global split)
    assert saved["preset"]["agent"]["actor_keys"] is None
    # the machine it trained on (its minutes are that machine's): the CPU and the vector instructions torch uses there
    assert saved["machine"]["cpu"] and saved["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert saved["machine"]["cores"] == os.cpu_count() and saved["machine"]["torch"] == torch.__version__
    metrics = read_metrics(out)
    assert len(metrics) == len(history) == saved["epochs"] == 8  # 512 steps / 64 per epoch
    assert metrics["charts/env_steps"].iloc[-1] == 512
    assert metrics["charts/updates"].iloc[-1] > 0 and np.isfinite(metrics["losses/critic"].iloc[-1])
    assert metrics["charts/episodes"].sum() == 2  # two envs, one 200-step episode each
    tags = _tensorboard_tags(out / "tensorboard")
    assert {"charts/episodic_return", "charts/sps", "losses/critic"} <= tags
    ev = json.loads((out / "eval.json").read_text())
    assert ev["episodes"] == 2 and len(ev["returns"]) == 2 and ev["mean_return"] < 0
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(cfg, out, progress=False)


def _tensorboard_tags(directory) -> set[str]:
    """Scalar tags in the TensorBoard event files of ``directory`` (TFRecord framing, Event protos)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    tags = set()
    for path in directory.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            tags |= {v.tag for v in event.summary.value}
            pos += 12 + length + 4
    return tags


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


def test_an_override_may_not_undo_the_variant_it_is_applied_to(tmp_path):
    """A short ablation schedule sets train.reset_epoch; for ``no_reset`` that would silently bring the reset back."""
    config = RunConfig(variant="no_reset", overrides={"train.reset_epoch": 125})
    with pytest.raises(ValueError, match=r"variant 'no_reset' sets train.reset_epoch=None; overriding it would undo"):
        train(config, tmp_path / "run", progress=False)
    assert apply_overrides(get_preset("cpu", "hidden_128"), {"train.reset_epoch": 125}).train.reset_epoch == 125
    assert apply_overrides(get_preset("cpu", "no_reset"), {"train.epochs": 200}).train.reset_epoch is None


# ---------------------------------------------------------------------------- checkpoints and resume

RACE = {"num_opponents": 1, "max_time_s": 2.0}  # short episodes: several end within the test


def _racing_config(total_steps, **kw):
    return RunConfig(scenario="tokyo", preset="smoke", total_steps=total_steps, env_kwargs=RACE, seed=11,
                     checkpoint_every=2, checkpoint_replay=True, **kw)


def _deterministic(record):
    return {k: v for k, v in record.items() if k not in ("charts/wall_s", "charts/sps")}


def test_a_stopped_and_resumed_run_equals_the_uninterrupted_run_step_for_step(tmp_path):
    _, full = train(_racing_config(6 * 64), tmp_path / "full", progress=False)
    _, first = train(_racing_config(3 * 64), tmp_path / "split", progress=False)   # stops after epoch 3
    assert [c.name for c in complete_checkpoints(tmp_path / "split")] == ["epoch_000002", "epoch_000003"]
    _, rest = train(_racing_config(6 * 64), tmp_path / "split", progress=False, resume=True)
    assert [r["epoch"] for r in rest] == [4, 5, 6]  # from the checkpoint of epoch 3
    assert [_deterministic(r) for r in first + rest] == [_deterministic(r) for r in full]
    assert sum(r["charts/episodes"] for r in full) > 0 and full[-1]["charts/updates"] > 0
    a = torch.load(complete_checkpoints(tmp_path / "full")[-1] / "trainer.pt", weights_only=False)
    b = torch.load(complete_checkpoints(tmp_path / "split")[-1] / "trainer.pt", weights_only=False)
    for name, w in a["agent"]["actor"].items():
        assert torch.equal(w, b["agent"]["actor"][name]), name
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_another_configuration_and_corrupt_or_foreign_checkpoints(tmp_path):
    out = tmp_path / "run"
    train(_racing_config(2 * 64), out, progress=False)
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="different configuration.*seed"):
        train(dataclasses.replace(_racing_config(4 * 64), seed=12), out, progress=False, resume=True)
    ckpt = complete_checkpoints(out)[-1]
    meta = json.loads((ckpt / "meta.json").read_text())
    (ckpt / "meta.json").write_text(json.dumps({**meta, "format": "someone-else-1"}))
    with pytest.raises(ValueError, match="foreign"):
        train(_racing_config(4 * 64), out, progress=False, resume=True)
    (ckpt / "meta.json").write_text(json.dumps(meta))
    data = (ckpt / "trainer.pt").read_bytes()
    (ckpt / "trainer.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="corrupt"):
        train(_racing_config(4 * 64), out, progress=False, resume=True)
    assert (out / "metrics.jsonl").read_text() == before  # nothing overwritten
    with pytest.raises(ValueError, match="no run there"):
        train(_racing_config(4 * 64), tmp_path / "nothing", progress=False, resume=True)


_KILL_SCRIPT = r"""
import sys, time, torch
from pathlib import Path
from gtvision import training
from gtvision.training import RunConfig, train
out = Path(sys.argv[1])
torch.set_num_threads(1)
real_save = torch.save
def save_then_hang(obj, f, *a, **k):
    real_save(obj, f, *a, **k)
    if "epoch_000002" in str(f):       # the second checkpoint: written, then the process hangs mid-way
        print("writing", flush=True)
        time.sleep(600)
training.torch.save = save_then_hang
train(RunConfig(env_id="Pendulum-v1", preset="smoke", total_steps=4 * 64, checkpoint_every=1,
                checkpoint_replay=True), out, progress=False)
"""


def test_a_process_killed_while_writing_a_checkpoint_leaves_the_previous_one_loadable(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert [c.name for c in complete_checkpoints(out)] == ["epoch_000001"]
    assert list((out / "checkpoints").glob(".tmp-epoch_000002-*"))  # the interrupted one, never renamed
    cfg = RunConfig(env_id="Pendulum-v1", preset="smoke", total_steps=3 * 64, checkpoint_every=1,
                    checkpoint_replay=True)
    _, rest = train(cfg, out, progress=False, resume=True)
    assert [r["epoch"] for r in rest] == [2, 3]
    assert [c.name for c in complete_checkpoints(out)][-1] == "epoch_000003"
    assert not list((out / "checkpoints").glob(".tmp-*"))  # leftovers cleaned once a new one is complete


# ---------------------------------------------------------------------------- Ray backend


def test_ray_worker_killed_mid_run_is_restarted_with_the_current_weights_and_the_run_completes(tmp_path):
    pytest.importorskip("ray")
    import ray

    seen = []

    def kill_a_worker_then_watch(trainer, record):
        if record["epoch"] == 1:
            os.kill(trainer.worker_pids()[0], signal.SIGKILL)
        else:  # the weights each worker drove with in this epoch: the learner's of this epoch
            seen.append((trainer.worker_versions(), trainer.version - 1))

    cfg = RunConfig(env_id="Pendulum-v1", preset="smoke", backend="ray", workers=2, total_steps=5 * 64, seed=1,
                    checkpoint_every=0)
    try:
        _, history = train(cfg, tmp_path / "run", progress=False, on_epoch=kill_a_worker_then_watch)
    finally:
        ray.shutdown()
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]  # the run went on to its end
    assert history[-1]["ray/worker_restarts"] == 1
    # every collection, the restarted worker's included, ran with the weights of its epoch
    assert history[-1]["ray/stale_collections"] == 0
    assert seen and all(versions == [version, version] for versions, version in seen)
    assert history[-1]["charts/env_steps"] == 5 * 64 and history[-1]["charts/updates"] > 0


def test_the_command_line_names_the_valid_values_and_resumes(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "gtvision.cli", "train", *args], capture_output=True, text=True,
                              check=False)

    bad = cli("--variant", "no_brakes", "--out", str(tmp_path / "a"))
    assert bad.returncode == 2 and "no_rnn" in bad.stderr and "gt_sophy" in bad.stderr
    bad = cli("--env-id", "NoSuchEnv-v9", "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "unknown env id 'NoSuchEnv-v9'" in bad.stderr
    run = tmp_path / "c"
    ok = cli("--env-id", "Pendulum-v1", "--preset", "smoke", "--total-steps", "128", "--checkpoint-every", "1",
             "--threads", "1", "--quiet", "--out", str(run))
    assert ok.returncode == 0, ok.stderr
    more = cli("--resume", str(run), "--total-steps", "256", "--quiet")
    assert more.returncode == 0 and "epoch 4" in more.stdout, more.stderr
    other = cli("--resume", str(run), "--preset", "cpu", "--quiet")
    assert other.returncode == 2 and "different configuration" in other.stderr


def test_a_resumed_run_trains_on_with_the_preset_it_recorded_even_if_the_preset_changed(tmp_path, monkeypatch):
    from gtvision.agent import presets

    config = RunConfig(env_id="Pendulum-v1", preset="smoke", total_steps=2 * 64, seed=3, checkpoint_every=1)
    train(config, tmp_path / "run", progress=False)
    smoke = presets._PRESETS["smoke"]

    def changed():
        agent, replay, train_cfg = smoke()
        return agent, replay, dataclasses.replace(train_cfg, updates_per_epoch=7)

    monkeypatch.setitem(presets._PRESETS, "smoke", changed)
    with pytest.warns(UserWarning, match=r"preset 'smoke' has changed since the run began \(train.updates_per_epoch\)"):
        _, rest = train(dataclasses.replace(config, total_steps=3 * 64), tmp_path / "run", progress=False, resume=True)
    recorded = smoke()[2].updates_per_epoch  # 2 updates an epoch, not the 7 the preset now names
    assert rest[-1]["epoch"] == 3 and rest[-1]["charts/updates"] == 3 * recorded


def test_a_run_with_init_starts_from_a_checkpoints_networks(tmp_path):
    from gtvision.checkpoints import complete_checkpoints, load_state

    env = {"num_opponents": 2, "max_time_s": 3.0, "start_speed_mps": 20.0}
    base, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=128, env_kwargs=env,
                              seed=1), tmp_path / "base", progress=False)
    start = load_state(complete_checkpoints(base)[-1])["agent"]
    # no update (the replay never holds learning_starts): the run's networks are the checkpoint's, not fresh ones
    out, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=64, env_kwargs=env,
                             seed=2, init=str(base), overrides={"train.reset_epoch": None,
                                                                "train.learning_starts": 10 ** 6}),
                   tmp_path / "tuned", progress=False)
    end = load_state(complete_checkpoints(out)[-1])["agent"]
    for part in ("actor", "critics", "critic_targets"):
        assert all(torch.equal(start[part][k], end[part][k]) for k in start[part]), part
    saved = json.loads((out / "config.json").read_text())
    assert saved["init_critics_adopted"] is True and saved["init_checkpoint"].endswith(complete_checkpoints(base)[-1].name)
    with pytest.raises(ValueError, match="its actor does not fit"):   # a vision actor from a privileged one
        train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, env_kwargs=env, init=str(base),
                        overrides={"train.reset_epoch": None}), tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="reset at epoch 2 would discard"):
        train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=64, env_kwargs=env,
                        init=str(base)), tmp_path / "y", progress=False)
    # the critics from another checkpoint: a second run's, the actor still the first's
    other, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=128, env_kwargs=env,
                               seed=3), tmp_path / "other", progress=False)
    theirs = load_state(complete_checkpoints(other)[-1])["agent"]
    mixed, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=64, env_kwargs=env,
                               seed=2, init=str(base), init_critics=str(other),
                               overrides={"train.reset_epoch": None, "train.learning_starts": 10 ** 6}),
                     tmp_path / "mixed", progress=False)
    end = load_state(complete_checkpoints(mixed)[-1])["agent"]
    assert all(torch.equal(start["actor"][k], end["actor"][k]) for k in start["actor"])
    assert all(torch.equal(theirs["critics"][k], end["critics"][k]) for k in theirs["critics"])
    assert not all(torch.equal(start["critics"][k], end["critics"][k]) for k in start["critics"])
    assert json.loads((mixed / "config.json").read_text())["init_critics_checkpoint"].startswith(str(other))
    with pytest.raises(ValueError, match="needs --init"):
        RunConfig(scenario="tokyo", preset="smoke", init_critics=str(base))
