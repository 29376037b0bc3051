"""The QR-SAC agent: loss, target, variants, reset, burn-in, augmentation. Tiny networks (smoke preset)."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from gtvision.agent import (
    VARIANTS,
    SequenceReplay,
    get_preset,
    qrsac_target,
    quantile_huber_loss,
    random_shift,
)
from gtvision.agent.augment import reflect_index
from gtvision.agent.presets import PRESET_NAMES
from gtvision.agent.qrsac import QRSACAgent, quantile_midpoints


pytestmark = pytest.mark.usefixtures("one_thread")

OBS_SPACE = spaces.Dict({  # the racing envs' observation (gtvision.env.observations)
    "course_points": spaces.Box(-np.inf, np.inf, (177, 3), np.float32),
    "image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
    "opponent_grid": spaces.Box(-np.inf, np.inf, (14, 6), np.float32),
    "proprio": spaces.Box(-np.inf, np.inf, (18,), np.float32),
})
ACTION_SPACE = spaces.Box(-1, 1, (2,), np.float32)


def random_batch(agent, preset, num_envs=2, steps=40, seed=0):
    """A replay filled with random observations (episodes of 13 steps) and one sampled batch."""
    rng = np.random.default_rng(seed)
    replay = SequenceReplay(agent.observation_space, agent.replay_keys, 2, agent.hidden_size, num_envs,
                            preset.replay, preset.agent.gamma, preset.agent.n_step, device=agent.device, seed=seed)

    def obs():
        return {k: (rng.integers(0, 256, (num_envs, *s.shape), dtype=np.uint8) if s.dtype == np.uint8
                    else rng.normal(size=(num_envs, *s.shape)).astype(np.float32))
                for k, s in agent.observation_space.spaces.items()}

    o = obs()
    for t in range(steps):
        hidden = rng.normal(size=(num_envs, agent.hidden_size)).astype(np.float32)
        end = np.full(num_envs, t % 13 == 12)
        replay.add(o, hidden, rng.uniform(-1, 1, (num_envs, 2)), rng.normal(size=num_envs), end & (t % 2 == 0),
                   end & (t % 2 == 1), next_o := obs())
        o = next_o
    return replay.sample()


def make_agent(variant="asymmetric", **agent_changes):
    preset = get_preset("smoke", variant)
    preset = dataclasses.replace(preset, agent=dataclasses.replace(preset.agent, **agent_changes))
    return QRSACAgent(OBS_SPACE, ACTION_SPACE, preset.agent, burn_in=preset.replay.burn_in), preset


def test_quantile_huber_loss_matches_hand_computation():
    pred = torch.tensor([[0.0, 1.0]])    # N = 2 quantiles at tau = 1/4, 3/4
    target = torch.tensor([[0.5, 3.0]])  # M = 2 target samples
    # u = target_j - pred_i; Huber(0.5) = 0.125, Huber(3) = 2.5, Huber(2) = 1.5 (kappa = 1)
    # i=0 (tau 1/4): u = 0.5, 3  -> 0.25 * 0.125, 0.25 * 2.5  -> mean 0.328125
    # i=1 (tau 3/4): u = -0.5, 2 -> 0.25 * 0.125, 0.75 * 1.5  -> mean 0.578125
    assert quantile_huber_loss(pred, target).item() == pytest.approx(0.90625)
    # a masked-out sample does not count
    pred2 = torch.cat([pred, torch.tensor([[100.0, -100.0]])])
    target2 = torch.cat([target, torch.tensor([[0.0, 0.0]])])
    assert quantile_huber_loss(pred2, target2, mask=torch.tensor([1.0, 0.0])).item() == pytest.approx(0.90625)
    # kappa scales the quadratic zone: kappa = 4 makes every |u| <= 3 quadratic, divided by kappa
    expected = (0.25 * (0.125 + 4.5) / 2 + (0.25 * 0.125 + 0.75 * 2.0) / 2) / 4
    assert quantile_huber_loss(pred, target, kappa=4.0).item() == pytest.approx(expected)


def test_quantile_huber_loss_and_its_gradient_equal_the_written_out_formula():
    torch.manual_seed(0)
    pred = (torch.randn(6, 8) * 2).requires_grad_(True)
    target, mask = torch.randn(6, 8) * 2, (torch.rand(6) > 0.3).float()
    for kappa in (1.0, 0.5):
        u = target.unsqueeze(-2) - pred.unsqueeze(-1)
        huber = torch.where(u.abs() <= kappa, 0.5 * u ** 2, kappa * (u.abs() - 0.5 * kappa))
        tau = quantile_midpoints(8).unsqueeze(-1)
        per_sample = ((tau - (u < 0).float()).abs() * huber / kappa).mean(-1).sum(-1)
        written = (per_sample * mask).sum() / mask.sum()
        (g_written,) = torch.autograd.grad(written, pred)
        fused = quantile_huber_loss(pred, target, kappa, mask)
        (g_fused,) = torch.autograd.grad(fused, pred)
        torch.testing.assert_close(fused, written)
        torch.testing.assert_close(g_fused, g_written)


def test_target_uses_lower_mean_critic_and_subtracts_alpha_log_pi_from_every_quantile():
    # sample 0: critic 1 has the lower mean (though the larger top quantile); sample 1: critic 2 does
    q1 = torch.tensor([[-5.0, 0.0, 9.0], [1.0, 2.0, 3.0]])
    q2 = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
    ret, disc, log_prob, alpha = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.0]), torch.tensor([-2.0, 3.0]), 0.1
    target = qrsac_target(ret, disc, q1, q2, log_prob, alpha)
    torch.testing.assert_close(target[0], 1.0 + 0.5 * (q1[0] + 0.2))
    torch.testing.assert_close(target[1], torch.full((3,), 2.0))  # terminated: no bootstrap at all
    target = qrsac_target(ret, torch.tensor([0.5, 1.0]), q1, q2, log_prob, alpha)
    torch.testing.assert_close(target[1], 2.0 + (q2[1] - 0.3))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_acts_and_updates_with_the_right_shapes(variant):
    torch.manual_seed(0)
    agent, preset = make_agent(variant)
    n, hidden_size = 3, agent.hidden_size
    assert hidden_size == (0 if variant in ("no_rnn", "gt_sophy") else 128 if variant == "hidden_128" else 16)
    if variant == "gt_sophy":
        assert "image" not in agent.replay_keys
    obs = {k: np.zeros((n, *s.shape), s.dtype) for k, s in OBS_SPACE.spaces.items()}
    action, hidden = agent.act(obs, agent.initial_hidden(n))
    assert action.shape == (n, 2) and np.all(np.abs(action) <= 1) and hidden.shape == (n, hidden_size)
    batch = random_batch(agent, preset)
    before = {name: p.detach().clone() for name, p in
              [*agent.actor.named_parameters(prefix="actor"), *agent.critics.named_parameters(prefix="critic")]}
    metrics = agent.update(batch)
    assert all(np.isfinite(v) for v in metrics.values())
    after = dict([*agent.actor.named_parameters(prefix="actor"), *agent.critics.named_parameters(prefix="critic")])
    unchanged = [name for name, p in after.items() if torch.equal(p, before[name])]
    assert not unchanged, f"parameters without a gradient step: {unchanged}"
    b, L = batch["mask"].shape
    features, _ = agent.critics[0].torso.unroll(batch["obs"], torch.zeros(b, agent.critics[0].torso.hidden_size),
                                                batch["first"], burn_in=preset.replay.burn_in)
    q = agent.critics[0].quantiles(features[:, :L], batch["action"][:, preset.replay.burn_in:][:, :L])
    assert q.shape == (b, L, preset.agent.num_quantiles)


@pytest.mark.parametrize("zero_hidden", [False, True])
def test_burn_in_starts_from_the_stored_hidden_state(zero_hidden, monkeypatch):
    agent, preset = make_agent(zero_hidden_init=zero_hidden)
    batch = random_batch(agent, preset)
    assert batch["hidden"].abs().sum() > 0
    seen = []
    unroll = agent.actor.torso.unroll
    monkeypatch.setattr(agent.actor.torso, "unroll", lambda obs, h, *a, **k: (seen.append(h.clone()),
                                                                              unroll(obs, h, *a, **k))[1])
    agent.update(batch)
    expected = torch.zeros_like(batch["hidden"]) if zero_hidden else batch["hidden"]
    torch.testing.assert_close(seen[0], expected)


def test_recurrence_resets_at_episode_starts_inside_a_window():
    """The segmented GRU equals a step-by-step GRU whose state is zeroed wherever ``first`` is set."""
    agent, _ = make_agent()
    torso = agent.actor.torso
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 9, torso.gru.input_size, generator=g)
    h0 = torch.randn(3, torso.hidden_size, generator=g)
    first = torch.zeros(3, 9, dtype=torch.bool)
    first[0, 0] = first[0, 4] = first[1, 7] = True  # row 2: no boundary at all
    out, h = torso._recur(x, h0, first)
    ref, hs = [], h0
    for t in range(9):
        hs = torch.where(first[:, t:t + 1], 0.0, hs)
        hs = torso.gru(x[:, t:t + 1], hs.unsqueeze(0).contiguous())[1].squeeze(0)
        ref.append(hs)
    torch.testing.assert_close(out, torch.stack(ref, 1))
    torch.testing.assert_close(h, ref[-1])


def test_bounded_features_reach_the_networks_in_units_of_their_bounds():
    """'scaled': the steering angles in units of full lock, the deltas in 3-degree steps, the inputs by their
    ranges; unbounded features (speeds, course points) symlog."""
    from gtvision.env.racing import observation_space

    from gtvision.agent.networks import Torso

    space = observation_space(64, math.radians(20.0))
    torso = Torso(space, ("proprio",), False, 0, dataclasses.replace(get_preset("smoke").agent,
                                                                     vector_transform="scaled"))
    p = torch.zeros(1, 1, 18)
    p[0, 0, 0], p[0, 0, 9], p[0, 0, 10] = 100.0, -0.5, 1.0
    p[0, 0, 12], p[0, 0, 15] = math.radians(10.0), math.radians(-3.0)
    proprio = torso.embed({"proprio": p})[0, 0]
    assert float(proprio[0]) == pytest.approx(math.log1p(100.0))      # speed (m/s): unbounded, symlog
    assert float(proprio[9]) == pytest.approx(-0.5)                   # steering input, already in [-1, 1]
    assert float(proprio[10]) == pytest.approx(1.0)                   # full throttle: [0, 1] -> 1
    assert float(proprio[11]) == pytest.approx(-1.0)                  # no brake: [0, 1] -> -1
    assert float(proprio[12]) == pytest.approx(0.5)                   # half lock
    assert float(proprio[15]) == pytest.approx(-1.0)                  # one full 3-degree step to the right


def test_the_steering_history_is_visible_to_the_networks_on_biai_driving():
    """Under symlog alone the steering angles and deltas of BIAI driving (a few hundredths of a radian) reach
    the networks with a standard deviation of about 0.01 to 0.04, next to about 1 for the course points: the
    critic cannot see what the steering penalties depend on. Scaled by their bounds they are 0.05 to 0.2."""
    import gymnasium as gym

    from gtvision.agent.networks import Torso

    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=4, vectorization_mode="vector_entry_point", num_opponents=3)
    obs, _ = envs.reset(seed=0)
    space, cfg = envs.single_observation_space, get_preset("smoke").agent
    torsos = {t: Torso(space, ("proprio",), False, 0, dataclasses.replace(cfg, vector_transform=t))
              for t in ("scaled", "symlog")}
    seen = {t: [] for t in torsos}
    for step in range(120):
        obs, *_ = envs.step(envs.unwrapped.biai_actions())
        for t, torso in torsos.items():
            seen[t].append(torso.embed({"proprio": torch.as_tensor(obs["proprio"])[:, None]})[:, 0])
    envs.close()
    std = {t: torch.cat(v).std(0) for t, v in seen.items()}
    steering = slice(12, 18)  # s (3) and d (3)
    assert float(std["symlog"][steering].max()) < 0.05
    assert float(std["scaled"][steering].min()) > 0.05
    assert (std["scaled"][steering] > 2.5 * std["symlog"][steering]).all()


def test_a_critic_trunk_normalises_the_state_before_the_action_joins_it():
    agent, _ = make_agent(critic_trunk=16)
    critic = agent.critics[0]
    assert isinstance(critic.trunk[1], torch.nn.LayerNorm) and critic.head[0].in_features == 16 + 2
    features = torch.randn(5, critic.torso.feature_dim) * 100.0
    trunk_out = critic.trunk(features)
    assert trunk_out.abs().max() <= 1.0   # tanh of a normalised layer: the state at the action's scale
    a = torch.zeros(5, 2)
    assert not torch.allclose(critic.quantiles(features, a), critic.quantiles(features, a + 0.5))
    assert make_agent(critic_trunk=0)[0].critics[0].trunk is None  # the paper's critic: no trunk
    assert get_preset("paper").agent.critic_trunk == get_preset("cpu").agent.critic_trunk == 64  # ours: in both


def test_opponent_proximity_adds_each_cars_nearness_in_car_lengths():
    from gtvision.agent.networks import car_nearness

    grid = torch.zeros(1, 1, 14, 6)
    grid[0, 0, 0, :2] = torch.tensor([4.2, 0.0])    # touching the car ahead
    grid[0, 0, 1, :2] = torch.tensor([4.62, 0.3])   # a tenth of a length behind it
    grid[0, 0, 7, :2] = torch.tensor([-1.0, 2.0])   # alongside, touching
    near = car_nearness(grid)[0, 0]
    assert float(near[0]) == pytest.approx(0.0, abs=1e-6) and float(near[7]) == pytest.approx(0.0, abs=1e-6)
    assert float(near[1]) == pytest.approx(math.log1p(0.4), abs=1e-4)
    assert float(near[2]) == pytest.approx(-math.log1p(4.0))   # an empty row
    agent, _ = make_agent("gt_sophy", opponent_proximity=True)
    plain, _ = make_agent("gt_sophy")
    for net in (agent.actor, agent.critics[0]):
        assert net.torso.feature_dim == plain.actor.torso.feature_dim + 14
    obs = {k: torch.zeros(1, 1, *OBS_SPACE[k].shape) for k in agent.actor.torso.vector_keys}
    obs["opponent_grid"] = grid
    x = agent.actor.torso.embed(obs)[0, 0]
    assert torch.isclose(x, near[1]).any() and agent.actor.torso.embed(obs).shape[-1] == agent.actor.torso.feature_dim


@pytest.mark.parametrize("transform", ["symlog", "none"])
def test_vector_observations_are_symlog_scaled_before_the_networks(transform):
    agent, _ = make_agent(vector_transform=transform)
    torso = agent.critics[0].torso
    obs = {k: torch.zeros(1, 1, *OBS_SPACE[k].shape) for k in torso.vector_keys}
    obs["proprio"][0, 0, 0] = 100.0  # a speed in m/s
    x = torso.embed(obs)
    expected = math.log1p(100.0) if transform == "symlog" else 100.0
    assert float(x[0, 0, 0]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="vector_transform"):
        make_agent(vector_transform="tanh")


@pytest.mark.parametrize(("target_entropy", "direction"), [(None, 0), (10.0, 1), (-100.0, -1)])
def test_alpha_is_fixed_unless_a_target_entropy_tunes_it(target_entropy, direction):
    agent, preset = make_agent(target_entropy=target_entropy)
    batch = random_batch(agent, preset)
    before = agent.alpha
    for _ in range(3):
        metrics = agent.update(batch)
    assert metrics["policy/alpha"] == agent.alpha
    # entropy below the target (10 nats for 2 actions is unreachable): alpha grows; far above it: alpha shrinks
    assert np.sign(round(agent.alpha - before, 12)) == direction
    if target_entropy is None:
        assert agent.alpha == pytest.approx(preset.agent.alpha)


def test_burn_in_runs_without_gradients():
    agent, preset = make_agent()
    batch = random_batch(agent, preset)
    torso, bi = agent.actor.torso, preset.replay.burn_in
    obs = dict(batch["obs"])
    obs["proprio"] = obs["proprio"].clone().requires_grad_(True)
    features, _ = torso.unroll(obs, batch["hidden"], batch["first"], burn_in=bi)
    assert features.shape[1] == obs["proprio"].shape[1] - bi
    features.sum().backward()
    assert obs["proprio"].grad[:, :bi].abs().sum() == 0  # the burn-in only sets the recurrent state
    assert obs["proprio"].grad[:, bi:].abs().sum() > 0


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_a_delayed_actor_steps_every_nth_update_and_the_critics_every_update():
    torch.manual_seed(0)
    agent, preset = make_agent(actor_update_every=3, target_entropy=-2.0)
    batch = random_batch(agent, preset)
    for n in range(1, 7):
        actor, critics, alpha = _params(agent.actor), _params(agent.critics), agent.alpha
        metrics = agent.update(batch)
        assert not _same(critics, _params(agent.critics))  # the critics step every update
        stepped = n % 3 == 0
        assert _same(actor, _params(agent.actor)) != stepped, n
        assert (alpha != agent.alpha) == stepped, n
        assert ("losses/actor" in metrics) == (n >= 3)  # reported from the last actor step
    state = agent.state_dict()
    resumed, _ = make_agent(actor_update_every=3, target_entropy=-2.0)
    resumed.load_state_dict(state)
    assert resumed.updates == agent.updates == 6  # a resumed run keeps the count, and so the rhythm


@pytest.mark.parametrize(("sequences", "reads_the_rest"), [(None, True), (2, False)])
def test_a_smaller_actor_batch_trains_the_actor_on_its_first_sequences_only(sequences, reads_the_rest,
                                                                           monkeypatch):
    """With the critics held still, the actor's step on a batch and on the same batch with the images of its
    sequences 2.. replaced differ only when the actor trains on every sequence."""
    def step(images_of_the_rest):
        torch.manual_seed(0)
        agent, preset = make_agent(actor_sequences=sequences)
        monkeypatch.setattr(agent.critic_opt, "step", lambda: None)
        batch = random_batch(agent, preset)
        batch["obs"] = dict(batch["obs"])
        batch["obs"]["image"] = batch["obs"]["image"].clone()
        batch["obs"]["image"][2:] = images_of_the_rest
        before = _params(agent.actor)
        agent.update(batch)
        assert not _same(before, _params(agent.actor))  # the actor learns from its sequences
        return _params(agent.actor)

    assert _same(step(0), step(255)) != reads_the_rest


def test_channels_last_and_bfloat16_encoders_compute_the_float32_encoders_features():
    torch.manual_seed(0)
    agent, preset = make_agent()
    batch = random_batch(agent, preset)
    image = batch["obs"]["image"][:, 0]
    reference = agent.actor.torso.encoders["image"](image)
    for changes, tolerance in (({"channels_last": True}, 1e-5), ({"image_dtype": "bfloat16"}, 0.05)):
        other, _ = make_agent(**changes)
        other.actor.load_state_dict(agent.actor.state_dict())
        features = other.actor.torso.encoders["image"](image)
        assert features.dtype == torch.float32
        assert (features - reference).abs().max() <= tolerance * reference.abs().max(), changes
        other.update(batch)  # and it trains


def test_reset_changes_every_weight_and_clears_the_optimiser():
    torch.manual_seed(0)
    agent, preset = make_agent()
    agent.update(random_batch(agent, preset))
    assert agent.actor_opt.state and agent.critic_opt.state
    old = {name: p.detach().clone() for name, p in
           [*agent.actor.named_parameters(prefix="actor"), *agent.critics.named_parameters(prefix="critic")]}
    agent.reinitialise()
    new = dict([*agent.actor.named_parameters(prefix="actor"), *agent.critics.named_parameters(prefix="critic")])
    assert new.keys() == old.keys()
    same = [name for name in new if torch.equal(new[name], old[name])]
    assert not same, f"not reinitialised: {same}"
    assert not agent.actor_opt.state and not agent.critic_opt.state
    for c, t in zip(agent.critics, agent.critic_targets):
        assert all(torch.equal(a, b) for a, b in zip(c.parameters(), t.parameters()))
    assert agent.actor_opt.param_groups[0]["params"][0] is next(agent.actor.parameters())


def test_shift_pads_by_reflection_and_moves_by_at_most_4_px():
    h = w = 12
    img = torch.arange(h * w * 3, dtype=torch.int64).reshape(1, h, w, 3).remainder(251).to(torch.uint8)
    out = random_shift(img, 4, shifts=torch.tensor([[3, -4]]))
    assert out.dtype == torch.uint8
    # content moves by (3, -4): out[y, x] = img[y + 3, x - 4]
    torch.testing.assert_close(out[0, :h - 3, 4:], img[0, 3:, :w - 4])
    # the uncovered border is the mirror image, edge pixel not repeated: column x - 4 = -1 -> 1, -4 -> 4
    torch.testing.assert_close(out[0, :h - 3, 3], img[0, 3:, 1])
    torch.testing.assert_close(out[0, :h - 3, 0], img[0, 3:, 4])
    torch.testing.assert_close(out[0, h - 1, 4:], img[0, 8, :w - 4])  # row 11 + 3 = 14 -> 2 * 11 - 14 = 8
    assert reflect_index(torch.tensor([-4, -1, 0, 11, 12, 15]), 12).tolist() == [4, 1, 0, 11, 10, 7]
    # random shifts: every (B, T) sequence is moved by one shift within [-4, 4] shared by its frames
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (64, 3, h, w, 3), dtype=torch.uint8)
    out = random_shift(frames, 4)
    for b in range(64):
        found = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                 if torch.equal(random_shift(frames[b:b + 1], 4, shifts=torch.tensor([[dy, dx]])), out[b:b + 1])]
        assert len(found) == 1


def test_act_resamples_unless_eval_mode():
    agent, _ = make_agent()
    obs = {k: np.zeros((1, *s.shape), s.dtype) for k, s in OBS_SPACE.spaces.items()}
    h = agent.initial_hidden(1)
    a1, h1 = agent.act(obs, h, eval_mode=True)
    a2, h2 = agent.act(obs, h, eval_mode=True)
    np.testing.assert_array_equal(a1, a2)
    torch.testing.assert_close(h1, h2)
    assert not torch.equal(h1, h)  # the GRU consumed the observation


def test_box_observation_space_and_unknown_names():
    box = spaces.Box(-1, 1, (5,), np.float32)
    preset = get_preset("smoke")
    cfg = dataclasses.replace(preset.agent, actor_keys=None, critic_keys=None)
    agent = QRSACAgent(box, spaces.Box(-2, 2, (1,), np.float32), cfg, burn_in=preset.replay.burn_in)
    action, _ = agent.act(np.zeros((4, 5), np.float32), agent.initial_hidden(4))
    assert action.shape == (4, 1) and np.all(np.abs(action) <= 2)
    with pytest.raises(KeyError, match="valid"):
        QRSACAgent(box, ACTION_SPACE, preset.agent)
    with pytest.raises(ValueError, match="valid: paper, cpu, smoke"):
        get_preset("laptop")
    with pytest.raises(ValueError, match="valid: asymmetric"):
        get_preset("smoke", "no_critic")


def test_paper_preset_holds_the_papers_numbers():
    p = get_preset("paper")
    assert (p.agent.cnn_channels, p.agent.cnn_kernels, p.agent.cnn_strides) == ((32, 64, 64), (8, 4, 3), (4, 2, 1))
    assert (p.agent.image_embed, p.agent.hidden_size, p.agent.actor_width, p.agent.actor_depth) == (512, 512, 2048, 4)
    assert (p.agent.critic_width, p.agent.critic_depth, p.agent.num_quantiles) == (2048, 4, 32)
    assert (p.agent.gamma, p.agent.n_step, p.agent.alpha, p.agent.actor_lr) == (0.9896, 7, 0.01, 2.5e-5)
    assert (p.replay.batch_sequences * p.replay.seq_len, p.replay.burn_in, p.replay.capacity) == (512, 16, 5_000_000)
    assert (p.train.reset_epoch, p.train.epochs, p.agent.max_shift_px) == (2000, 20_000, 4)
    assert set(PRESET_NAMES) == {"paper", "cpu", "smoke"}


def test_cpu_preset_trains_on_the_papers_full_reward_with_the_learning_recipe():
    """The levers that made learning work under the full reward (LOG.md) are the cpu preset's: the paper's
    weights from the first epoch (no ramp), 1-step returns, a tuned alpha from a narrow fresh policy, an
    update per step, and the BIAI's demonstrations in racing environments only."""
    import gymnasium as gym

    from gtvision.agent.loop import PenaltyRamp
    from gtvision.agent.presets import resolve
    from gtvision.rewards import TERM_NAMES, RewardConfig

    p = get_preset("cpu", "gt_sophy")
    assert p.train.penalty_ramp_epochs == 0 and p.train.penalty_scale(0) == 1.0
    paper = [RewardConfig().weights()[k] for k in TERM_NAMES]
    assert list(PenaltyRamp(p.train, RewardConfig()).weights(0)) == pytest.approx(paper)
    assert (p.agent.n_step, p.agent.gamma, p.agent.target_entropy, p.agent.init_log_std) == (1, 0.99, -2.0, -1.0)
    assert p.train.updates_per_epoch == p.train.env_steps_per_epoch and p.agent.critic_trunk == 64
    assert p.train.demo_steps == 20_000 and p.train.demo_share == 0.5
    # with a teacher (gtvision train --teacher), 8 DAgger rounds of 8,000 steps and 1,000 updates first
    assert (p.train.distill_rounds, p.train.distill_steps, p.train.distill_updates) == (8, 8000, 1000)
    assert get_preset("paper").train.distill_rounds == 0
    pendulum = resolve("cpu", "asymmetric", observation_space=gym.make("Pendulum-v1").observation_space,
                       reward_terms=False)
    assert pendulum.train.demo_steps == 0   # no BIAI to demonstrate another task


