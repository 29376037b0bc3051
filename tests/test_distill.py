"""DAgger from a privileged teacher into the vision actor (``gtvision.agent.distill``; smoke preset, seconds)."""
import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import gtvision.agent.distill as distill_mod
from gtvision.agent.distill import TeacherStudent, adopt_critics, distill, distill_loss
from gtvision.agent.presets import get_preset
from gtvision.agent.qrsac import QRSACAgent
from gtvision.agent.rollout import Rollout
from gtvision.checkpoints import complete_checkpoints, load_actor, load_state
from gtvision.training import DISTILL_DIR, RunConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")
ENV = {"num_opponents": 2, "max_time_s": 3.0, "start_speed_mps": 20.0}


def _agents(envs, seed=0):
    torch.manual_seed(seed)
    student_preset = get_preset("smoke")
    teacher_preset = get_preset("smoke", "gt_sophy")
    space, act = envs.single_observation_space, envs.single_action_space
    student = QRSACAgent(space, act, student_preset.agent, burn_in=student_preset.replay.burn_in)
    teacher = QRSACAgent(space, act, teacher_preset.agent, burn_in=teacher_preset.replay.burn_in)
    with torch.no_grad():  # a teacher that steers and drives unlike a fresh student
        teacher.actor.head[-1].bias[:2] = torch.tensor([0.8, 1.5])
    return student, teacher, student_preset


def _teacher_buffer(student, teacher, envs, preset, steps):
    """A distillation buffer of ``steps`` steps per environment that the teacher drove, labelled as in round 0."""
    buf = distill_mod._buffer(student, envs, preset.replay, steps, 0)
    driver = TeacherStudent(teacher, student, "teacher")
    rollout = Rollout(envs, driver, seed=0)
    for _ in range(steps):
        s = rollout.step()
        buf.add(s.obs, s.hidden[:, :student.hidden_size], s.action, s.reward, s.terminated, s.truncated, s.next_obs,
                labels=driver.labels)
    return buf


def test_after_the_first_round_the_student_trains_only_on_states_it_visited_itself(monkeypatch):
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, preset = _agents(envs)
    log, driving = [], {}

    class SpyReplay(distill_mod.SequenceReplay):
        def add(self, *args, **kwargs):
            log.append(("add", id(self), driving["now"]))
            return super().add(*args, **kwargs)

        def sample(self, *args, **kwargs):
            log.append(("sample", id(self), None))
            return super().sample(*args, **kwargs)

    act = TeacherStudent.act

    def spy_act(self, obs, hidden, eval_mode=True):
        driving["now"] = self.driver
        return act(self, obs, hidden, eval_mode)

    monkeypatch.setattr(distill_mod, "SequenceReplay", SpyReplay)
    monkeypatch.setattr(TeacherStudent, "act", spy_act)
    buffers = []
    monkeypatch.setattr(distill_mod, "_buffer", lambda *a, _make=distill_mod._buffer: buffers.append(_make(*a)) or buffers[-1])
    train_cfg = dataclasses.replace(preset.train, distill_rounds=3, distill_steps=64, distill_updates=3)
    records = distill(student, teacher, envs, train_cfg, preset.replay, seed=1)
    assert [r["distill/driver"] for r in records] == ["teacher", "student", "student"]
    first, own = buffers
    drivers = {b: {d for kind, i, d in log if kind == "add" and i == id(b)} for b in buffers}
    assert drivers == {first: {"teacher"}, own: {"student"}}
    # training batches: 3 from the teacher's states (round 0), then 6 from the student's own, none mixed
    assert [i for kind, i, _ in log if kind == "sample"] == [id(first)] * 3 + [id(own)] * 6
    assert records[-1]["distill/states"] == len(own) >= 2 * 64
    assert all(np.isfinite(r["distill/progress_m"]) for r in records)
    # what the buffers hold: the teacher's actions in round 0, the student's (not its labels) later
    A = student.action_dim
    for buf, teacher_drove in ((first, True), (own, False)):
        live = np.concatenate([i * buf.stream_capacity + np.arange(n) for i, n in enumerate(buf.size)])
        live = live[~buf.storage["last"][live]]
        labelled = student._to_env_action(torch.tanh(torch.as_tensor(buf.storage["labels"][live, :A]))).numpy()
        same = np.isclose(buf.storage["action"][live], labelled, atol=1e-5).all(-1)
        assert same.all() if teacher_drove else not same.any()
    envs.close()


