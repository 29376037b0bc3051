"""Evaluation races: winning margin and place, the checkpoint rule of IV-D, checkpoints in the seat."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

import gymnasium as gym
from gtvision import checkpoints
from gtvision.env import ENV_IDS
from gtvision.evaluation import (evaluate, race_envs, race_margin, race_place, select_checkpoint, summarize,
                                 write_results)
from gtvision.training import RunConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_winning_margin_and_place_on_a_scripted_race():
    """Three opponents at set distances from the agent: the margin is the agent's progress minus the best
    opponent's, the place counts the cars ahead."""
    envs = gym.make_vec(ENV_IDS["tokyo"], num_envs=2, num_opponents=3, start="grid_back", laps=4, bop=False)
    envs.reset(seed=0)
    batch = envs.unwrapped.batch
    progress = torch.tensor([[1000.0, 900.0, 970.0, 500.0],     # the agent leads by 30 m: margin +30, 1st
                             [1000.0, 1050.0, 1120.0, 990.0]])  # two cars ahead, the best by 120 m: -120, 3rd
    batch.state = dataclasses.replace(batch.state, progress_m=progress)
    info = batch.info(batch.zero_terms())
    np.testing.assert_allclose(info["margin_m"], [30.0, -120.0])
    np.testing.assert_array_equal(info["place"], [1, 3])
    envs.close()


def test_an_unfinished_race_is_scored_by_its_deficit_when_the_winner_finished():
    """Four races of 1,000 m: a finisher 80 m behind the leader keeps the environment's margin; a car stuck at
    300 m before anyone finished trails by 700 m (not the 40 m gap to the leader when it stopped); a car cut by
    the time cap trails by what it lacked when the winner finished; a time trial (no opponents) keeps 0."""
    margin = race_margin(margin_m=np.array([-80.0, -40.0, -1500.0, 0.0]),
                         progress_m=np.array([1000.0, 300.0, 900.0, 700.0]),
                         finished=np.array([True, False, False, False]), num_opponents=np.array([19, 19, 19, 0]),
                         at_winner_m=np.array([930.0, np.nan, 850.0, np.nan]), race_m=1000.0)
    np.testing.assert_allclose(margin, [-80.0, -700.0, -150.0, 0.0])
    # a car that stops early is never scored above one that finishes behind: the rule of IV-D cannot pick it
    assert margin[1] < margin[0]


def test_a_car_that_does_not_finish_is_classified_last():
    place = race_place(np.array([3, 7, 1]), finished=np.array([True, False, False]), num_opponents=np.array([19, 19, 0]))
    np.testing.assert_array_equal(place, [3, 20, 1])  # a finisher keeps its place; stuck 7th -> 20th; alone: 1st


def test_biai_in_the_agents_seat_races_from_the_back_and_the_table_is_consistent(tmp_path):
    table = evaluate("biai", "tokyo", episodes=2, seed=0, laps=1, progress=False)
    assert list(table["episode"]) == [0, 1] and table["finished"].all() and set(table["variant"]) == {"biai"}
    assert table["place"].between(1, 20).all()
    assert ((table["place"] == 1) == (table["margin_m"] > 0)).all()   # winning <=> a positive margin
    assert (table["lap_1_s"] < table["race_time_s"]).all() and (table["lap_1_s"] > 90).all()
    assert table["margin_m"].nunique() == 2  # the opponents' start reactions differ from race to race
    csv, js = write_results(table, tmp_path, "eval")
    assert pd.read_csv(csv).shape == table.shape and summarize(table)["episodes"] == 2
    assert js.exists()


def test_evaluate_cuts_races_at_max_time_and_refuses_a_bad_one(tmp_path, capsys):
    from gtvision import cli

    assert cli.main(["evaluate", "--driver", "biai", "--episodes", "2", "--laps", "1", "--max-time", "4",
                     "--threads", "1", "--quiet", "--out", str(tmp_path)]) == 0
    assert "finished 0/2" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "eval_tokyo_biai.csv")
    assert (~table["finished"]).all() and table["race_time_s"].between(3.9, 4.2).all()
    assert table["progress_m"].between(-200, 100).all()  # 4 s from the back of the grid: short of the line's 100 m
    assert cli.main(["evaluate", "--driver", "biai", "--episodes", "1", "--max-time", "-1", "--quiet",
                     "--out", str(tmp_path)]) == 2
    assert "max_time_s must be a positive number of seconds, got -1.0" in capsys.readouterr().err