def test_training_loop_smoke_on_a_gymnasium_task_and_on_tokyo():
    from gtvision.agent.loop import train_local
    preset = get_preset("smoke")
    generic = dataclasses.replace(preset, agent=dataclasses.replace(preset.agent, actor_keys=None, critic_keys=None))
    agent, _, history = train_local("Pendulum-v1", generic, epochs=2)
    assert [h["epoch"] for h in history] == [1, 2]
    assert np.isfinite(history[-1]["losses/critic"])
    assert not agent.actor_opt.state  # smoke: reinitialised at the end of epoch 2, after its updates
    agent, _, history = train_local("gtvision/Tokyo-v0", preset, epochs=1)
    assert history[-1]["charts/transitions"] >= 60 and np.isfinite(history[-1]["losses/actor"])


def test_training_loop_stores_the_hidden_state_entering_each_observation():
    import gymnasium as gym
    from test_replay import CountingEnv

    from gtvision.agent.loop import train_local
    preset = get_preset("smoke")
    preset = dataclasses.replace(
        preset, agent=dataclasses.replace(preset.agent, actor_keys=("vec",), critic_keys=("vec",)),
        train=dataclasses.replace(preset.train, env_steps_per_epoch=60, learning_starts=10 ** 9))
    envs = gym.vector.SyncVectorEnv([lambda i=i: CountingEnv(offset=i) for i in range(2)])
    agent, replay, _ = train_local(envs, preset, epochs=1)  # no updates: the actor is the one that acted
    for e in range(2):
        rows = slice(e * replay.stream_capacity, e * replay.stream_capacity + replay.size[e])
        vec = torch.as_tensor(replay.storage["obs/vec"][rows])
        stored = torch.as_tensor(replay.storage["hidden"][rows].astype(np.float32))
        first, last = replay.storage["first"][rows], replay.storage["last"][rows]
        assert first[0] and first.sum() >= 3
        h = agent.initial_hidden(1)
        for t in range(len(vec)):
            if first[t]:
                h = agent.initial_hidden(1)
            if not last[t]:
                torch.testing.assert_close(stored[t], h[0], atol=2e-3, rtol=0)  # stored as float16
            _, h = agent.actor.torso.unroll({"vec": vec[t][None, None]}, h)