def test_a_sampling_student_drives_its_gaussian_and_the_teacher_still_its_mean():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, _ = _agents(envs)
    obs, _ = envs.reset(seed=0)
    hidden = TeacherStudent(teacher, student, "student").initial_hidden(2)

    def actions(driver, seed=None, draws=200):
        ts = TeacherStudent(teacher, student, driver, None if seed is None else torch.Generator().manual_seed(seed))
        return np.stack([ts.act(obs, hidden)[0] for _ in range(draws)])

    mean = actions("student", draws=2)
    assert (mean == mean[0]).all()
    drawn = actions("student", seed=3)
    assert (drawn.std(0) > 0.05).all() and np.array_equal(drawn, actions("student", seed=3))
    # the spread of the draws (before tanh) is the student's own
    with torch.no_grad():
        features, _ = student.step_features(obs, hidden[:, :student.hidden_size])
        s_mean, s_log_std = student.actor.distribution(features)
    low, high = envs.single_action_space.low, envs.single_action_space.high
    pre_tanh = np.arctanh(np.clip(2 * (drawn - low) / (high - low) - 1, -0.999999, 0.999999))
    np.testing.assert_allclose(pre_tanh.std(0), torch.exp(s_log_std).numpy(), rtol=0.2)
    taught = actions("teacher", seed=3, draws=2)
    assert (taught == taught[0]).all()
    envs.close()


@pytest.mark.parametrize("run_on", [False, True])
def test_continued_rounds_run_the_episodes_on_instead_of_restarting_them(monkeypatch, run_on):
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **{**ENV, "max_time_s": 60.0})
    student, teacher, preset = _agents(envs)
    resets, buffers = [], []
    reset = Rollout.reset
    monkeypatch.setattr(Rollout, "reset", lambda self, seed=None: resets.append(seed) or reset(self, seed))
    monkeypatch.setattr(distill_mod, "_buffer", lambda *a, _make=distill_mod._buffer: buffers.append(_make(*a)) or buffers[-1])
    train_cfg = dataclasses.replace(preset.train, distill_rounds=3, distill_steps=40, distill_updates=1,
                                    distill_continue=run_on)
    records = distill(student, teacher, envs, train_cfg, preset.replay, seed=1)
    progress = [r["distill/progress_m"] for r in records]  # where the cars are at each round's end
    own = buffers[1]
    starts = int(own.storage["first"][np.concatenate([i * own.stream_capacity + np.arange(n)
                                                      for i, n in enumerate(own.size)])].sum())
    if run_on:  # one reset; 6 s of each race; the student's two rounds one stretch of each episode
        assert resets == [1] and progress[2] > 2.5 * progress[0] and starts == 2
    else:  # every round from the start: 2 s of each race, the student's rounds two stretches
        assert resets == [1, 2, 3] and progress[2] < 1.5 * progress[0] and starts == 4
    envs.close()


@pytest.mark.parametrize("divergence", ["forward", "reverse"])
def test_the_loss_pulls_the_student_to_the_teachers_policy(divergence):
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, preset = _agents(envs)
    batch = _teacher_buffer(student, teacher, envs, preset, 40).sample()
    opt = torch.optim.Adam(student.actor.parameters(), lr=3e-3)
    before = float(distill_loss(student, batch, divergence).detach())
    for _ in range(60):
        loss = distill_loss(student, batch, divergence)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(distill_loss(student, batch, divergence).detach()) < 0.25 * before
    # the KL of identical Gaussians is zero, and it grows with the gap between the means
    m, s = torch.zeros(3, 2), torch.full((3, 2), -1.0)
    assert torch.allclose(distill_mod.gaussian_kl(m, s, m, s), torch.zeros(3))
    assert (distill_mod.gaussian_kl(m, s, m + 0.5, s) < distill_mod.gaussian_kl(m, s, m + 1.0, s)).all()
    envs.close()