def test_a_time_trial_has_no_opponents_and_bad_grids_are_refused(tmp_path, capsys):
    from gtvision import cli

    assert cli.main(["evaluate", "--driver", "biai", "--episodes", "1", "--laps", "1", "--opponents", "0",
                     "--threads", "1", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lap_1_s" in out and "1 time trial(s)" in out and "laps done 1" in out  # the table, then the summary
    table = pd.read_csv(tmp_path / "eval_tokyo_biai_opponents0.csv")
    assert table["finished"].all() and (table["place"] == 1).all()   # alone on the track: first
    assert (table["car_collision_time_s"] == 0).all() and 95 < table["lap_1_s"].iloc[0] < 115
    assert table["best_clean_lap_s"].iloc[0] == table["lap_1_s"].iloc[0]  # the BIAI alone laps clean
    assert "best clean lap" in out
    with pytest.raises(ValueError, match=r"opponents must be an int in 0..19, got 20"):
        evaluate("biai", "tokyo", episodes=1, progress=False, opponents=20)


def test_a_checkpoint_drives_in_the_agents_seat(tmp_path):
    run, _ = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=128, checkpoint_every=1,
                             env_kwargs={"num_opponents": 1, "max_time_s": 2.0}), tmp_path / "run", progress=False)
    table = evaluate(run, "tokyo", episodes=2, seed=0, laps=1, progress=False)  # the run's newest checkpoint
    assert len(table) == 2 and table["place"].between(1, 20).all()
    # an untrained policy does not finish: the stuck rule or the time cap ends its race
    assert not table["finished"].any()
    with pytest.raises(ValueError, match="neither a checkpoint path nor one of: biai"):
        evaluate("nobody", "tokyo", episodes=1, progress=False)


def test_an_exported_agent_is_small_and_races_like_its_checkpoint(tmp_path, capsys):
    from gtvision import cli

    run, _ = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=128, checkpoint_every=1, seed=4,
                             env_kwargs={"num_opponents": 1, "max_time_s": 2.0}), tmp_path / "run", progress=False)
    agent = tmp_path / "agents" / "tokyo_smoke"
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(agent)]) == 0
    (ckpt,) = (agent / "checkpoints").iterdir()
    state = torch.load(ckpt / "trainer.pt", weights_only=False)
    assert set(state["agent"]) == {"actor"}  # no critics, optimisers, environments or replay
    exported = evaluate(agent, "tokyo", episodes=2, seed=0, laps=1, progress=False)
    original = evaluate(run, "tokyo", episodes=2, seed=0, laps=1, progress=False)
    pd.testing.assert_frame_equal(exported.drop(columns="driver"), original.drop(columns="driver"))
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(agent)]) == 2  # never overwrites
    assert "already holds a run" in capsys.readouterr().err


def test_a_checkpoint_loads_with_the_networks_it_was_trained_with(tmp_path, monkeypatch):
    """The actor is rebuilt from the resolved preset saved in the run's config.json, so a checkpoint
    still loads after the named preset changes (here: the smoke preset's hidden size)."""
    from gtvision.agent import presets

    run, _ = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, checkpoint_every=1,
                             env_kwargs={"num_opponents": 0, "max_time_s": 1.0}), tmp_path / "run", progress=False)
    smoke = presets._PRESETS["smoke"]

    def changed():
        agent, replay, train_cfg = smoke()
        return dataclasses.replace(agent, hidden_size=2 * agent.hidden_size), replay, train_cfg

    monkeypatch.setitem(presets._PRESETS, "smoke", changed)
    table = evaluate(run, "tokyo", episodes=1, seed=0, laps=1, progress=False)
    assert len(table) == 1
    saved = json.loads((run / "config.json").read_text())["preset"]
    assert presets.Preset.from_dict(saved) != presets.get_preset("smoke")  # the name now means other networks
    saved["agent"]["no_such_field"] = 1
    with pytest.raises(ValueError, match="no_such_field"):
        presets.Preset.from_dict(saved)
    with pytest.raises(ValueError, match="valid: tokyo, spa, sarthe"):
        evaluate("biai", "monza", episodes=1, progress=False)