def test_penalty_ramp_trains_on_rescaled_penalties_relabelled_from_the_stored_terms():
    import gymnasium as gym

    from gtvision.agent.loop import LocalTrainer
    from gtvision.rewards import TERM_NAMES, RewardConfig
    preset = get_preset("smoke")
    preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, penalty_ramp_epochs=2,
                                                                   penalty_start=0.1, reset_epoch=None))
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        num_opponents=0, start_speed_mps=20.0)
    trainer = LocalTrainer(envs, preset, seed=0)
    scales = [trainer.run_epoch()["train/penalty_scale"] for _ in range(3)]
    assert scales == pytest.approx([0.1, 0.55, 1.0])
    w0, paper = trainer.ramp.weights(0), RewardConfig().weights()
    for name, w in zip(TERM_NAMES, w0):
        expected = paper[name] * (1.0 if name in ("progress", "overtaking") else 0.1)
        assert w == pytest.approx(expected)
    # the stored terms at full weights give back every reward the environment returned
    s = trainer.replay.storage
    live = ~s["last"]
    relabelled = s["reward_terms"][live] @ trainer.ramp.weights(2)
    np.testing.assert_allclose(relabelled, s["reward"][live], atol=1e-4)
    assert np.abs(s["reward"][live]).max() > 0.1
    trainer.close()