def test_the_power_mean_weighs_the_worst_imitated_states_more(monkeypatch):
    """`train.distill_power` p: the loss is (mean KL^p)^(1/p) over the trained rows (p=1: the mean, as before), so
    a state imitated twice as badly as another pulls 2^(p-1) times harder on the student; p < 1 is refused."""
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, preset = _agents(envs)
    batch = _teacher_buffer(student, teacher, envs, preset, 20).sample()
    mask = batch["mask"]
    kls = torch.rand(mask.shape, generator=torch.Generator().manual_seed(0)) + 0.1
    monkeypatch.setattr(distill_mod, "gaussian_kl", lambda *a: kls)
    mean = float((kls * mask).sum() / mask.sum())
    assert float(distill_loss(student, batch, "forward")) == pytest.approx(mean)
    assert float(distill_loss(student, batch, "forward", power=2.0)) == pytest.approx(
        float(((kls ** 2 * mask).sum() / mask.sum()) ** 0.5))
    assert float(distill_loss(student, batch, "forward", power=2.0)) > mean  # the power mean exceeds the mean
    # the weights: d loss / d KL_i is proportional to KL_i^(p-1)
    k = torch.tensor([1.0, 2.0], requires_grad=True)
    monkeypatch.setattr(distill_mod, "gaussian_kl", lambda *a: k.view(1, 2).expand(*mask.shape[:1], 2))
    one_row = dict(batch, mask=torch.ones(mask.shape[0], 2))
    monkeypatch.setattr(student.actor, "distribution", lambda f: (f[..., :2], f[..., :2]))
    (grad,) = torch.autograd.grad(distill_loss(student, one_row, "forward", power=3.0), k)
    assert float(grad[1] / grad[0]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="train.distill_power=0.5: must be >= 1"):
        dataclasses.replace(preset.train, distill_power=0.5)
    envs.close()


def test_the_reverse_divergence_weighs_the_students_mean_by_the_teachers_precision(monkeypatch):
    """KL(student || teacher): a student ten times wider than its teacher and 0.1 off its mean is pulled to the
    mean 100 times harder than under KL(teacher || student), and distill_loss passes the student first."""
    t_mean, t_log_std = torch.zeros(1, 2), torch.full((1, 2), float(np.log(0.1)))
    mean, log_std = torch.full((1, 2), 0.1, requires_grad=True), torch.zeros(1, 2)
    grads = {}
    for name, args in (("forward", (t_mean, t_log_std, mean, log_std)),
                       ("reverse", (mean, log_std, t_mean, t_log_std))):
        grads[name], = torch.autograd.grad(distill_mod.gaussian_kl(*args).sum(), mean)
    torch.testing.assert_close(grads["forward"], torch.full((1, 2), 0.1))
    torch.testing.assert_close(grads["reverse"], torch.full((1, 2), 10.0))
    # the wiring: "reverse" hands gaussian_kl the student's Gaussian (with gradients) first, the labels second
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, preset = _agents(envs)
    buf = _teacher_buffer(student, teacher, envs, preset, 20)
    calls = []
    kl = distill_mod.gaussian_kl
    monkeypatch.setattr(distill_mod, "gaussian_kl", lambda *a: calls.append([x.requires_grad for x in a]) or kl(*a))
    batch = buf.sample()
    distill_loss(student, batch, "forward")
    distill_loss(student, batch, "reverse")
    assert calls == [[False, False, True, True], [True, True, False, False]]
    with pytest.raises(ValueError, match="unknown divergence 'js'"):
        distill_loss(student, batch, "js")
    with pytest.raises(ValueError, match="unknown distill_divergence 'js'; valid: 'forward', 'reverse'"):
        dataclasses.replace(preset.train, distill_divergence="js")
    envs.close()


def test_a_run_with_a_teacher_distils_then_trains_with_the_teachers_critics(tmp_path):
    teacher_run, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=128,
                                     env_kwargs=ENV, seed=1), tmp_path / "teacher", progress=False)
    overrides = {"train.distill_rounds": 2, "train.distill_steps": 32, "train.distill_updates": 2,
                 "train.reset_epoch": None}
    out, history = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=128, env_kwargs=ENV,
                                   teacher=str(teacher_run), overrides=overrides), tmp_path / "student", progress=False)
    rounds = [json.loads(line) for line in (out / "distill.jsonl").read_text().splitlines()]
    assert [r["distill/round"] for r in rounds] == [0, 1] and all(np.isfinite(r["distill/kl"]) for r in rounds)
    assert all(r["distill/progress_m"] > 0 for r in rounds)  # 1.6 s of each round's episodes from a rolling start
    saved = json.loads((out / "config.json").read_text())
    assert saved["teacher_critics_adopted"] is True and saved["distill_seconds"] > 0
    assert history and history[-1]["charts/env_steps"] == 128
    assert "epoch_000000" in [p.name for p in complete_checkpoints(out)]  # the distilled agent before RL
    # the student of every round is kept, a run directory of its own (epoch N: after N rounds); the last is
    # the distilled agent of epoch 0, and each loads as the actor evaluation and `select` race
    kept = complete_checkpoints(out / DISTILL_DIR)
    assert [p.name for p in kept] == ["epoch_000001", "epoch_000002"]
    distilled = load_state(out / "checkpoints" / "epoch_000000")["agent"]["actor"]
    last = load_state(kept[-1])["agent"]["actor"]
    assert all(torch.equal(distilled[k], last[k]) for k in distilled)
    assert not all(torch.equal(load_state(kept[0])["agent"]["actor"][k], last[k]) for k in last)
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=1, **ENV)
    first = load_actor(kept[0], envs.single_observation_space, envs.single_action_space).actor.state_dict()
    saved_first = load_state(kept[0])["agent"]["actor"]
    assert all(torch.equal(first[k], saved_first[k]) for k in saved_first)  # round 1's student, not the run's last
    envs.close()
    with pytest.raises(ValueError, match="distils no round"):
        train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, env_kwargs=ENV, teacher=str(teacher_run)),
              tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="reset at epoch 2 would discard"):
        train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, env_kwargs=ENV, teacher=str(teacher_run),
                        overrides={"train.distill_rounds": 1}), tmp_path / "z", progress=False)


