"""The command line: the main job on a tiny budget, the benchmarks' bookkeeping (on a clock the test
controls), and bad input."""
import multiprocessing
import statistics
import subprocess
import sys
from types import SimpleNamespace

import gymnasium
import pytest
import torch

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


# ---------------------------------------------------------------------------- a clock the test controls

SIM_S, RENDER_S, BIAI_S = 4e-3, 1.5e-3, 1e-3
"""Seconds per race and agent-step that the controlled clock charges to ``core.step``, the renderer and
the BIAI: a benchmark that reads it must report exactly these."""


class _Clock:
    """A ``perf_counter`` that stands still except when a charged function runs."""

    def __init__(self):
        self.now_s = 1000.0

    def perf_counter(self) -> float:
        return self.now_s

    def charging(self, fn, seconds):
        """``fn`` that advances the clock by ``seconds(*args)`` after each call."""
        def charged(*args, **kwargs):
            out = fn(*args, **kwargs)
            self.now_s += seconds(*args)
            return out
        return charged


def _controlled_clock(setattr) -> _Clock:
    """Time ``gtvision.bench`` by a :class:`_Clock` on which the real simulator's agent-step of R races costs
    R x (``SIM_S`` in ``core.step`` + ``RENDER_S`` rendering + ``BIAI_S`` in the BIAI)."""
    clock = _Clock()
    setattr(bench, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    setattr(bench.core, "step", clock.charging(bench.core.step, lambda state, *_: SIM_S * state.num_races))
    setattr(bench, "render_ego", clock.charging(bench.render_ego, lambda track, x, *_: RENDER_S * x.shape[0]))
    setattr(bench, "biai_controls", clock.charging(bench.biai_controls,
                                                   lambda state, *_: BIAI_S * state.num_races))
    return clock


def _run_under_controlled_clock(target, *args):
    """A worker process's target, run on the controlled clock (spawned workers import bench afresh)."""
    _controlled_clock(setattr)
    return target(*args)


class _ClockedContext:
    """A multiprocessing context whose processes run their target under the controlled clock."""

    def __init__(self, ctx):
        self._ctx = ctx

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def Process(self, target, args=(), **kwargs):
        return self._ctx.Process(target=_run_under_controlled_clock, args=(target, *args), **kwargs)


def _snapshot(directory):
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("setting", "message"), [
    ("agent.actor_lr=abc", "agent.actor_lr='abc': expected a float, got str"),
    ("train.epochs=-3", "train.epochs=-3: must be >= 1"),
    ("replay.hidden_dtype=int8", "replay.hidden_dtype='int8': valid: float16, float32"),
    ("agent.nstep=3", "agent has no field 'nstep'; valid: actor_keys"),
])
def test_a_bad_preset_setting_is_refused_in_one_line_naming_the_field(tmp_path, capsys, setting, message):
    out = tmp_path / "run"
    code = cli.main(["train", "--preset", "smoke", "--set", setting, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing trained, nothing written


def test_a_bad_run_setting_names_the_field_and_its_range(tmp_path, capsys):
    code = cli.main(["train", "--preset", "smoke", "--minutes", "-1", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2 and "run.max_minutes=-1.0: must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["evaluate", "--checkpoint", "{d}", "--episodes", "1"], ["train", "--resume", "{d}"], ["select", "{d}"],
    ["video", "--checkpoint", "{d}", "--out", "{d}/race.gif"],
])
def test_a_directory_that_is_not_a_run_is_refused_in_one_line_and_left_as_it_was(tmp_path, capsys, command):
    not_a_run = tmp_path / "elsewhere"
    not_a_run.mkdir()
    (not_a_run / "config.json").write_text('{"model": "someone else\'s"}')
    before = _snapshot(not_a_run)
    code = cli.main([c.format(d=not_a_run) for c in command])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{not_a_run / 'config.json'} is not a gtvision run's configuration: no 'run' or 'preset' entry" in err
    assert _snapshot(not_a_run) == before


def test_a_checkpoint_directory_without_its_trainer_state_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "run" / "checkpoints" / "epoch_000001"
    ckpt.mkdir(parents=True)
    code = cli.main(["evaluate", "--checkpoint", str(ckpt), "--episodes", "1"])
    assert code == 2 and f"{ckpt} is not a checkpoint of a gtvision run: trainer.pt is missing" in capsys.readouterr().err


def test_bench_counts_agent_steps_of_every_race(monkeypatch):
    _controlled_clock(monkeypatch.setattr)
    races, steps = 2, 3
    row = bench.sim_agent_steps_per_s(num_races=races, steps=steps, scenario="tokyo")
    assert row["races"] == races and row["processes"] == 1
    step_s = races * (SIM_S + RENDER_S + BIAI_S)  # the two warm-up steps are not timed
    assert row["agent_steps_per_s"] == pytest.approx(races * steps / (steps * step_s))
    assert row["sim_ms_per_step"] == pytest.approx(1e3 * races * SIM_S)
    assert row["render_ms_per_step"] == pytest.approx(1e3 * races * RENDER_S)
    assert row["biai_ms_per_step"] == pytest.approx(1e3 * races * BIAI_S)


def test_bench_splits_the_races_over_worker_processes(monkeypatch):
    real_get_context = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context",
                        lambda method=None: _ClockedContext(real_get_context(method)))
    steps = 2
    row = bench.sim_agent_steps_per_s(num_races=5, steps=steps, scenario="tokyo", processes=2)  # 3 + 2 races
    assert row["races"] == 5 and row["processes"] == 2
    # every race in exactly one worker: the rate is all 5 races' steps over the slowest worker's (3 races)
    # time, and the split is the mean of the workers' (3 + 2 races) / 2
    slowest_step_s = 3 * (SIM_S + RENDER_S + BIAI_S)
    assert row["agent_steps_per_s"] == pytest.approx(5 * steps / (steps * slowest_step_s))
    assert row["sim_ms_per_step"] == pytest.approx(1e3 * 2.5 * SIM_S)
    assert row["render_ms_per_step"] == pytest.approx(1e3 * 2.5 * RENDER_S)
    # the columns add up to the (slowest worker's) agent-step
    parts_ms = row["sim_ms_per_step"] + row["render_ms_per_step"] + row["biai_ms_per_step"]
    assert parts_ms == pytest.approx(1e3 * slowest_step_s)
    with pytest.raises(ValueError, match="processes must be in 1..races; got processes=3, races=2"):
        bench.sim_agent_steps_per_s(num_races=2, steps=2, processes=3)


def test_bench_sim_rates_every_race_count_against_carracing_measured_in_the_same_run(monkeypatch):
    clock = _controlled_clock(monkeypatch.setattr)
    real_make = gymnasium.make

    def make(env_id, **kwargs):  # CarRacing-v3 at 64 steps per second of the controlled clock
        env = real_make(env_id, **kwargs)
        env.step = clock.charging(env.step, lambda *_: 1 / 64)
        return env

    monkeypatch.setattr(gymnasium, "make", make)
    rows = bench.bench_sim(races=(1, 2), steps=1, carracing_seconds=0.25)
    assert [r["races"] for r in rows] == [1, 2]
    for r in rows:
        assert r["carracing_steps_per_s"] == pytest.approx(64.0)
        # R races cost R times one race's step: the same rate of agent-steps at every R
        assert r["agent_steps_per_s"] == pytest.approx(1 / (SIM_S + RENDER_S + BIAI_S))
        assert r["ratio_vs_carracing"] == pytest.approx(r["agent_steps_per_s"] / 64.0)


def test_scenarios_follow_table_one():
    from gtvision.scenarios import get_scenario
    assert get_scenario("tokyo").car_spec.drivetrain == "FWD"
    assert get_scenario("spa").car_spec.tire == "sports_medium"
    assert get_scenario("SARTHE").car_spec.drivetrain == "AWD"
    with pytest.raises(ValueError, match="valid scenarios: tokyo, spa, sarthe"):
        get_scenario("monza")


def test_bench_env_times_make_vec_next_to_the_same_races_in_the_bare_simulator(monkeypatch):
    # on the controlled clock, the bare simulator's and the environment's steps take these seconds: two
    # slow warm-up steps, then three whose median differs from their mean
    sim_s, env_s = [9.0, 9.0, 0.020, 0.021, 0.060], [9.0, 9.0, 0.030, 0.050, 0.031]
    clock = _Clock()
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(bench._BareSim, "step", clock.charging(bench._BareSim.step, lambda sim, k: sim_s[k]))
    real_make_vec, env_steps = gymnasium.make_vec, iter(env_s)

    def make_vec(env_id, **kwargs):
        envs = real_make_vec(env_id, **kwargs)
        envs.step = clock.charging(envs.step, lambda *_: next(env_steps))
        return envs

    monkeypatch.setattr(gymnasium, "make_vec", make_vec)
    (row,) = bench.bench_env(races=(2,), steps=3, scenario="spa")
    assert row["races"] == 2
    assert row["sim_ms_per_step"] == pytest.approx(21.0) and row["env_ms_per_step"] == pytest.approx(31.0)
    assert row["sim_agent_steps_per_s"] == pytest.approx(2 / 0.021)
    assert row["env_agent_steps_per_s"] == pytest.approx(2 / 0.031)
    assert row["overhead"] == pytest.approx(row["env_ms_per_step"] / row["sim_ms_per_step"] - 1)
    args = cli.build_parser().parse_args(["bench", "env", "--races", "8", "16"])
    assert args.what == "env" and args.races == [8, 16]


# ---------------------------------------------------------------------------- learner


class _TinyAgent:
    """``update_flops``'s view of an agent: an actor trained on a batch of 5 (Linear 3 -> 4 -> 2), and with
    ``gru``, a target critic whose GRU (3 -> 4) reads 5 sequences of 7 steps without gradients."""

    def __init__(self, gru: bool = False):
        torch.manual_seed(0)
        self.actor = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
        self.critics = torch.nn.Sequential()
        self.critic_targets = torch.nn.GRU(3, 4, batch_first=True) if gru else torch.nn.Sequential()

    def update(self, batch):
        self.actor(batch["obs"]).sum().backward()
        if isinstance(self.critic_targets, torch.nn.GRU):
            with torch.no_grad():
                self.critic_targets(batch["seq"])


def _tiny_batch():
    return {"obs": torch.randn(5, 3), "seq": torch.randn(5, 7, 3)}


# the actor by hand, 2 B in out per product: forward 2*5*3*4 + 2*5*4*2; backward the weight gradients of
# both layers (the same again) and the input gradient of the second (2*5*2*4); none into the observation
ACTOR_FLOPS = (120 + 80) + (120 + 80) + 80
# the target GRU by hand, forward only: 3 gates of (in + H) x H products per step and row, 2 FLOPs each
GRU_FLOPS = 2 * 3 * (5 * 7) * (3 + 4) * 4


def test_learner_flops_of_a_tiny_network_equal_the_hand_count():
    assert bench.update_flops(_TinyAgent(), _tiny_batch()) == ACTOR_FLOPS


def test_learner_flops_count_a_gru_once():
    assert bench.update_flops(_TinyAgent(gru=True), _tiny_batch()) == ACTOR_FLOPS + GRU_FLOPS


def test_matmul_rate_is_the_products_flops_over_the_seconds_they_took(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(torch, "mm", clock.charging(torch.mm, lambda *_: 1 / 64))
    # 16 products of 64 x 64 matrices (after one untimed warm-up) in 0.25 s
    assert bench.matmul_gflops(n=64, seconds=0.25) == pytest.approx(2 * 64 ** 3 * 16 / 0.25 / 1e9)


def test_bench_learner_reports_the_median_update_against_its_flop_bound(monkeypatch):
    from gtvision.agent.qrsac import QRSACAgent

    clock = _Clock()
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    update_s = iter([9.0, 0.5, 0.1, 0.2])  # the first is update_flops' update, the warm-up: not timed
    monkeypatch.setattr(QRSACAgent, "update", clock.charging(QRSACAgent.update, lambda *_: next(update_s)))
    monkeypatch.setattr(bench, "matmul_gflops", lambda seconds, device: 50.0)
    res = bench.bench_learner(presets=("smoke",), updates=(3,))
    assert res["matmul_gflops"] == 50.0
    (row,) = res["rows"]
    assert row["preset"] == "smoke" and row["update_s"] == pytest.approx(statistics.median([0.5, 0.1, 0.2]))
    assert row["updates_per_s"] == pytest.approx(1 / 0.2)
    assert row["lower_bound_s"] == pytest.approx(row["gflop_per_update"] / 50.0)  # those FLOPs at 50 GFLOP/s
    assert row["x_lower_bound"] == pytest.approx(0.2 / row["lower_bound_s"])


def test_bench_update_times_each_choice_next_to_the_preset_and_counts_what_each_network_learns(monkeypatch):
    """On a clock where an update costs 40 ms of critics and, when the actor steps, 60 ms times its share of the
    batch, each choice's median update and the rows each network trains on per second follow."""
    from gtvision.agent.qrsac import QRSACAgent

    def cost(agent, *_):
        cfg, B = agent.config, 4  # the smoke preset's batch_sequences
        share = (cfg.actor_sequences or B) / B
        return 0.04 + (0.06 * share if agent.updates % cfg.actor_update_every == 0 else 0.0)

    clock = _Clock()
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(QRSACAgent, "update", clock.charging(QRSACAgent.update, cost))
    res = bench.bench_update("smoke", rounds=2)
    rows = {r["choice"]: r for r in res["rows"]}
    assert list(rows) == [name for name, _ in bench.UPDATE_CHOICES]
    expected = {"as the preset": 0.1, "channels-last convolutions": 0.1, "bfloat16 image encoder": 0.1,
                "actor every 2nd update": 0.07, "actor every 4th update": 0.055,
                "actor on half the sequences": 0.07, "actor on a quarter": 0.055, "bfloat16, actor every 2nd": 0.07}
    L = 8  # the smoke preset's seq_len
    actor_rows = {"actor every 2nd update": 4 * L / 2, "actor every 4th update": 4 * L / 4,
                  "bfloat16, actor every 2nd": 4 * L / 2,
                  "actor on half the sequences": 2 * L, "actor on a quarter": 1 * L}
    for name, seconds in expected.items():
        row = rows[name]
        assert row["update_s"] == pytest.approx(seconds), name
        assert row["speedup"] == pytest.approx(0.1 / seconds), name
        assert row["critic_rows_per_s"] == pytest.approx(4 * L / seconds), name
        assert row["actor_rows_per_s"] == pytest.approx(actor_rows.get(name, 4 * L) / seconds), name
    assert rows["actor on a quarter"]["set"] == "agent.actor_sequences=1"
    args = cli.build_parser().parse_args(["bench", "update", "--rounds", "3"])
    assert args.what == "update" and args.rounds == 3 and args.variant is None


def test_bench_env_runs_each_field_size_and_the_curriculum():
    rows = bench.bench_env(races=(2,), steps=1, scenario="tokyo", opponents=(0, None), render_image=False)
    assert [r["opponents"] for r in rows] == [0, "curriculum"]
    args = cli.build_parser().parse_args(["bench", "env", "--opponents", "0", "4", "curriculum", "--no-image"])
    assert args.opponents == ["0", "4", "curriculum"] and args.no_image


def test_bench_act_times_an_agents_race_step_with_its_image_encoders_in_each_setting(monkeypatch, tmp_path, capsys):
    """On a clock where the image encoder costs 30 ms a call in float32, three times that under bfloat16 and 10 ms
    more channels-last, each setting's step and its ratio to float32 follow; the exported setting is marked; an
    agent without an image encoder is refused."""
    from gtvision.agent.networks import ImageEncoder
    from gtvision.training import RunConfig, train

    env = {"num_opponents": 1, "max_time_s": 30.0}
    vision, _ = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, seed=1, env_kwargs=env),
                      tmp_path / "vision", progress=False)
    assert cli.main(["export", "--checkpoint", str(vision), "--out", str(tmp_path / "agent"),
                     "--set", "agent.image_dtype=bfloat16"]) == 0

    def cost(encoder, *_):
        return (0.09 if encoder.autocast else 0.03) + (0.01 if encoder.channels_last else 0.0)

    clock = _Clock()
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(ImageEncoder, "forward", clock.charging(ImageEncoder.forward, cost))
    res = bench.bench_act(tmp_path / "agent", races=2, steps=2, rounds=2)
    rows = {r["choice"]: r for r in res["rows"]}
    assert list(rows) == [name for name, *_ in bench.ACT_CHOICES] and res["encoders"] == 1
    expected = {"float32": 30, "bfloat16": 90, "float32, channels-last": 40, "bfloat16, channels-last": 100}
    for name, ms in expected.items():
        assert rows[name]["step_ms"] == pytest.approx(ms), name
        assert rows[name]["speedup"] == pytest.approx(30 / ms), name
    assert [r["exported"] for r in res["rows"]] == [False, True, False, False]
    gt_sophy, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=64, seed=1,
                                  env_kwargs=env), tmp_path / "gt_sophy", progress=False)
    with pytest.raises(ValueError, match="has none"):
        bench.bench_act(gt_sophy, races=1, steps=1, rounds=1)
    capsys.readouterr()
    assert cli.main(["bench", "act", "--checkpoint", str(tmp_path / "agent"), "--races", "2", "--steps", "1",
                     "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    marked = [line for line in out.splitlines() if line.endswith(" *")]
    assert "2 races" in out and len(marked) == 1 and marked[0].split()[0] == "bfloat16"


def test_bench_training_reports_the_loops_rates_next_to_the_update_alone(monkeypatch):
    """On a clock where an update costs 50 ms and a vector step of the environments 10 ms, the loop's
    updates/s, steps/s and collection share follow from the epoch's counts alone."""
    from gtvision.agent.presets import get_preset
    from gtvision.agent.qrsac import QRSACAgent
    from gtvision.agent.rollout import Rollout

    clock = _Clock()
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    monkeypatch.setattr(QRSACAgent, "update", clock.charging(QRSACAgent.update, lambda *_: 0.05))
    monkeypatch.setattr(Rollout, "step", clock.charging(Rollout.step, lambda *_: 0.01))
    res = bench.bench_training("smoke", "gt_sophy", {"train.updates_per_epoch": 3}, opponents=(None,), epochs=2)
    train = get_preset("smoke", "gt_sophy").train
    steps = train.env_steps_per_epoch // train.num_envs           # vector steps per epoch
    seconds = 2 * (3 * 0.05 + steps * 0.01)
    assert res["update"]["update_s"] == pytest.approx(0.05)
    assert [r["opponents"] for r in res["rows"]] == ["curriculum"]
    for row in res["rows"]:
        assert row["updates"] == 6 and row["env_steps"] == 2 * steps * train.num_envs
        assert row["updates_per_s"] == pytest.approx(6 / seconds)
        assert row["env_steps_per_s"] == pytest.approx(2 * steps * train.num_envs / seconds)
        assert row["collection_share"] == pytest.approx(2 * steps * 0.01 / seconds)
        assert row["x_update_only"] == pytest.approx(row["updates_per_s"] * 0.05)
    with pytest.raises(ValueError, match="neither 0..19 nor 'curriculum'"):
        cli._opponent_counts(["4", "twenty"])


def test_make_race_runs_the_recipe_the_readme_states():
    """Every command `make race` runs (its dry run, default settings) is in the README's quick start, and the
    recipe is the distillation one: a GT Sophy teacher, IV-D's selection exported with critics, DAgger alone, IV-D's
    selection over the DAgger rounds."""
    import re
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(["make", "-n", "-s", "race", "RUN=runs/agent", "BIN=.venv/bin"], cwd=root,
                         capture_output=True, text=True, check=True).stdout

    def commands(text):
        joined = re.sub(r"\\\n\s*", " ", text)
        return [" ".join(line.replace(".venv/bin/", "").split()) for line in joined.splitlines()
                if line.strip().startswith((".venv/bin/gtvision", "gtvision"))]

    made = commands(dry)
    quick_start = Path(root / "README.md").read_text().split("## Quick start")[1].split("\n## ")[0]
    assert [c.split()[1] for c in made] == ["train", "select", "train", "select", "evaluate", "video"]
    assert "--variant gt_sophy" in made[0] and "--export runs/agent/teacher" in made[1]
    assert "--teacher runs/agent/teacher" in made[2] and "--minutes 0" in made[2]
    assert "--set train.distill_divergence=reverse" in made[2] and "--set train.distill_rounds=14" in made[2]
    # half the DAgger episodes begin as races do (situations, run MS1)
    assert """--env-arg 'situations=[{}, {"start":"grid_back","num_opponents":19,"start_speed_mps":0,"bop":false}]'""" \
        in made[2]
    # the DAgger round is picked by IV-D's rule, and that pick is what races and films
    assert made[3].split()[2] == "runs/agent/vision/distill" and "--export runs/agent/agent" in made[3]
    assert all("--checkpoint runs/agent/agent " in c for c in made[4:])
    assert made == commands(quick_start)