def test_contact_boost_scales_only_the_car_contact_weights_and_falls_to_the_papers():
    import gymnasium as gym

    from gtvision.agent.loop import LocalTrainer
    from gtvision.agent.presets import resolve
    from gtvision.rewards import TERM_NAMES, RewardConfig
    preset = get_preset("smoke")
    preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, contact_boost=5.0,
                                                                   contact_boost_epochs=2, reset_epoch=None))
    envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=2, vectorization_mode="vector_entry_point",
                        num_opponents=3, start_speed_mps=20.0)
    trainer = LocalTrainer(envs, preset, seed=0)
    records = [trainer.run_epoch() for _ in range(3)]
    assert [r["train/contact_scale"] for r in records] == pytest.approx([5.0, 3.0, 1.0])
    assert [r["train/penalty_scale"] for r in records] == [1.0, 1.0, 1.0]
    paper = RewardConfig().weights()
    for epoch, scale in ((0, 5.0), (1, 3.0), (2, 1.0), (50, 1.0)):
        for name, w in zip(TERM_NAMES, trainer.ramp.weights(epoch)):
            assert w == pytest.approx(paper[name] * (scale if name in ("car_velocity", "car_fixed") else 1.0))
    # the environment's reward stays the paper's: the stored terms at the paper's weights give it back
    s = trainer.replay.storage
    live = ~s["last"]
    np.testing.assert_allclose(s["reward_terms"][live] @ trainer.ramp.weights(2), s["reward"][live], atol=1e-4)
    trainer.close()
    with pytest.raises(ValueError, match="contact_boost"):
        dataclasses.replace(preset.train, contact_boost=0.5)
    pendulum = resolve("cpu", "asymmetric", {"train.contact_boost": 3.0, "train.contact_boost_epochs": 10},
                       observation_space=gym.make("Pendulum-v1").observation_space, reward_terms=False)
    assert not pendulum.train.reweighs