def test_critics_are_adopted_only_when_they_read_the_same_inputs_alike():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=1, **ENV)
    student, _, _ = _agents(envs)
    full = QRSACAgent(envs.single_observation_space, envs.single_action_space, get_preset("smoke", "gt_sophy").agent)
    state = {"critics": full.critics.state_dict(), "critic_targets": full.critic_targets.state_dict(),
             "log_alpha": torch.tensor(-3.0)}
    assert adopt_critics(student, state, full.config)
    for a, b in zip(student.critics.parameters(), full.critics.parameters()):
        assert torch.equal(a, b)
    assert student.alpha == pytest.approx(np.exp(-3.0))
    other = dataclasses.replace(full.config, critic_width=full.config.critic_width * 2)
    assert not adopt_critics(student, state, other)
    assert not adopt_critics(student, {"actor": {}}, full.config)  # exported without critics
    envs.close()


def test_the_make_race_chain_selects_exports_and_distils_only(tmp_path, capsys):
    """`make race`'s steps on the smoke preset: `select --export` keeps the chosen teacher with its critics, and
    `train --teacher ... --minutes 0` distils it without any RL (the distilled agent is the run's result), and
    `select RUN/distill --export` keeps the picked round as an agent that races."""
    from gtvision import cli
    from gtvision.checkpoints import checkpoint_epoch, load_state

    env_args = [a for k, v in ENV.items() for a in ("--env-arg", f"{k}={v}")]
    teacher_run, teacher = tmp_path / "gt_sophy", tmp_path / "teacher"
    assert cli.main(["train", "--preset", "smoke", "--variant", "gt_sophy", *env_args, "--total-steps", "128",
                     "--checkpoint-every", "1", "--keep-checkpoints", "10", "--seed", "1", "--quiet",
                     "--out", str(teacher_run)]) == 0
    assert cli.main(["select", str(teacher_run), "--episodes", "1", "--laps", "1", "--max-collision", "inf",
                     "--from-epoch", "2", "--quiet", "--export", str(teacher)]) == 0
    chosen = capsys.readouterr().out.split("selected: ")[1].split()[0]
    (exported,) = complete_checkpoints(teacher)
    assert exported.name == chosen.rsplit("/", 1)[-1] and checkpoint_epoch(exported) >= 2
    assert set(load_state(exported, map_location="cpu")["agent"]) == {"actor", "critics", "critic_targets", "log_alpha"}
    student = tmp_path / "vision"
    assert cli.main(["train", "--preset", "smoke", "--teacher", str(teacher), "--set", "train.reset_epoch=null",
                     "--set", "train.distill_rounds=1", "--set", "train.distill_steps=32",
                     "--set", "train.distill_updates=2", "--set", "train.demo_steps=64", *env_args, "--minutes", "0",
                     "--quiet", "--out", str(student)]) == 0
    assert [p.name for p in complete_checkpoints(student)] == ["epoch_000000"]
    assert (student / "metrics.jsonl").read_text() == ""  # no RL epoch
    saved = json.loads((student / "config.json").read_text())
    assert saved["teacher_critics_adopted"] is True and saved["demo_seconds"] is None  # no demonstrations for no RL
    # then the round is picked by IV-D's rule and exported as the agent: a round holds its actor only
    agent = tmp_path / "agent"
    capsys.readouterr()
    assert cli.main(["select", str(student / "distill"), "--episodes", "1", "--laps", "1", "--max-collision", "inf",
                     "--quiet", "--export", str(agent)]) == 0
    assert "selected: " + str(student / "distill" / "checkpoints" / "epoch_000001") in capsys.readouterr().out
    (picked,) = complete_checkpoints(agent)
    assert set(load_state(picked, map_location="cpu")["agent"]) == {"actor"}
    assert cli.main(["evaluate", "--checkpoint", str(agent), "--episodes", "1", "--laps", "1", "--quiet",
                     "--out", str(tmp_path / "eval")]) == 0
    with pytest.raises(ValueError, match="max_minutes=0 trains nothing"):
        RunConfig(scenario="tokyo", preset="smoke", max_minutes=0)