def test_checkpoint_selection_takes_the_best_margin_under_the_collision_threshold():
    def results(margins, collisions):
        return pd.DataFrame({"margin_m": margins, "car_collision_time_s": collisions})

    synthetic = {"epoch_100": results([50, 70], [0.5, 0.7]),      # margin 60, collisions 0.6
                 "epoch_200": results([150, 130], [3.0, 2.0]),    # margin 140, but collisions 2.5
                 "epoch_300": results([90, 100], [1.0, 0.8])}     # margin 95, collisions 0.9
    assert select_checkpoint(synthetic, max_collision_s=1.0) == "epoch_300"
    assert select_checkpoint(synthetic, max_collision_s=3.0) == "epoch_200"
    assert select_checkpoint(synthetic, max_collision_s=0.7) == "epoch_100"
    with pytest.raises(ValueError, match="lowest is 0.60 s"):
        select_checkpoint(synthetic, max_collision_s=0.1)


def test_video_of_an_evaluation_race_shows_the_ego_view_beside_the_map(tmp_path):
    import imageio.v2 as imageio

    from gtvision.evaluation import write_video

    path = write_video("biai", "tokyo", tmp_path / "race.gif", max_time_s=2.0, speedup=2, progress=False)
    frames = list(imageio.get_reader(path))
    assert len(frames) == 10  # 2 s at 10 Hz, every second frame
    h, w = frames[0].shape[:2]
    assert (h, w) == (270, 480 + 270)  # ego view 270x480 beside a 270x270 map
    assert frames[0][:, :480].std() > 10 and frames[0][:, 480:].std() > 10  # both halves show something