def test_penalty_ramp_refuses_an_environment_without_reward_terms():
    import gymnasium as gym

    from gtvision.agent.loop import LocalTrainer
    preset = get_preset("smoke")
    preset = dataclasses.replace(preset,
                                 agent=dataclasses.replace(preset.agent, actor_keys=None, critic_keys=None),
                                 train=dataclasses.replace(preset.train, penalty_ramp_epochs=5))
    with pytest.raises(ValueError, match="penalty_ramp_epochs=5 needs a gtvision racing environment"):
        LocalTrainer(gym.make_vec("Pendulum-v1", num_envs=2), preset)


def test_init_log_std_sets_a_fresh_policys_spread():
    agent, _ = make_agent(init_log_std=-1.2)
    obs = {k: torch.as_tensor(v) for k, v in OBS_SPACE.sample().items()}
    features, _ = agent.actor.torso.unroll({k: v[None, None] for k, v in obs.items()},
                                           agent.initial_hidden(1))
    mean, log_std = agent.actor.distribution(features)
    assert log_std.detach().numpy() == pytest.approx(-1.2, abs=0.05)
    assert mean.abs().max().item() < 0.05
    default, _ = make_agent()
    _, log_std_default = default.actor.distribution(default.actor.torso.unroll(
        {k: v[None, None] for k, v in obs.items()}, default.initial_hidden(1))[0])
    assert (log_std_default - (-1.2)).abs().max().item() > 0.05