def test_a_teacher_with_a_gap_keeper_labels_its_shielded_policy():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, _ = _agents(envs)
    obs, _ = envs.reset(seed=0)
    grid = np.zeros_like(obs["opponent_grid"])
    grid[0, 0, :3] = [4.18 + 0.5, 0.0, -3.0]  # race 0: closing fast on a car just ahead in lane; race 1: clear road
    obs = {**obs, "opponent_grid": grid, "proprio": np.zeros_like(obs["proprio"])}
    plain = TeacherStudent(teacher, student, "teacher")
    action, _ = plain.act(obs, plain.initial_hidden(2))
    teacher.config = dataclasses.replace(teacher.config, gap_keeper=True)
    kept = TeacherStudent(teacher, student, "teacher")
    kept_action, _ = kept.act(obs, kept.initial_hidden(2))
    assert action[0, 1] > 0.5 and kept_action[0, 1] == pytest.approx(-0.7125, abs=1e-4)   # the layer's ceiling
    assert np.tanh(kept.labels[0, 1]) == pytest.approx(-0.7125, abs=1e-4)              # ... in the label's mean
    np.testing.assert_allclose(kept.labels[1], plain.labels[1])                       # the clear road: untouched
    np.testing.assert_allclose(kept.labels[:, [0, 2, 3]], plain.labels[:, [0, 2, 3]])  # steering, spreads


def test_a_teacher_with_a_side_keeper_labels_its_bounded_steering():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, _ = _agents(envs)
    obs, _ = envs.reset(seed=0)
    grid = np.zeros_like(obs["opponent_grid"])
    grid[0, 0, :4] = [1.0, 1.95 + 0.6, 0.0, -1.0]  # race 0: a car alongside on the left closing at 1 m/s
    obs = {**obs, "opponent_grid": grid}
    plain = TeacherStudent(teacher, student, "teacher")
    action, _ = plain.act(obs, plain.initial_hidden(2))
    teacher.config = dataclasses.replace(teacher.config, side_keeper=True)
    kept = TeacherStudent(teacher, student, "teacher")
    kept_action, _ = kept.act(obs, kept.initial_hidden(2))
    bound = min(float(action[0, 0]), -0.48)                     # -0.6 (1 - 2 (0.6 - 0.5))
    assert kept_action[0, 0] == pytest.approx(bound, abs=1e-4)
    assert np.tanh(kept.labels[0, 0]) == pytest.approx(bound, abs=1e-4)
    np.testing.assert_allclose(kept.labels[1], plain.labels[1])                       # the clear road: untouched
    np.testing.assert_allclose(kept.labels[:, 1:], plain.labels[:, 1:])               # throttle, spreads


def _seen_shield_student(envs, seed=0):
    """A smoke vision student with a seen shield, and a teacher with both safety layers."""
    student, teacher, preset = _agents(envs, seed)
    config = dataclasses.replace(preset.agent, seen_shield=True)
    student = QRSACAgent(envs.single_observation_space, envs.single_action_space, config, burn_in=preset.replay.burn_in)
    teacher.config = dataclasses.replace(teacher.config, gap_keeper=True, side_keeper=True)
    return student, teacher, preset


def test_a_seen_shield_learns_the_teachers_layers_bounds_and_its_policy_the_unshielded_mean():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, preset = _seen_shield_student(envs)
    obs, _ = envs.reset(seed=0)
    grid = np.zeros_like(obs["opponent_grid"])
    grid[0, 0, :3] = [4.18 + 0.5, 0.0, -3.0]  # race 0: closing fast on a car just ahead in lane; race 1: clear road
    obs = {**obs, "opponent_grid": grid, "proprio": np.zeros_like(obs["proprio"])}
    driver = TeacherStudent(teacher, student, "teacher")
    action, _ = driver.act(obs, driver.initial_hidden(2))
    assert action[0, 1] == pytest.approx(-0.7125, abs=1e-4)                  # the teacher drives through its layers
    assert driver.labels.shape == (2, 2 * 2 + 3)
    assert np.tanh(driver.labels[0, 1]) > 0.5                                 # the label: its policy, unshielded
    np.testing.assert_allclose(driver.labels[:, 4:], [[-0.7125, -1, 1], [1, -1, 1]], atol=1e-4)  # and the bounds
    with pytest.raises(ValueError, match="learns its teacher's safety layers; this teacher has none"):
        TeacherStudent(_agents(envs)[1], student, "teacher")


