"""Kickstarting (``train.kickstart_weight``): RL whose actor loss keeps the actor near a teacher's policy on the
states RL collects (smoke preset, seconds)."""
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from gtvision.agent.distill import policy_labels
from gtvision.agent.loop import LocalTrainer
from gtvision.agent.presets import get_preset, resolve
from gtvision.agent.qrsac import QRSACAgent
from gtvision.checkpoints import load_actor
from gtvision.training import RunConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")
ENV = {"num_opponents": 2, "max_time_s": 3.0, "start_speed_mps": 20.0}


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=128, env_kwargs=ENV,
                             seed=1), tmp_path_factory.mktemp("kick") / "teacher", progress=False)
    return out


def _trainer(teacher_run, weight, seed=0):
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    preset = resolve("smoke", overrides={"train.kickstart_weight": weight, "train.learning_starts": 0})
    teacher = load_actor(teacher_run, envs.single_observation_space, envs.single_action_space) if weight else None
    return LocalTrainer(envs, preset, seed=seed, teacher=teacher), teacher


def test_every_collected_row_carries_the_teachers_policy(teacher_run):
    trainer, teacher = _trainer(teacher_run, 1.0)
    step = trainer.rollout.step()
    trainer.store(step)
    expected = policy_labels(teacher, step.obs)
    assert expected.shape == (2, 2 * trainer.agent.action_dim) and np.abs(expected).sum() > 0
    rows = trainer.replay.storage["labels"][np.arange(2) * trainer.replay.stream_capacity]  # each stream's first row
    np.testing.assert_allclose(rows, expected, rtol=1e-6)
    trainer.close()


def test_the_kickstart_term_pulls_the_actor_to_the_teacher_and_plain_rl_does_not(teacher_run):
    kls = {}
    for weight in (0.0, 100.0):
        trainer, _ = _trainer(teacher_run, 100.0, seed=0)  # the same data and labels for both
        trainer.start_collection(48)
        batch = trainer.replay.sample()
        bi, L = trainer.agent.burn_in, batch["mask"].shape[1]

        def kl():
            with torch.no_grad():
                feats, _ = trainer.agent.actor.torso.unroll(batch["obs"], batch["hidden"], batch["first"], burn_in=bi)
                return float(trainer.agent.teacher_kl(feats[:, :L], batch["labels"][:, bi:bi + L], batch["mask"]))

        before = kl()
        for _ in range(30):
            metrics = trainer.agent.update(batch, kickstart_weight=weight)
        kls[weight] = (before, kl())
        assert ("losses/kickstart_kl" in metrics) == (weight > 0)
        trainer.close()
    assert kls[0.0][0] == pytest.approx(kls[100.0][0])
    assert kls[100.0][1] < 0.5 * kls[100.0][0]  # pulled to the teacher
    assert kls[100.0][1] < 0.5 * kls[0.0][1]    # ... where RL alone is not


def test_a_run_from_an_actor_kickstarted_by_a_teacher(tmp_path, teacher_run):
    """`gtvision train --init A --teacher T --set train.kickstart_weight=W`: RL from A's networks, T labelling the
    collected states and, with demonstrations, the BIAI's; no DAgger round."""
    overrides = {"train.reset_epoch": None, "train.kickstart_weight": 1.0, "train.demo_steps": 32}
    out, history = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=128, env_kwargs=ENV,
                                   init=str(teacher_run), teacher=str(teacher_run), variant="gt_sophy",
                                   overrides=overrides), tmp_path / "kick", progress=False)
    assert history and history[-1]["charts/env_steps"] == 128
    assert any(np.isfinite(r.get("losses/kickstart_kl", np.nan)) for r in history)
    assert not (out / "distill.jsonl").exists()
    saved = json.loads((out / "config.json").read_text())
    assert saved["run"]["teacher"] == str(teacher_run) and saved["init_checkpoint"]


def test_kickstarting_needs_a_weight_and_a_teacher_together(tmp_path, teacher_run):
    with pytest.raises(ValueError, match="kickstart_weight=0.5 keeps the actor near a teacher"):
        train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, env_kwargs=ENV,
                        overrides={"train.kickstart_weight": 0.5}), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="does not kickstart"):
        train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, env_kwargs=ENV, teacher=str(teacher_run)),
              tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="kickstarting needs both"):
        LocalTrainer(gym.make_vec("gtvision/Tokyo-v0", num_envs=1, **ENV),
                     resolve("smoke", overrides={"train.kickstart_weight": 1.0}))
    with pytest.raises(ValueError, match="kickstart_weight"):
        resolve("smoke", overrides={"train.kickstart_weight": -1.0})


def test_a_recurrent_teacher_is_refused():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=1, **ENV)
    preset = get_preset("smoke")
    recurrent = QRSACAgent(envs.single_observation_space, envs.single_action_space, preset.agent, acting_only=True)
    obs, _ = envs.reset(seed=0)
    with pytest.raises(ValueError, match="memoryless"):
        policy_labels(recurrent, obs)
    envs.close()


def test_a_layered_teacher_labels_its_shielded_mean_and_a_seen_shield_student_its_policy_as_it_is(teacher_run):
    import dataclasses
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    teacher = load_actor(teacher_run, envs.single_observation_space, envs.single_action_space)
    with torch.no_grad():
        teacher.actor.head[-1].bias[1] = 1.5  # full throttle
    obs, _ = envs.reset(seed=0)
    grid = np.zeros_like(obs["opponent_grid"])
    grid[0, 0, :3] = [4.18 + 0.5, 0.0, -3.0]  # race 0: closing fast on a car just ahead in lane; race 1: clear road
    obs = {**obs, "opponent_grid": grid, "proprio": np.zeros_like(obs["proprio"])}
    plain = policy_labels(teacher, obs)
    teacher.config = dataclasses.replace(teacher.config, gap_keeper=True)
    kept, raw = policy_labels(teacher, obs), policy_labels(teacher, obs, shielded=False)
    assert np.tanh(kept[0, 1]) < np.tanh(plain[0, 1]) - 0.5        # the gap keeper's ceiling in the label
    np.testing.assert_allclose(kept[1], plain[1], rtol=1e-6)       # the clear road: untouched
    np.testing.assert_allclose(raw, plain, rtol=1e-6)              # without the layers: the policy as it is
    envs.close()


def test_the_trainer_labels_a_seen_shield_actor_with_the_teachers_policy_without_its_layers(teacher_run):
    import dataclasses
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    teacher = load_actor(teacher_run, envs.single_observation_space, envs.single_action_space)
    teacher.config = dataclasses.replace(teacher.config, gap_keeper=True)
    with torch.no_grad():
        teacher.actor.head[-1].bias[1] = 1.5  # full throttle, which the gap keeper caps in race 0
    obs, _ = envs.reset(seed=0)
    grid = np.zeros_like(obs["opponent_grid"])
    grid[0, 0, :3] = [4.18 + 0.5, 0.0, -3.0]
    obs = {**obs, "opponent_grid": grid, "proprio": np.zeros_like(obs["proprio"])}
    assert not np.allclose(policy_labels(teacher, obs), policy_labels(teacher, obs, shielded=False))
    for seen, shielded in ((False, True), (True, False)):
        preset = resolve("smoke", overrides={"train.kickstart_weight": 1.0, "agent.seen_shield": seen})
        trainer = LocalTrainer(gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV), preset, teacher=teacher)
        np.testing.assert_allclose(trainer.labels(obs), policy_labels(teacher, obs, shielded=shielded), rtol=1e-6)
        trainer.close()
    envs.close()