def test_demonstrations_fill_their_share_of_every_batch_and_collection_never_overwrites_them(monkeypatch):
    import gymnasium as gym

    from gtvision.agent.loop import LocalTrainer
    preset = get_preset("smoke", "gt_sophy")
    preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, demo_steps=120, demo_share=0.25,
                                                                   reset_epoch=None))
    kwargs = {"num_opponents": 1, "start_speed_mps": 20.0, "max_time_s": 3.0}
    trainer = LocalTrainer(gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **kwargs), preset, seed=0)
    demos = trainer.add_demonstrations(gym.make_vec("gtvision/Tokyo-v0", num_envs=2, **kwargs), 120, seed=3)
    assert len(demos) >= 120 and demos.storage["last"].sum() >= 2  # 3 s episodes: several ended, kept whole
    before = {k: v.copy() for k, v in demos.storage.items()}
    drawn = []
    for name, replay in (("demos", demos), ("online", trainer.replay)):
        original = replay.sample
        monkeypatch.setattr(replay, "sample", lambda b=None, *, _o=original, _n=name, **kw: drawn.append((_n, b))
                            or _o(b, **kw))
    for _ in range(3):
        trainer.run_epoch()
    assert trainer.updates > 0
    assert set(drawn) == {("demos", 1), ("online", 3)}  # 4 sequences a batch, a quarter from the BIAI
    for k, v in before.items():
        np.testing.assert_array_equal(demos.storage[k], v, err_msg=k)
    # the BIAI drove them: its actions are stored, and they are not the policy's
    rows = np.concatenate([i * demos.stream_capacity + np.arange(n) for i, n in enumerate(demos.size)])
    live = rows[~demos.storage["last"][rows]]
    assert np.abs(demos.storage["action"][live]).max() > 0.1
    trainer.close()