def test_a_seen_shield_is_trained_by_distillation_and_bounds_the_students_action():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, preset = _seen_shield_student(envs)
    buf = _teacher_buffer(student, teacher, envs, preset, 24)
    batch = buf.sample()
    with torch.no_grad():  # a teacher whose layers always cap the throttle at -0.5 (a fixed target to learn)
        batch["labels"][..., 4:] = torch.tensor([-0.5, -1.0, 1.0])
    opt = torch.optim.Adam(student.actor.parameters(), lr=3e-3)
    _, before = distill_mod.distill_terms(student, batch)
    for _ in range(60):
        loss = distill_loss(student, batch, shield_weight=10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, after = distill_mod.distill_terms(student, batch)
    assert float(after.detach()) < 0.1 * float(before.detach())
    # the student acts through the bounds its head reads off its own view: the throttle capped near -0.5
    obs, _ = envs.reset(seed=3)
    action, _ = student.act(obs, student.initial_hidden(2), eval_mode=True)
    features, _ = student.step_features(obs, student.initial_hidden(2))
    ceiling = student.actor.shield_bounds(features)[:, 0].detach().numpy()
    assert np.all(action[:, 1] <= ceiling + 1e-6) and np.all(ceiling < -0.3)
    # ... and reads neither course points nor opponents: the privileged features change, its action does not
    moved = {**obs, "opponent_grid": obs["opponent_grid"] + 5.0, "course_points": obs["course_points"] + 5.0}
    np.testing.assert_array_equal(student.act(moved, student.initial_hidden(2), eval_mode=True)[0], action)


def test_the_layers_bounds_reproduce_the_gap_and_side_keepers():
    from gtvision.agent.shield import gap_keep, keep_bounds, layer_bounds, side_keep
    g = torch.Generator().manual_seed(0)
    grid = torch.randn(256, 14, 6, generator=g) * torch.tensor([4.0, 2.5, 3.0, 1.5, 2.0, 1.0])
    grid[torch.rand(256, 14, generator=g) < 0.5] = 0.0  # empty rows
    proprio = torch.randn(256, 18, generator=g)
    action = torch.rand(256, 2, generator=g) * 2 - 1
    for gap, side in [(True, False), (False, True), (True, True)]:
        want = action
        if gap:
            want = gap_keep(want, grid, proprio, 1.0, 5.0)
        if side:
            want = side_keep(want, grid)
        got = keep_bounds(action, layer_bounds(grid, proprio, gap, side, 1.0, 5.0))
        torch.testing.assert_close(got, want)
        assert (got != action).any()


@pytest.mark.parametrize("recovery", [False, True])
def test_a_student_with_a_recovery_reflex_has_it_in_daggers_rollouts(recovery):
    """The driver carries the student's configuration, so a student trained with ``agent.recovery`` backs off a
    barrier in DAgger's episodes as in its races, and its teacher labels the states the reflex leaves it in."""
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, _ = _agents(envs)
    student.config = dataclasses.replace(student.config, recovery=recovery, recovery_trigger_s=0.1)
    rollout = Rollout(envs, TeacherStudent(teacher, student, "student"), seed=0)
    assert (rollout.reflex is not None) == recovery
    rollout.obs = {**rollout.obs, "proprio": np.zeros_like(rollout.obs["proprio"])}   # both cars standing
    step = rollout.step()
    if recovery:   # the reflex's first step: full brake (reverse) whatever the student wanted
        np.testing.assert_allclose(step.action[:, 1], -1.0)
    else:
        assert not np.allclose(step.action[:, 1], -1.0)


def test_rescue_labels_follow_the_biai_where_the_car_is_in_trouble_and_the_teacher_elsewhere():
    """``train.distill_rescue``: a car spun round (facing the wrong way) is labelled with the BIAI's way out, in the
    labels and in round 0's driving; a car on its way along the course keeps the teacher's labels."""
    for spun in (True, False):
        kwargs = {**ENV, "learner_yaw_deg": 180.0, "start_speed_mps": 0.0} if spun else ENV
        envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **kwargs)
        student, teacher, _ = _agents(envs)
        obs, _ = envs.reset(seed=0)
        biai, trouble = envs.unwrapped.biai_rescue()
        assert trouble.all() if spun else not trouble.any(), trouble
        plain, rescued = TeacherStudent(teacher, student, "teacher"), \
            TeacherStudent(teacher, student, "teacher", rescue=envs.unwrapped.biai_rescue)
        hidden = plain.initial_hidden(2)
        plain_action, _ = plain.act(obs, hidden)
        rescued_action, _ = rescued.act(obs, hidden)
        A = student.action_dim
        np.testing.assert_array_equal(rescued.labels[:, A:], plain.labels[:, A:])   # the log std stays the teacher's
        if spun:
            limit = distill_mod.RESCUE_ACTION_LIMIT
            np.testing.assert_allclose(np.tanh(rescued.labels[:, :A]), np.clip(biai, -limit, limit), atol=1e-5)
            np.testing.assert_allclose(rescued_action, np.clip(biai, -limit, limit), atol=1e-4)
            assert (np.abs(biai) > limit).any()   # the BIAI's way out is bang-bang: the clip acts
            assert not np.allclose(plain_action, rescued_action)
        else:
            np.testing.assert_array_equal(rescued.labels, plain.labels)
            np.testing.assert_array_equal(rescued_action, plain_action)
        envs.close()