def test_select_races_every_checkpoint_of_a_run_and_applies_the_rule(tmp_path, capsys):
    from gtvision import cli
    from gtvision.evaluation import select_from_run

    run, _ = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=128, checkpoint_every=1,
                             keep_checkpoints=2, env_kwargs={"num_opponents": 0, "max_time_s": 1.0}),
                   tmp_path / "run", progress=False)
    choice, summary = select_from_run(run, "tokyo", episodes=1, max_collision_s=1e9, laps=1, out=tmp_path / "sel",
                                      progress=False)
    assert list(summary["checkpoint"]) == ["epoch_000001", "epoch_000002"]
    best = summary.loc[summary["margin_mean_m"].idxmax(), "checkpoint"]
    assert choice == best and summary["selected"].sum() == 1
    table = pd.read_csv(tmp_path / "sel" / f"eval_tokyo_run_{best}.csv")  # named by run and checkpoint
    assert set(table["variant"]) == {"asymmetric"}
    # called again on the same races: the tables in --out are reused, not raced again (a marked table shows it)
    marked = table.assign(margin_m=1e6)
    marked.to_csv(tmp_path / "sel" / "eval_tokyo_run_epoch_000001.csv", index=False)
    again, summary2 = select_from_run(run, "tokyo", episodes=1, max_collision_s=1e9, laps=1, out=tmp_path / "sel",
                                      progress=False)
    assert again == "epoch_000001" and summary2.loc[0, "margin_mean_m"] == 1e6
    # ... but not for other races (another seed), and --from-epoch leaves out the earlier checkpoints
    _, summary3 = select_from_run(run, "tokyo", episodes=1, max_collision_s=1e9, laps=1, out=tmp_path / "sel",
                                  progress=False, seed=5)
    assert summary3.loc[0, "margin_mean_m"] < 1e6
    # a checkpoint raced by `gtvision evaluate` into the same --out on the same races is not raced again either
    assert cli.main(["evaluate", "--checkpoint", str(run / "checkpoints" / "epoch_000002"), "--episodes", "1",
                     "--laps", "1", "--seed", "7", "--quiet", "--out", str(tmp_path / "sel7")]) == 0
    raced = tmp_path / "sel7" / "eval_tokyo_run_epoch_000002.csv"
    pd.read_csv(raced).assign(margin_m=2e6).to_csv(raced, index=False)
    _, summary4 = select_from_run(run, "tokyo", episodes=1, max_collision_s=1e9, laps=1, out=tmp_path / "sel7",
                                  progress=False, seed=7, from_epoch=2)
    assert summary4.loc[0, "margin_mean_m"] == 2e6
    _, late = select_from_run(run, "tokyo", episodes=1, max_collision_s=1e9, laps=1, progress=False, from_epoch=2)
    assert list(late["checkpoint"]) == ["epoch_000002"]
    with pytest.raises(checkpoints.NotARunError, match="from epoch 3"):
        select_from_run(run, "tokyo", episodes=1, laps=1, progress=False, from_epoch=3)
    # a threshold no checkpoint meets: nothing selected, and the command says so with exit code 1
    humans = tmp_path / "humans.csv"
    pd.DataFrame({"car_collision_time_s": [-1.0, -2.0]}).to_csv(humans, index=False)
    assert cli.main(["select", str(run), "--episodes", "1", "--laps", "1", "--human-table", str(humans),
                     "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "worst human car-collision time" in out and "-1.00 s" in out and "no checkpoint" in out


def test_the_committed_gt_sophy_agent_drives_a_lap_of_tokyo():
    """papermill_runs/agents/tokyo_gt_sophy: the GT Sophy baseline's actor as committed (gtvision export): a one-lap
    race from the back of the 20-car grid, standing start, it finishes ahead of where it started. (Its laps alone are
    the time-trial agent's test below; one race keeps CI short.)"""
    from pathlib import Path

    agent = Path(__file__).resolve().parents[1] / "papermill_runs" / "agents" / "tokyo_gt_sophy"
    race = evaluate(agent, "tokyo", episodes=1, seed=10_002, laps=1, progress=False)
    assert race["variant"].iloc[0] == "gt_sophy"
    assert race["finished"].iloc[0] and race["place"].iloc[0] < 20
    assert race["lap_1_s"].iloc[0] < 120.0  # through the pack: 104.6 s here (the BIAI alone: 103.1 s flying)


def test_the_committed_time_trial_agent_laps_tokyo_clean_faster_than_the_biai():
    """papermill_runs/agents/tokyo_gt_sophy_time_trial (run D3's epoch 270, 25 minutes of training): alone from the
    back of the grid, its second lap touches no wall and beats the BIAI's flying lap alone (103.1 s)."""
    from pathlib import Path

    agent = Path(__file__).resolve().parents[1] / "papermill_runs" / "agents" / "tokyo_gt_sophy_time_trial"
    (row,) = evaluate(agent, "tokyo", episodes=1, seed=3, laps=2, opponents=0, progress=False).to_dict("records")
    assert row["finished"] and row["wall_time_s"] == 0.0 and row["off_course_time_s"] == 0.0
    assert row["best_clean_lap_s"] == row["lap_2_s"] < 103.1


def test_the_committed_vision_agent_races_from_the_grid_on_its_view_and_proprio():
    """papermill_runs/agents/tokyo_vision (E3Vh: four two-teacher DAgger students of the asymmetric agent's actor
    as an ensemble, stored in float16, raced with the recovery reflex and the stability aid): its configuration
    keeps what it was measured with, and a one-lap race from the back of the grid it finishes ahead of P20, on its
    ensemble in float16. (Its races are LOG.md's; one race keeps CI short.)"""
    from pathlib import Path

    agent = Path(__file__).resolve().parents[1] / "papermill_runs" / "agents" / "tokyo_vision"
    config = checkpoints.read_run_config(agent)
    assert config["preset"]["agent"]["recovery"] and config["preset"]["agent"]["stability"]
    assert config["exported_from"]["weights"] == "float16"
    networks = checkpoints.load_state(checkpoints.resolve(agent)[0])["agent"]
    assert len(networks["ensemble"]) == 3 and networks["actor"]["head.0.weight"].dtype == torch.float16
    race = evaluate(agent, "tokyo", episodes=1, seed=10_002, laps=1, progress=False)
    assert race["variant"].iloc[0] == "asymmetric"
    assert race["finished"].iloc[0] and race["place"].iloc[0] < 20 and race["lap_1_s"].iloc[0] < 120.0  # 106.0 s here


def test_the_committed_vision_time_trial_agent_laps_tokyo_faster_than_the_biai_all_but_clean():
    """papermill_runs/agents/tokyo_vision_time_trial (run V16: the time-trial baseline distilled into the vision actor,
    46 minutes of training in all): alone, its second lap beats the BIAI's flying lap (103.1 s) within a second of wall
    contact over both laps. (Raced alone as one episode, its laps are clean: 98.7 s; the float differences of batched
    networks put its car on another path that brushes a wall for up to 1 s in 3 laps, so the test allows for that.)"""
    from pathlib import Path

    agent = Path(__file__).resolve().parents[1] / "papermill_runs" / "agents" / "tokyo_vision_time_trial"
    (row,) = evaluate(agent, "tokyo", episodes=1, seed=0, laps=2, opponents=0, progress=False).to_dict("records")
    assert row["variant"] == "asymmetric" and row["finished"]
    assert row["lap_2_s"] < 103.1 and row["wall_time_s"] < 1.0 and row["off_course_time_s"] == 0.0


def test_the_committed_vision_agents_actor_reads_only_the_image_and_proprio():
    """Paper III-A: the actor gets the local features only. Scrambling the global features (course points, opponent
    grid) leaves its action unchanged; another image changes it."""
    from pathlib import Path

    import gymnasium as gym
    import numpy as np

    from gtvision.checkpoints import load_actor

    agent_dir = Path(__file__).resolve().parents[1] / "papermill_runs" / "agents" / "tokyo_vision"
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, num_opponents=6, start_speed_mps=20.0)
    obs, _ = envs.reset(seed=4)
    for _ in range(30):  # into traffic, so that the opponent grid is not empty
        obs, *_ = envs.step(np.tile([0.0, 0.5], (2, 1)).astype(np.float32))
    agent = load_actor(agent_dir, envs.single_observation_space, envs.single_action_space)
    assert set(agent.actor.keys) == {"image", "proprio"}
    hidden = agent.initial_hidden(2)
    action, _ = agent.act(obs, hidden, eval_mode=True)
    rng = np.random.default_rng(0)
    scrambled = dict(obs)
    for key in ("course_points", "opponent_grid"):
        assert np.abs(obs[key]).sum() > 0, key
        scrambled[key] = rng.normal(0.0, 50.0, obs[key].shape).astype(obs[key].dtype)
    np.testing.assert_array_equal(agent.act(scrambled, hidden, eval_mode=True)[0], action)
    other_view = dict(obs, image=obs["image"][::-1].copy())  # each race's view swapped with the other's
    assert not np.allclose(agent.act(other_view, hidden, eval_mode=True)[0], action)
    envs.close()


def test_the_committed_gap_keeper_and_shielded_agents_keep_their_layers_and_the_shielded_one_races():
    """papermill_runs/agents/tokyo_gt_sophy_gap_keeper (run SH1's epoch 400: the GT Sophy baseline fine-tuned with the
    gap keeper in training) keeps the layer on; tokyo_gt_sophy_shielded (the same networks exported with the side
    keeper on and a stricter gap keeper, `gtvision export --set`) holds both layers, and a one-lap race from the back
    of the grid it finishes ahead of P20. (One race for the two agents keeps CI short: their
    networks are the same, and the layers' own tests are in tests/test_agent.py.)"""
    from pathlib import Path

    agents = Path(__file__).resolve().parents[1] / "papermill_runs" / "agents"
    gap_keeper = checkpoints.run_preset(agents / "tokyo_gt_sophy_gap_keeper").agent
    assert gap_keeper.gap_keeper and not gap_keeper.side_keeper
    shielded = checkpoints.run_preset(agents / "tokyo_gt_sophy_shielded").agent
    assert shielded.gap_keeper and shielded.side_keeper and (shielded.gap_hold_m, shielded.gap_look_m) == (1.0, 5.0)
    actors = [checkpoints.load_state(checkpoints.resolve(agents / name)[0])["agent"]["actor"]
              for name in ("tokyo_gt_sophy_gap_keeper", "tokyo_gt_sophy_shielded")]
    assert all(torch.equal(actors[0][k], actors[1][k]) for k in actors[0])
    race = evaluate(agents / "tokyo_gt_sophy_shielded", "tokyo", episodes=1, seed=10_002, laps=1, progress=False)
    assert race["variant"].iloc[0] == "gt_sophy"
    assert race["finished"].iloc[0] and race["place"].iloc[0] < 20


def test_an_agent_exported_with_a_safety_layer_races_with_it(tmp_path, capsys):
    """`gtvision export --set agent.side_keeper=true ...` changes only the safety layers an agent races with: the
    same networks, the layers in its configuration (and in where it came from); a field the networks compute with,
    or a layer that its actor cannot read, is refused."""
    from gtvision import cli

    env = {"num_opponents": 1, "max_time_s": 2.0}
    run, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=64, seed=4,
                             env_kwargs=env), tmp_path / "run", progress=False)
    first, shielded = tmp_path / "agents" / "plain", tmp_path / "agents" / "shielded"
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(first)]) == 0
    assert cli.main(["export", "--checkpoint", str(first), "--out", str(shielded), "--set", "agent.side_keeper=true",
                     "--set", "agent.gap_keeper=true", "--set", "agent.gap_hold_m=1.0"]) == 0
    agent = checkpoints.run_preset(shielded).agent
    assert agent.side_keeper and agent.gap_keeper and agent.gap_hold_m == 1.0 and agent.gap_look_m == 3.0
    saved = json.loads((shielded / "config.json").read_text())["exported_from"]
    assert saved["layers"] == {"side_keeper": True, "gap_keeper": True, "gap_hold_m": 1.0}
    assert saved["earlier"]["run"] == str(run)                  # an export of an export: where it first came from
    (a,), (b,) = (list((d / "checkpoints").iterdir()) for d in (first, shielded))
    actors = [torch.load(c / "trainer.pt", weights_only=False)["agent"]["actor"] for c in (a, b)]
    assert all(torch.equal(actors[0][k], actors[1][k]) for k in actors[0])
    (row,) = evaluate(shielded, "tokyo", episodes=1, seed=0, laps=1, progress=False, max_time_s=3.0).to_dict("records")
    assert not row["finished"] and row["race_time_s"] == pytest.approx(3.0, abs=0.11)  # cut short: a smoke agent
    capsys.readouterr()
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "x"),
                     "--set", "agent.hidden_size=8"]) == 2
    assert "only the safety layers" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert cli.main(["export", "--checkpoint", str(run), "--out", str(tmp_path / "y"),
                     "--set", "agent.gap_hold_m=-1"]) == 2
    assert "gap_hold_m" in capsys.readouterr().err
    vision, _ = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, env_kwargs=env),
                      tmp_path / "vision", progress=False)
    assert cli.main(["export", "--checkpoint", str(vision), "--out", str(tmp_path / "z"),
                     "--set", "agent.side_keeper=true"]) == 2
    assert "needs an actor that reads ['opponent_grid']" in capsys.readouterr().err
    # how the networks compute (AgentConfig.COMPUTE_SETTINGS) may change too: the same weights, run at another dtype
    assert _image_dtype(vision) == "float32"
    assert cli.main(["export", "--checkpoint", str(vision), "--out", str(tmp_path / "bf16"),
                     "--set", "agent.image_dtype=bfloat16", "--set", "agent.channels_last=true"]) == 0
    assert _image_dtype(tmp_path / "bf16") == "bfloat16"
    envs, loaded = race_envs(tmp_path / "bf16", "tokyo", 1, 1, "cpu", opponents=0)
    encoders = [m for m in loaded.actor.modules() if type(m).__name__ == "ImageEncoder"]
    assert encoders and all(e.autocast and e.channels_last for e in encoders)
    assert len(evaluate(tmp_path / "bf16", "tokyo", episodes=1, seed=0, laps=1, progress=False, max_time_s=3.0)) == 1
    capsys.readouterr()
    assert cli.main(["export", "--checkpoint", str(vision), "--out", str(tmp_path / "f16"),
                     "--set", "agent.image_dtype=float16"]) == 2
    assert "image_dtype" in capsys.readouterr().err and not (tmp_path / "f16").exists()


def _image_dtype(run) -> str:
    return checkpoints.run_preset(run).agent.image_dtype