def test_demonstrations_need_a_racing_environment():
    import gymnasium as gym

    from gtvision.agent.loop import LocalTrainer
    preset = get_preset("smoke")
    preset = dataclasses.replace(preset, agent=dataclasses.replace(preset.agent, actor_keys=None, critic_keys=None))
    trainer = LocalTrainer(gym.make_vec("Pendulum-v1", num_envs=2), preset)
    with pytest.raises(ValueError, match="demo_steps=100 needs a gtvision racing environment"):
        trainer.add_demonstrations(gym.make_vec("Pendulum-v1", num_envs=2), 100)


def test_the_gap_keeper_caps_the_throttle_only_when_closing_on_a_car_ahead_in_lane():
    from gtvision.agent.shield import gap_keep

    grid = torch.zeros(4, 14, 6)
    grid[0, 0, :3] = torch.tensor([4.18 + 0.5, 0.3, -3.0])   # 0.5 m ahead in lane, closing at 3 m/s: brake
    grid[1, 0, :3] = torch.tensor([4.18 + 0.5, 3.5, -3.0])   # the same, a lane to the left: untouched
    grid[2, 0, :3] = torch.tensor([4.18 + 8.0, 0.0, -3.0])   # 8 m ahead: untouched
    grid[3, 7, :3] = torch.tensor([-4.5, 0.0, 3.0])          # a car behind, closing on the learner: untouched
    action = torch.tensor([[0.3, 1.0]] * 4)
    out = gap_keep(action, grid, torch.zeros(4, 18))
    # the ceiling: (a_ahead + a_self + 2 (1.5 (0.5 - 0.4) - 3)) / 8 = -0.7125
    assert float(out[0, 1]) == pytest.approx(-0.7125) and torch.equal(out[1:], action[1:])
    assert torch.equal(out[:, 0], action[:, 0])               # steering is never touched
    # a stricter keeper (hold 1 m, look 9 m): the ceiling (0 + 0 + 2 (1.5 (0.5 - 1) - 3)) / 8 = -0.9375, and the
    # car 8 m ahead is watched too: 2 (1.5 (8 - 1) - 3) / 8 > 1, no cap
    strict = gap_keep(action, grid, torch.zeros(4, 18), hold_m=1.0, look_m=9.0)
    assert float(strict[0, 1]) == pytest.approx(-0.9375) and torch.equal(strict[1:], action[1:])
    fast = grid.clone()
    fast[2, 0, 2] = -12.0                                      # ... closing at 12 m/s: 2 (10.5 - 12) / 8 = -0.375
    assert float(gap_keep(action, fast, torch.zeros(4, 18), hold_m=1.0, look_m=9.0)[2, 1]) == pytest.approx(-0.375)
    assert torch.equal(gap_keep(action, fast, torch.zeros(4, 18))[2], action[2])   # beyond the default 3 m
    agent, _ = make_agent("gt_sophy")
    obs = {k: np.zeros((4, *s.shape), s.dtype) for k, s in OBS_SPACE.spaces.items()}
    obs["opponent_grid"] = grid.numpy()
    plain, _ = agent.act(obs, agent.initial_hidden(4), eval_mode=True)
    agent.config = dataclasses.replace(agent.config, gap_keeper=True)
    kept, _ = agent.act(obs, agent.initial_hidden(4), eval_mode=True)
    assert kept[0, 1] == pytest.approx(min(plain[0, 1], -0.7125)) and np.array_equal(kept[1:], plain[1:])
    with pytest.raises(ValueError, match="opponent_grid"):   # the vision actor reads no privileged features
        make_agent("asymmetric", gap_keeper=True)