def test_rescue_labels_need_a_racing_environment():
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, preset = _agents(envs)
    train_cfg = dataclasses.replace(preset.train, distill_rounds=1, distill_steps=2, distill_updates=0,
                                    distill_rescue=True)

    class NoBIAI:
        def __init__(self, inner):
            self.inner, self.num_envs = inner, inner.num_envs

        @property
        def unwrapped(self):
            return self

    with pytest.raises(ValueError, match="distill_rescue.*biai_rescue"):
        distill(student, teacher, NoBIAI(envs), train_cfg, preset.replay)
    envs.close()


def test_in_traffic_reads_the_opponent_grid_ahead_and_behind():
    grid = torch.zeros(5, 14, 6)
    grid[0, 0, :2] = torch.tensor([30.0, 1.0])    # 30 m ahead: traffic
    grid[1, 0, :2] = torch.tensor([60.0, 0.5])    # 60 m ahead: a clear road
    grid[2, 7, :2] = torch.tensor([-3.0, 2.0])    # alongside, just behind: traffic
    grid[3, 7, :2] = torch.tensor([-12.0, 0.0])   # 12 m behind: a clear road
    # row 4: no opponent on the grid at all
    np.testing.assert_array_equal(distill_mod.in_traffic({"opponent_grid": grid}, 40.0, 5.0).numpy(),
                                  [True, False, True, False, False])
    np.testing.assert_array_equal(distill_mod.in_traffic({"opponent_grid": grid}, 75.0, 20.0).numpy(),
                                  [True, True, True, True, False])


def test_a_clear_road_teacher_labels_and_drives_the_states_out_of_traffic():
    """``RunConfig.clear_teacher``: out of traffic the clear-road teacher's policy is the label (and round 0's
    action), in traffic the run's teacher's; the mask is :func:`in_traffic`'s."""
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    student, teacher, _ = _agents(envs)
    _, clear_teacher, _ = _agents(envs, seed=1)
    with torch.no_grad():
        clear_teacher.actor.head[-1].bias[:2] = torch.tensor([-0.6, 0.3])
    obs, _ = envs.reset(seed=0)
    traffic = distill_mod.in_traffic(obs, 40.0, 5.0).numpy()
    assert traffic.all()   # a grid start: cars all round
    hidden = TeacherStudent(teacher, student, "teacher").initial_hidden(2)
    labels, actions = {}, {}
    for name, driver in {"teacher": TeacherStudent(teacher, student, "teacher"),
                         "clear": TeacherStudent(clear_teacher, student, "teacher"),
                         "near": TeacherStudent(teacher, student, "teacher", clear_teacher=clear_teacher,
                                                clear_m=(40.0, 5.0)),
                         "far": TeacherStudent(teacher, student, "teacher", clear_teacher=clear_teacher,
                                               clear_m=(0.0, 0.0))}.items():
        actions[name], _ = driver.act(obs, hidden)
        labels[name] = driver.labels
        if name in ("near", "far"):
            np.testing.assert_array_equal(driver.clear, name == "far")
    assert not np.allclose(labels["teacher"], labels["clear"])
    np.testing.assert_array_equal(labels["near"], labels["teacher"])
    np.testing.assert_array_equal(actions["near"], actions["teacher"])
    np.testing.assert_array_equal(labels["far"], labels["clear"])
    np.testing.assert_array_equal(actions["far"], actions["clear"])
    with pytest.raises(ValueError, match="memoryless"):
        TeacherStudent(teacher, student, "teacher", clear_teacher=student)
    envs.close()


