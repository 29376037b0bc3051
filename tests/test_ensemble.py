"""An ensemble of actors driving as one (gtvision.agent.ensemble; `gtvision export --ensemble`)."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from gtvision import checkpoints, cli
from gtvision.agent.ensemble import EnsembleActor
from gtvision.agent.rollout import Rollout
from gtvision.evaluation import evaluate
from gtvision.training import RunConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")
ENV = {"num_opponents": 1, "max_time_s": 2.0}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two smoke vision runs of one architecture (seeds 3 and 4) and a privileged one of another."""
    root = tmp_path_factory.mktemp("ensemble")
    made = [train(RunConfig(scenario="tokyo", preset="smoke", total_steps=64, seed=s, env_kwargs=ENV),
                  root / f"vision{s}", progress=False)[0] for s in (3, 4)]
    made.append(train(RunConfig(scenario="tokyo", preset="smoke", variant="gt_sophy", total_steps=64, seed=5,
                                env_kwargs=ENV), root / "privileged", progress=False)[0])
    return root, made


def test_an_exported_ensemble_drives_the_mean_of_its_members_actions_each_with_its_own_memory(runs):
    root, (a, b, _) = runs
    out = root / "ensemble"
    assert cli.main(["export", "--checkpoint", str(a), "--ensemble", str(b), "--out", str(out),
                     "--set", "agent.recovery=true"]) == 0
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    space, act = envs.single_observation_space, envs.single_action_space
    ensemble = checkpoints.load_actor(out, space, act)
    members = [checkpoints.load_actor(p, space, act) for p in (a, b)]
    assert isinstance(ensemble.actor, EnsembleActor) and ensemble.config.recovery
    assert ensemble.hidden_size == sum(m.hidden_size for m in members) > 0
    assert ensemble.actor.keys == members[0].actor.keys == ("image", "proprio")
    obs, _ = envs.reset(seed=0)
    hidden = ensemble.initial_hidden(2)
    member_hidden = [m.initial_hidden(2) for m in members]
    with torch.no_grad():
        for _ in range(6):   # the members' memories run on side by side
            action, hidden = ensemble.act(obs, hidden, eval_mode=True)
            outs = [m.act(obs, h, eval_mode=True) for m, h in zip(members, member_hidden)]
            member_hidden = [h for _, h in outs]
            np.testing.assert_allclose(action, np.mean([x for x, _ in outs], 0), atol=1e-5)
            torch.testing.assert_close(hidden, torch.cat(member_hidden, -1))
            obs = envs.step(action)[0]
    assert not np.allclose(outs[0][0], outs[1][0])   # two different actors, so the mean is neither
    envs.close()
    assert len(evaluate(out, "tokyo", episodes=1, seed=0, laps=1, progress=False)) == 1
    again = root / "ensemble_again"   # an ensemble exported again stays one
    assert cli.main(["export", "--checkpoint", str(out), "--out", str(again)]) == 0
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=1, **ENV)
    assert isinstance(checkpoints.load_actor(again, envs.single_observation_space, envs.single_action_space).actor,
                      EnsembleActor)
    rollout = Rollout(envs, checkpoints.load_actor(again, envs.single_observation_space, envs.single_action_space),
                      seed=0, eval_mode=True)
    assert rollout.step().action.shape == (1, 2)
    envs.close()
    from gtvision.attribution import explain_race   # Figure 5 explains an ensemble as it explains one actor
    ex = explain_race(out, "tokyo", snapshots=2, interval_s=0.5, history=4, max_time_s=8.0, start_s=1.0)
    assert ex["attributions"].shape == (2, 64, 64) and np.isfinite(ex["attributions"]).all()
    assert np.all(np.abs(ex["delta"]) < 1e-3)  # complete: IG sums to the ensemble's output difference


def test_an_ensemble_of_other_networks_is_refused(runs):
    root, (a, _, privileged) = runs
    with pytest.raises(ValueError, match="not of .* architecture"):
        checkpoints.export(a, root / "mixed", ensemble=(privileged,))
    assert not (root / "mixed" / "config.json").exists()
    with pytest.raises(ValueError, match="at least 2 actors"):
        EnsembleActor([])


def test_a_half_export_stores_float16_and_drives_as_the_float32_one_to_rounding(runs):
    root, (a, b, _) = runs
    full, half = root / "full", root / "half"
    assert cli.main(["export", "--checkpoint", str(a), "--ensemble", str(b), "--out", str(full)]) == 0
    assert cli.main(["export", "--checkpoint", str(a), "--ensemble", str(b), "--out", str(half), "--half"]) == 0
    stored = checkpoints.load_state(checkpoints.resolve(half)[0])["agent"]
    floats = [t for t in [*stored["actor"].values(), *stored["ensemble"][0].values()] if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    assert checkpoints.read_run_config(half)["exported_from"]["weights"] == "float16"
    size = {p: sum(f.stat().st_size for f in p.rglob("*.pt")) for p in (full, half)}
    assert size[half] < 0.6 * size[full]
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    agents = [checkpoints.load_actor(p, envs.single_observation_space, envs.single_action_space) for p in (full, half)]
    assert all(p.dtype == torch.float32 for p in agents[1].actor.parameters())   # computed in float32
    obs, _ = envs.reset(seed=0)
    hidden = [g.initial_hidden(2) for g in agents]
    with torch.no_grad():
        for _ in range(4):
            outs = [g.act(obs, h, eval_mode=True) for g, h in zip(agents, hidden)]
            hidden = [h for _, h in outs]
            np.testing.assert_allclose(outs[1][0], outs[0][0], atol=2e-2)   # the same driver, rounded
            obs = envs.step(outs[0][0])[0]
    envs.close()
    assert len(evaluate(half, "tokyo", episodes=1, seed=0, laps=1, progress=False)) == 1