def test_the_side_keeper_steers_away_only_from_a_car_alongside_closing_too_fast():
    from gtvision.agent.shield import side_keep

    grid = torch.zeros(5, 14, 6)
    grid[0, 0, :4] = torch.tensor([1.0, 1.95 + 0.6, 0.0, -1.0])    # on the left, 0.6 m apart, closing at 1 m/s
    grid[1, 7, :4] = torch.tensor([-2.0, -(1.95 + 0.6), 0.0, 1.0])  # its mirror on the right, a car behind
    grid[2, 0, :4] = torch.tensor([1.0, 1.95 + 0.6, 0.0, 1.0])     # on the left, opening: untouched
    grid[3, 0, :4] = torch.tensor([6.0, 1.95 + 0.6, 0.0, -1.0])    # ahead, not overlapping: untouched
    grid[4, 0, :4] = torch.tensor([1.0, 1.95 + 3.0, 0.0, -1.0])    # 3 m apart: untouched
    action = torch.tensor([[0.8, 0.5]] * 5)
    out = side_keep(action, grid)
    # the excess: 1 - 2 (0.6 - 0.5) = 0.8 m/s, the bound -0.6 * 0.8 = -0.48
    assert float(out[0, 0]) == pytest.approx(-0.48)
    assert float(side_keep(-action, grid)[1, 0]) == pytest.approx(0.48)   # mirrored: steer left
    assert torch.equal(out[2:], action[2:]) and torch.equal(out[:, 1], action[:, 1])   # throttle untouched
    both = grid[:1].clone()
    both[0, 7, :4] = torch.tensor([-1.0, -(1.95 + 0.6), 0.0, 1.0])   # closing from both sides: the midpoint
    assert float(side_keep(action[:1], both)[0, 0]) == pytest.approx(0.0, abs=1e-6)
    agent, _ = make_agent("gt_sophy")
    obs = {k: np.zeros((5, *s.shape), s.dtype) for k, s in OBS_SPACE.spaces.items()}
    obs["opponent_grid"] = grid.numpy()
    plain, _ = agent.act(obs, agent.initial_hidden(5), eval_mode=True)
    agent.config = dataclasses.replace(agent.config, side_keeper=True)
    kept, _ = agent.act(obs, agent.initial_hidden(5), eval_mode=True)
    assert kept[0, 0] == pytest.approx(min(plain[0, 0], -0.48)) and np.array_equal(kept[2:], plain[2:])
    with pytest.raises(ValueError, match="side_keeper"):   # the vision actor reads no privileged features
        make_agent("asymmetric", side_keeper=True)


def test_a_seen_shield_weight_trains_the_head_in_rl_on_the_layers_bounds_of_the_replays_privileged_features():
    from gtvision.agent.shield import layer_bounds

    agent, preset = make_agent("asymmetric", seen_shield=True, seen_shield_weight=10.0, gap_hold_m=1.0,
                               gap_look_m=5.0, actor_lr=3e-3)
    batch = random_batch(agent, preset)
    bi, L = agent.burn_in, batch["mask"].shape[1]
    labels = layer_bounds(batch["obs"]["opponent_grid"][:, bi:bi + L].flatten(0, 1),
                          batch["obs"]["proprio"][:, bi:bi + L].flatten(0, 1), True, True, 1.0, 5.0)
    assert (labels[:, 0] < 1).float().mean() > 0.1 and (labels[:, 1:] != torch.tensor([-1.0, 1.0])).any()

    def error():
        with torch.no_grad():
            feats, _ = agent.actor.torso.unroll(batch["obs"], batch["hidden"], batch["first"], burn_in=bi)
            return float(agent.seen_shield_error(feats[:, :L], batch["obs"], batch["mask"]))

    before = error()
    metrics = [agent.update(batch) for _ in range(40)]
    assert metrics[0]["losses/seen_shield"] == pytest.approx(before, rel=0.2)   # the shifted image moves it a little
    assert error() < 0.5 * before
    # without the weight the head has no loss in RL: its weights stay where DAgger left them
    plain, preset = make_agent("asymmetric", seen_shield=True)
    head = [p.detach().clone() for p in plain.actor.shield_head.parameters()]
    assert "losses/seen_shield" not in plain.update(random_batch(plain, preset))
    assert all(torch.equal(a, b) for a, b in zip(head, plain.actor.shield_head.parameters()))
    with pytest.raises(ValueError, match="seen_shield_weight=1.0 trains a seen shield in RL; this actor has none"):
        make_agent("asymmetric", seen_shield_weight=1.0)
    with pytest.raises(ValueError, match=r"neither actor nor critics read \['opponent_grid'\]"):
        make_agent("asymmetric", seen_shield=True, seen_shield_weight=1.0, critic_keys=("proprio", "course_points"))


def test_a_privileged_shield_bounds_only_the_training_steps_and_racing_goes_through_the_seen_one():
    agent, _ = make_agent("asymmetric", seen_shield=True, seen_shield_training="privileged", gap_hold_m=1.0,
                          gap_look_m=5.0)
    obs = {k: np.zeros((2, *s.shape), s.dtype) for k, s in OBS_SPACE.spaces.items()}
    obs["opponent_grid"][0, 0, :3] = [4.18 + 0.5, 0.3, -3.0]   # race 0: closing fast on a car ahead in lane
    torch.manual_seed(0)
    trained = [agent.act(obs, agent.initial_hidden(2))[0] for _ in range(20)]   # sampled: some full throttles
    # the ceiling (0 + 0 + 2 (1.5 (0.5 - 1) - 3)) / 8 = -0.9375 on race 0, none on race 1
    assert max(a[0, 1] for a in trained) <= -0.9375 + 1e-6 and max(a[1, 1] for a in trained) > 0.0
    raced, _ = agent.act(obs, agent.initial_hidden(2), eval_mode=True)
    features, _ = agent.step_features(obs, agent.initial_hidden(2))
    want = agent.keep_seen(agent._to_env_action(agent.actor.sample(features, deterministic=True)[0]), features).detach()
    np.testing.assert_allclose(raced, want.numpy())                     # racing: its own head's bounds, not the layers'
    clear = {**obs, "opponent_grid": np.zeros_like(obs["opponent_grid"])}
    np.testing.assert_array_equal(agent.act(clear, agent.initial_hidden(2), eval_mode=True)[0], raced)
    with pytest.raises(ValueError, match="seen_shield_training='privileged' bounds the training steps"):
        make_agent("asymmetric", seen_shield_training="privileged")
    with pytest.raises(ValueError, match="seen_shield_training"):
        make_agent("asymmetric", seen_shield=True, seen_shield_training="oracle")
