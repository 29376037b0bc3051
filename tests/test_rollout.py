"""The one rollout step every driving loop uses: autoreset bookkeeping, the recurrent state, episode records."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from test_replay import CountingEnv

from gtvision.agent.rollout import Rollout, episode_ends, evaluate_policy


class EchoAgent:
    """A 'policy' whose hidden state counts the steps it has acted in its episode (hidden = h + 1)."""

    device = torch.device("cpu")

    def initial_hidden(self, n):
        return torch.zeros(n, 1)

    def act(self, obs, hidden, eval_mode=False):
        return np.zeros((len(hidden), 1), np.float32), hidden + 1


def _counting_envs(n=2):
    return gym.vector.SyncVectorEnv([lambda i=i: CountingEnv(offset=i) for i in range(n)])


def test_a_step_after_an_episode_end_is_an_autoreset_step_that_belongs_to_no_episode():
    autoreset = np.array([False, True, False])
    ends = episode_ends(autoreset, terminated=np.array([True, True, False]), truncated=np.array([False, False, True]))
    np.testing.assert_array_equal(ends, [True, False, True])


def test_the_rollout_zeroes_the_hidden_state_at_each_episode_start_and_records_whole_episodes():
    rollout = Rollout(_counting_envs(), EchoAgent(), seed=0)
    for _ in range(30):
        obs_t = rollout.obs["vec"][:, 1].copy()          # t of the observation acted on
        step = rollout.step()
        live = step.live
        # the state entering o_t has seen t steps of its episode (0 at an episode's first observation)
        np.testing.assert_array_equal(step.hidden[live, 0].numpy(), obs_t[live])
        assert (step.reward[~live] == 0).all()           # autoreset steps: reward 0, not counted
        np.testing.assert_array_equal(step.done, live & (step.terminated | step.truncated))
    ended = rollout.stats.take()
    # sub-environment 0 plays episodes of 5, 6, 7, 8 steps, 1 plays 6, 7, 8, 5; one autoreset step after each
    assert sorted(e["length"] for e in ended) == [5, 5, 6, 6, 7, 7, 8, 8]
    for e in ended:
        assert e["return"] == pytest.approx(e["length"] * (e["length"] + 1) / 2)
    assert rollout.stats.take() == []


def test_given_actions_drive_without_an_agent_and_a_missing_one_is_refused():
    rollout = Rollout(_counting_envs(1), seed=0)
    assert rollout.hidden is None
    step = rollout.step(np.zeros((1, 1), np.float32))
    assert step.hidden is None and step.reward[0] == 1.0
    with pytest.raises(ValueError, match="needs the actions"):
        rollout.step()


def test_evaluate_policy_returns_the_first_episodes_to_end():
    returns = evaluate_policy(EchoAgent(), _counting_envs(), episodes=3, seed=0)
    assert sorted(returns.tolist()) == [15.0, 21.0, 21.0]  # lengths 5, 6 (env 1) and 6 (env 0's second)


def test_given_actions_leave_the_agents_state_riding_along_and_reset_at_each_episode_start():
    rollout = Rollout(_counting_envs(), EchoAgent(), seed=0)
    for _ in range(20):
        obs_t = rollout.obs["vec"][:, 1].copy()
        step = rollout.step(np.full((2, 1), 0.5, np.float32))  # another driver's actions
        assert (step.action == 0.5).all()
        np.testing.assert_array_equal(step.hidden[step.live, 0].numpy(), obs_t[step.live])
