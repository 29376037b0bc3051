"""Attribution (paper V-B): Integrated Gradients completeness, the blurred baseline, the top-90% mask,
frame attributions through time."""
import numpy as np
import pytest
import torch
from gymnasium import spaces

from gtvision.agent import get_preset
from gtvision.agent.qrsac import QRSACAgent
from gtvision.attribution import blurred_baseline, frame_attributions, integrated_gradients, top_mask

pytest.importorskip("captum")
pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
                     "proprio": spaces.Box(-np.inf, np.inf, (18,), np.float32)})


@pytest.fixture(scope="module")
def actor_and_sequence():
    torch.manual_seed(0)
    preset = get_preset("smoke")
    agent = QRSACAgent(SPACE, spaces.Box(-1, 1, (2,), np.float32), preset.agent, acting_only=True)
    with torch.no_grad():  # a fresh encoder barely reacts to the image: make the actor's output depend on it
        for p in agent.actor.torso.encoders.parameters():
            p.mul_(3.0)
    g = torch.Generator().manual_seed(1)
    obs = {"image": torch.randint(0, 256, (2, 5, 64, 64, 3), generator=g, dtype=torch.uint8),
           "proprio": torch.randn(2, 5, 18, generator=g)}
    return agent.actor, obs, torch.zeros(2, agent.hidden_size)


def test_integrated_gradients_are_complete(actor_and_sequence):
    """The attributions sum to f(image) - f(blurred image), up to the 20-step path's quadrature error."""
    actor, obs, hidden = actor_and_sequence
    for action in ("steer", "throttle"):
        res = integrated_gradients(actor, obs, hidden, action=action, n_steps=20)
        assert res["attribution"].shape == (2, 64, 64)
        diff = res["output"] - res["baseline_output"]
        total = res["attribution"].flatten(1).sum(1)
        assert diff.abs().min() > 1e-3  # the image matters: the comparison means something
        assert ((total - diff).abs() <= 0.1 * diff.abs()).all(), (total, diff)  # within 10% with 20 steps
    with pytest.raises(ValueError, match="valid: steer, throttle"):
        integrated_gradients(actor, obs, hidden, action="gear")


def test_blurred_baseline_is_a_7x7_mean_filter():
    img = torch.zeros(1, 15, 15, 3)
    img[0, 7, 7] = 49.0
    out = blurred_baseline(img, 7)
    assert out[0, 7, 7, 0] == pytest.approx(1.0) and out[0, 4, 4, 0] == pytest.approx(1.0)
    assert out[0, 3, 7, 0] == 0.0  # four pixels away: outside the window
    assert out.sum() == pytest.approx(img.sum())  # away from the borders, mass is kept


def test_top_mask_keeps_the_fewest_pixels_with_90_percent_of_the_attribution():
    attr = torch.tensor([[[5.0, -3.0], [1.0, 1.0]]])  # |total| 10: 5 + 3 = 8 < 9, + 1 = 9 reaches 90%
    mask = top_mask(attr, 0.9)
    assert mask.sum() == 3 and mask[0, 0, 0] and mask[0, 0, 1]


def test_frame_attributions_reach_back_through_the_recurrence(actor_and_sequence):
    actor, obs, hidden = actor_and_sequence
    frames = frame_attributions(actor, obs, hidden, action="throttle")
    assert frames.shape == (2, 5)
    assert (frames[:, :-1] > 0).all()  # earlier frames matter to the final action through the GRU


