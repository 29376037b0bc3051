"""Seen layers fitted to a trained actor (gtvision.agent.seen_layers; `gtvision export --fit-seen-layers`)."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from gtvision import checkpoints, cli
from gtvision.agent import seen_layers as seen_module
from gtvision.agent.seen_layers import SeenLayers, fit_seen_layers, load_seen_layers, seen_layers_state
from gtvision.evaluation import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")
ENV = {"num_opponents": 1, "max_time_s": 2.0}


def test_the_head_learns_where_a_layer_lifts_from_the_features_and_is_scored_on_held_out_races():
    """A layer that lifts to a ceiling of -0.5 where feature 0 is positive (one step in five) and steers within
    [0.2, 0.6] where feature 1 is: the head finds both on the last eighth of the races, which it was not fitted on."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8000, 16, generator=g)
    lift, steer = x[:, 0] > 0.85, x[:, 1] > 0.85
    y = torch.stack([torch.where(lift, -0.5, 1.0), torch.where(steer, 0.2, -1.0), torch.where(steer, 0.6, 1.0)], 1)
    steps = {"features": x.half(), "bounds": y, "race": torch.arange(8000) // 500}
    head = fit_seen_layers(steps, epochs=6, progress=False)
    info = head.info
    assert info["held_out_steps"] == 1000 and info["steps"] == 7000 and info["seconds"] > 0
    assert 0.1 < info["held_out_ceiling_set"] < 0.3 and info["held_out_ceiling_found"] > 0.9
    assert info["held_out_steer_found"] > 0.9 and info["held_out_ceiling_error"] < 0.3
    out = head(torch.randn(5, 16, generator=g) * 10)
    assert out.shape == (5, 3) and out.abs().max() <= 1.0                       # clamped to the action space
    again = load_seen_layers(seen_layers_state(head))                            # stored and loaded: the same head
    torch.testing.assert_close(again(x[:10].float()), head(x[:10].float()))
    with pytest.raises(ValueError, match="read 16 features, got 3"):
        head(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="epochs >= 1"):
        fit_seen_layers(steps, epochs=0, progress=False)


def _short_races(monkeypatch):
    real = seen_module.layer_steps
    monkeypatch.setattr(seen_module, "layer_steps", lambda *a, **k: real(*a, **{**k, "max_time_s": 3.0}))


def test_an_exported_agent_with_seen_layers_races_through_their_bounds_reading_only_image_and_proprio(
        smoke_vision_run, tmp_path, monkeypatch):
    _short_races(monkeypatch)
    out = tmp_path / "seen"
    assert cli.main(["export", "--checkpoint", str(smoke_vision_run), "--out", str(out), "--fit-seen-layers", "2",
                     "--seen-layers-seed", "7"]) == 0
    exported = checkpoints.read_run_config(out)["exported_from"]
    info = exported["seen_layers"]
    assert info["races"] == 2 and info["race_seed"] == 7 and info["race_seconds"] > 0 and info["steps"] > 0
    assert checkpoints.SEEN_LAYERS in exported["parts"]
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **ENV)
    space, act = envs.single_observation_space, envs.single_action_space
    agent = checkpoints.load_actor(out, space, act)
    plain = checkpoints.load_actor(smoke_vision_run, space, act)
    assert isinstance(agent.seen_layers, SeenLayers) and plain.seen_layers is None
    assert agent.actor.keys == ("image", "proprio")
    obs, _ = envs.reset(seed=0)
    hidden = agent.initial_hidden(2)
    # bounds that bind: the throttle at most -0.5, the steering within [0.2, 0.3]
    agent.seen_layers = lambda features: torch.tensor([[-0.5, 0.2, 0.3]]).expand(len(features), 3)
    with torch.no_grad():
        action, _ = agent.act(obs, hidden, eval_mode=True)
        free, _ = plain.act(obs, hidden, eval_mode=True)
        other = {**obs, "opponent_grid": obs["opponent_grid"] + 5.0, "course_points": obs["course_points"] * 2}
        moved, _ = agent.act(other, hidden, eval_mode=True)
    assert np.all(action[:, 1] <= -0.5 + 1e-6) and np.all((action[:, 0] >= 0.2 - 1e-6) & (action[:, 0] <= 0.3 + 1e-6))
    assert not np.allclose(action, free)
    np.testing.assert_array_equal(moved, action)         # no global feature reaches the action
    envs.close()
    assert len(evaluate(out, "tokyo", episodes=1, seed=0, laps=1, progress=False)) == 1
    again = tmp_path / "again"                            # an export of it keeps them, without fitting again
    monkeypatch.setattr(seen_module, "fit_seen_layers", lambda *a, **k: pytest.fail("fitted again"))
    assert cli.main(["export", "--checkpoint", str(out), "--out", str(again), "--half"]) == 0
    kept = checkpoints.load_state(checkpoints.resolve(again)[0])["agent"][checkpoints.SEEN_LAYERS]
    stored = checkpoints.load_state(checkpoints.resolve(out)[0])["agent"][checkpoints.SEEN_LAYERS]
    assert torch.allclose(kept["net.0.weight"].float(), stored["net.0.weight"], atol=1e-2)
    with pytest.raises(ValueError, match="--ensemble changes the features"):
        checkpoints.export(out, tmp_path / "ensemble", ensemble=(smoke_vision_run,))
    with pytest.raises(ValueError, match="seen_layers_races must be >= 0"):
        checkpoints.export(smoke_vision_run, tmp_path / "negative", seen_layers_races=-1)