def test_a_run_with_a_clear_road_teacher_records_its_share_of_the_labels(tmp_path):
    teacher_run, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=64,
                                     env_kwargs=ENV, seed=1), tmp_path / "teacher", progress=False)
    overrides = {"train.distill_rounds": 2, "train.distill_steps": 32, "train.distill_updates": 1,
                 "train.reset_epoch": None, "train.distill_clear_ahead_m": 0.0, "train.distill_clear_behind_m": 0.0}
    out, _ = train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, max_minutes=0, env_kwargs=ENV,
                             teacher=str(teacher_run), clear_teacher=str(teacher_run), overrides=overrides),
                   tmp_path / "student", progress=False)
    rounds = [json.loads(line) for line in (out / "distill.jsonl").read_text().splitlines()]
    assert [r["distill/clear_share"] for r in rounds] == [1.0, 1.0]   # no car exactly level: all clear
    assert "clear_teacher_checkpoint" in json.loads((out / "config.json").read_text())
    with pytest.raises(ValueError, match="--clear-teacher .* give --teacher"):
        RunConfig(scenario="tokyo", preset="smoke", clear_teacher=str(teacher_run))
    with pytest.raises(ValueError, match="--clear-teacher .*distils no round"):
        train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, env_kwargs=ENV, teacher=str(teacher_run),
                        clear_teacher=str(teacher_run), overrides={"train.kickstart_weight": 1.0}),
              tmp_path / "x", progress=False)


@pytest.mark.parametrize("killed_at", [1, 3])
def test_a_killed_distillation_resumes_from_its_last_round_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch,
                                                                                          killed_at):
    """`gtvision train --resume` on a run whose DAgger rounds were cut short (in round 2, or in round 0 before any
    resume state was left): the rounds after the last one whose resume state was left run again (all of them from
    round 0), and the students, records and the run's end equal those of a run never stopped (same seed, same
    result on CPU); the resume state (GBs of labelled states) is gone at the end."""
    from gtvision import checkpoints
    from gtvision.agent.distill import resume_round
    from gtvision.training import DISTILL_STATE

    teacher_run, _ = train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=64,
                                     env_kwargs=ENV, seed=1), tmp_path / "teacher", progress=False)
    overrides = {"train.distill_rounds": 4, "train.distill_steps": 32, "train.distill_updates": 3,
                 "train.reset_epoch": None}
    config = RunConfig(scenario="tokyo", preset="smoke", total_steps=64, max_minutes=0, env_kwargs=ENV, seed=2,
                       teacher=str(teacher_run), overrides=overrides)
    whole, _ = train(config, tmp_path / "whole", progress=False)

    save_networks = checkpoints.save_networks

    def killed(run_dir, epoch, *args, **kwargs):
        if epoch == killed_at:   # round killed_at - 1's student: its record is written, its resume state is not
            raise KeyboardInterrupt
        return save_networks(run_dir, epoch, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "save_networks", killed)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", progress=False)
    cut = tmp_path / "cut"
    left = resume_round(cut / DISTILL_DIR / DISTILL_STATE)
    assert (left is None) if killed_at == 1 else (left["round"] == 1)
    assert not complete_checkpoints(cut)
    with pytest.raises(ValueError, match="different configuration"):   # another run's command is refused
        train(dataclasses.replace(config, seed=3), cut, progress=False, resume=True)
    monkeypatch.setattr(checkpoints, "save_networks", save_networks)
    train(config, cut, progress=False, resume=True)

    records = [[json.loads(line) for line in (run / "distill.jsonl").read_text().splitlines()] for run in (whole, cut)]
    assert [r["distill/round"] for r in records[1]] == [0, 1, 2, 3]
    assert [r["distill/kl"] for r in records[1]] == [r["distill/kl"] for r in records[0]]
    for epoch in (2, 4):
        a, b = (load_state(run / DISTILL_DIR / "checkpoints" / f"epoch_{epoch:06d}")["agent"]["actor"]
                for run in (whole, cut))
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in complete_checkpoints(cut)] == ["epoch_000000"]
    assert json.loads((cut / "config.json").read_text())["distill_seconds"] > 0
    assert not (cut / DISTILL_DIR / DISTILL_STATE).exists() and not (whole / DISTILL_DIR / DISTILL_STATE).exists()