def test_explain_race_gives_figure_5_its_snapshots_from_a_race(tmp_path):
    """Four snapshots 0.5 s apart of a BIAI race, explained with a riding-along actor: frames, attribution
    maps and masks, and each snapshot's frame shares; the snapshots are what the actor saw at those steps."""
    import gymnasium as gym

    from gtvision import figures
    from gtvision.attribution import explain_race
    from gtvision.env import ENV_IDS

    envs = gym.make_vec(ENV_IDS["tokyo"], num_envs=1)
    torch.manual_seed(0)
    agent = QRSACAgent(envs.single_observation_space, envs.single_action_space, get_preset("smoke").agent,
                       acting_only=True)
    envs.close()
    ex = explain_race("biai", "tokyo", snapshots=4, interval_s=0.5, history=6, agent=agent, max_time_s=8.0)
    np.testing.assert_allclose(np.diff(ex["times_s"]), 0.5)
    assert ex["times_s"][0] >= 3.0 and 1 <= ex["opponent"] <= 19
    assert ex["frames"].shape == (4, 64, 64, 3) and ex["frames"].dtype == np.uint8
    assert ex["attributions"].shape == ex["masks"].shape == (4, 64, 64) and ex["masks"].dtype == bool
    assert ex["frame_shares"].shape == (4, 6) and (ex["frame_shares"] >= 0).all()
    assert np.all(np.abs(ex["delta"]) < 1e-3)  # complete: IG sums to the output difference
    # the agent is the BIAI's car 0 in the race: between snapshots it moves about speed x 0.5 s
    assert np.all(np.linalg.norm(np.diff(ex["agent_xy"], axis=0), axis=1) > 1.0)
    figures.figure_5(**{k: ex[k] for k in figures.FIGURE_5_INPUTS}, out=tmp_path)
    assert (tmp_path / "figure_5.png").exists()
    with pytest.raises(ValueError, match="no actor to explain"):
        explain_race("biai", "tokyo", max_time_s=5.0)
    with pytest.raises(ValueError, match="too short"):
        explain_race("biai", "tokyo", agent=agent, snapshots=40, max_time_s=5.0)


def test_explain_race_takes_the_committed_vision_agent_as_it_is():
    """Issue 16: papermill_runs/agents/tokyo_vision is accepted by explain_race without a stand-in actor: its own
    actor, driving, is explained at moments of its race with an opponent near. (An ensemble of four actors since
    the twenty-eighth session: it makes its first clean pass within 20 m between 20 and 30 s into its race.)"""
    from pathlib import Path

    from gtvision.attribution import explain_race

    agent = Path(__file__).resolve().parents[1] / "papermill_runs" / "agents" / "tokyo_vision"
    ex = explain_race(str(agent), "tokyo", snapshots=2, interval_s=0.5, history=4, max_time_s=30.0,
                      moment="overtake")
    assert ex["frames"].shape == (2, 64, 64, 3) and 1 <= ex["opponent"] <= 19
    # Figure 5 during an overtake: the opponent drawn is ahead at the first snapshot and behind at the last
    assert ex["opponent_gap_m"][0] > 0 > ex["opponent_gap_m"][-1]
    assert ex["frame_shares"].shape == (2, 4)
    # its steering depends on what it sees (blurring the view moves it), and 20 interpolation steps add up to that
    # change within 10% on a trained actor, or within 0.002 where the blur barely moves it
    difference = np.abs(ex["output_difference"])
    assert difference.max() > 0.01
    assert np.all(np.abs(ex["delta"]) < np.maximum(0.1 * difference, 0.002))


def test_overtake_moment_straddles_the_first_clean_pass():
    """``moment="overtake"`` starts the snapshots so that they straddle a pass of a near opponent: ahead until
    the pass, behind after it; a car that drops back and comes again, or a far one, does not count."""
    from gtvision.attribution import _overtake, explain_race

    T = 40
    ahead = np.full((T, 3), 5.0)        # three opponents 5 m ahead along the course
    gaps = np.full((T, 3), 6.0)         # and 6 m away
    ahead[12:, 0] = -1.0                # opponent 1 passed at step 12 ...
    ahead[14:16, 0] = 1.0               # ... but it comes back ahead at 14-15: not a clean pass in a 6-step window
    ahead[20:, 1] = -1.0                # opponent 2 passed at step 20, far away (30 m): not near
    gaps[:, 1] = 30.0
    ahead[25:, 2] = -2.0                # opponent 3 passed at step 25, cleanly
    t0, opponent = _overtake(ahead, gaps, first=3, last_start=T - 7, span=6, near_m=20.0)
    assert (t0, opponent) == (22, 3)
    assert (ahead[t0:25, 2] > 0).all() and (ahead[25:t0 + 7, 2] < 0).all()
    with pytest.raises(ValueError, match="no pass"):
        _overtake(ahead[:, :2], gaps[:, :2], first=3, last_start=T - 7, span=6, near_m=20.0)
    with pytest.raises(ValueError, match="unknown moment 'pass'.*'near', 'overtake'"):
        explain_race("biai", "tokyo", moment="pass")
