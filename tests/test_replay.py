"""Sequence replay: n-step targets, episode boundaries, autoreset, stored hidden states, memory."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from gtvision.agent import ReplayConfig, SequenceReplay, get_preset, n_step_targets


pytestmark = pytest.mark.usefixtures("one_thread")

GAMMA = 0.9


class CountingEnv(gym.Env):
    """Episodes of lengths 5, 6, 7, ... alternately terminated and truncated.

    obs["vec"] = (episode, t), obs["image"] filled with t; reward of step t -> t + 1 is t + 1 (never 0, so
    the vector env's autoreset step, reward 0, is recognisable).
    """

    observation_space = spaces.Dict({
        "image": spaces.Box(0, 255, (8, 8, 3), np.uint8),
        "vec": spaces.Box(-np.inf, np.inf, (2,), np.float32),
    })
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, offset=0):
        self.episode, self.offset = -1, offset

    def _obs(self):
        return {"image": np.full((8, 8, 3), self.t, np.uint8), "vec": np.array([self.episode, self.t], np.float32)}

    def reset(self, seed=None, options=None):
        self.episode += 1
        self.t = 0
        self.length = 5 + (self.episode + self.offset) % 4
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        end = self.t == self.length
        terminated = end and (self.episode + self.offset) % 2 == 0
        return self._obs(), float(self.t), terminated, end and not terminated, {}


def fill(replay, steps, num_envs=2, seed=0):
    """Drive CountingEnv in a NEXT_STEP vector env; the hidden state passed in encodes (episode, t)."""
    envs = gym.vector.SyncVectorEnv([lambda i=i: CountingEnv(offset=i) for i in range(num_envs)])
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, _ = envs.reset(seed=seed)
    for _ in range(steps):
        hidden = np.repeat(obs["vec"], 2, axis=1)  # (N, 4): stands for the actor state entering obs
        action = np.zeros((num_envs, 1), np.float32)
        next_obs, reward, term, trunc, _ = envs.step(action)
        replay.add(obs, hidden, action, reward, term, trunc, next_obs)
        obs = next_obs
    return replay


def make_replay(capacity=400, num_envs=2, burn_in=2, seq_len=4, n_step=3, path=None):
    cfg = ReplayConfig(capacity=capacity, batch_sequences=64, seq_len=seq_len, burn_in=burn_in, path=path,
                       hidden_dtype="float32")
    return SequenceReplay(CountingEnv.observation_space, ("image", "vec"), 1, 4, num_envs, cfg, GAMMA, n_step, seed=0)


def test_n_step_returns_across_termination_and_truncation():
    # One window of 8 rows: an episode terminating after row 1, its final row 2, then an episode truncated
    # after row 4, its final row 5, then a new episode.
    reward = np.array([[1, 2, 0, 3, 4, 0, 5, 6]], np.float32)
    terminated = np.array([[0, 1, 0, 0, 0, 0, 0, 0]], bool)
    truncated = np.array([[0, 0, 0, 0, 1, 0, 0, 0]], bool)
    ret, disc, boot = n_step_targets(reward, terminated, truncated, start=0, length=5, n=3, gamma=GAMMA)
    g, trained = GAMMA, [0, 1, 3, 4]  # row 2 is a final observation: no action, masked out of the losses
    np.testing.assert_allclose(ret[0, trained], [1 + 2 * g, 2, 3 + 4 * g, 4], rtol=1e-6)
    # termination: discount 0; truncation: bootstrap from the final observation with gamma^m
    np.testing.assert_allclose(disc[0, trained], [0, 0, g ** 2, g], rtol=1e-6)
    np.testing.assert_array_equal(boot[0, trained], [2, 2, 5, 5])


def test_no_autoreset_pseudo_transition_reaches_the_buffer():
    replay = fill(make_replay(capacity=1000), steps=40)
    for e in range(2):
        rows = slice(e * replay.stream_capacity, e * replay.stream_capacity + replay.size[e])
        vec, reward = replay.storage["obs/vec"][rows], replay.storage["reward"][rows]
        last, first = replay.storage["last"][rows], replay.storage["first"][rows]
        done = replay.storage["terminated"][rows] | replay.storage["truncated"][rows]
        assert (reward[~last] > 0).all(), "a reward-0 autoreset step was stored"
        np.testing.assert_array_equal(first, vec[:, 1] == 0)
        # consecutive rows: t + 1 within an episode; after a final row the next episode starts at t = 0
        same = vec[1:, 0] == vec[:-1, 0]
        np.testing.assert_array_equal(vec[1:, 1][same], vec[:-1, 1][same] + 1)
        np.testing.assert_array_equal(vec[1:, 0][~same], vec[:-1, 0][~same] + 1)
        np.testing.assert_array_equal(last[1:], done[:-1])  # the final observation follows the ending step
        assert not done[last].any()


def test_sampled_n_step_targets_match_episodes_with_ring_wraparound():
    replay = fill(make_replay(capacity=2 * 30, n_step=3), steps=100)  # wraps the 30-row streams
    assert replay.full
    b = replay.sample(256)
    vec = b["obs"]["vec"].numpy()
    bi, L, n = 2, 4, 3
    for s in range(256):
        for j in range(L):
            ep, t = vec[s, bi + j]
            if b["mask"][s, j] == 0:
                assert b["last"][s, bi + j]
                continue
            m = int(b["bootstrap_index"][s, j]) - (bi + j)
            assert 1 <= m <= n
            expected = sum(GAMMA ** k * (t + k + 1) for k in range(m))
            assert b["nstep_return"][s, j].item() == pytest.approx(expected, rel=1e-5)
            boot = vec[s, bi + j + m]
            assert boot[0] == ep and boot[1] == t + m  # bootstraps from the same episode, m steps on
            ended = bool(b["last"][s, bi + j + m])
            assert m == n or ended  # fewer than n steps only at the episode's end
            if ended and bool(b["terminated"][s, bi + j + m - 1]):
                assert b["nstep_discount"][s, j].item() == 0
            else:
                assert b["nstep_discount"][s, j].item() == pytest.approx(GAMMA ** m)


def test_stored_reward_terms_relabel_sampled_rewards_and_n_step_returns():
    # terms (t + 1, 1) per step: weights (w0, w1) make the reward w0 (t + 1) + w1, whatever was stored
    cfg = ReplayConfig(capacity=400, batch_sequences=64, seq_len=4, burn_in=2, hidden_dtype="float32")
    replay = SequenceReplay(CountingEnv.observation_space, ("image", "vec"), 1, 4, 2, cfg, GAMMA, 3, seed=0,
                            reward_terms=2)
    envs = gym.vector.SyncVectorEnv([lambda i=i: CountingEnv(offset=i) for i in range(2)])
    obs, _ = envs.reset(seed=0)
    for _ in range(60):
        next_obs, reward, term, trunc, _ = envs.step(np.zeros((2, 1), np.float32))
        terms = np.stack([reward, np.ones(2)], axis=-1)
        replay.add(obs, np.zeros((2, 4)), np.zeros((2, 1)), reward, term, trunc, next_obs, terms=terms)
        obs = next_obs
    with pytest.raises(ValueError, match="terms"):
        replay.add(obs, np.zeros((2, 4)), np.zeros((2, 1)), reward, term, trunc, next_obs)
    w = np.array([2.0, -0.5], np.float32)
    b = replay.sample(128, reward_weights=w)
    vec, bi, L = b["obs"]["vec"].numpy(), 2, 4
    for s in range(128):
        for j in range(L):
            if b["mask"][s, j] == 0:
                continue
            t, m = vec[s, bi + j, 1], int(b["bootstrap_index"][s, j]) - (bi + j)
            assert b["reward"][s, bi + j].item() == pytest.approx(2.0 * (t + 1) - 0.5)
            expected = sum(GAMMA ** k * (2.0 * (t + k + 1) - 0.5) for k in range(m))
            assert b["nstep_return"][s, j].item() == pytest.approx(expected, rel=1e-5)
    # without weights the stored rewards come back; a replay without terms refuses weights
    plain = replay.sample(8)
    assert (plain["reward"][plain["last"] == 0] > 0).all()
    with pytest.raises(ValueError, match="reward_terms"):
        fill(make_replay(), steps=20).sample(4, reward_weights=w)


def test_sample_carries_stored_hidden_state_of_window_start():
    replay = fill(make_replay(), steps=60)
    b = replay.sample(32)
    row0 = b["obs"]["vec"][:, 0]
    not_last = ~b["last"][:, 0]
    # the stored state entering row 0 is the (episode, t) the filler passed in for that observation
    torch.testing.assert_close(b["hidden"][not_last], row0[not_last].repeat_interleave(2, dim=1))
    assert b["obs"]["image"].dtype == torch.uint8


def test_bytes_per_transition_is_one_uint8_frame_plus_small_vectors():
    preset = get_preset("paper")
    obs_space = spaces.Dict({
        "image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
        "proprio": spaces.Box(-np.inf, np.inf, (18,), np.float32),
        "course_points": spaces.Box(-np.inf, np.inf, (177, 3), np.float32),
        "opponent_grid": spaces.Box(-np.inf, np.inf, (14, 6), np.float32),
    })
    cfg = ReplayConfig(capacity=1000, batch_sequences=2, seq_len=32, burn_in=16)
    replay = SequenceReplay(obs_space, ("image", "proprio", "course_points", "opponent_grid"), 2, 512, 1, cfg,
                            preset.agent.gamma, preset.agent.n_step)
    frame = 64 * 64 * 3
    vectors = 4 * (18 + 177 * 3 + 14 * 6)
    hidden = 2 * 512  # float16
    small = 4 * 2 + 4 + 4  # action, reward, four flags
    assert replay.bytes_per_transition == frame + vectors + hidden + small
    assert replay.storage["obs/image"].dtype == np.uint8


def test_capacity_that_cannot_fit_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(MemoryError, match=r"GiB.*path="):
        make_replay(capacity=10 ** 12)
    with pytest.raises(MemoryError, match="free"):
        make_replay(capacity=10 ** 12, path=str(tmp_path))


def test_memory_mapped_replay_on_disk(tmp_path):
    replay = fill(make_replay(capacity=200, path=str(tmp_path)), steps=50)
    assert isinstance(replay.storage["obs/image"], np.memmap)
    assert (tmp_path / "obs_image.npy").exists()
    assert replay.sample(8)["obs"]["image"].shape == (8, 2 + 4 + 3, 8, 8, 3)
