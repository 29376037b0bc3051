"""QR-SAC (paper III-D, IV-B): the quantile loss, the target, and the agent.

The update follows Sony's public QR-SAC: the quantile Huber loss (kappa 1, tau_i = (2i + 1) / 2N); the
target takes, per sample, the target critic with the lower mean and subtracts alpha log pi(a'|s') from
every quantile; n-step returns.

The agent's API follows DrQ-v2: ``act(obs, hidden, eval_mode) -> (action, hidden)`` and
``update(batch) -> metrics``; ``reinitialise()`` is the network reset of paper III-E.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from .augment import random_shift
from .config import AgentConfig
from .networks import Actor, QuantileCritic, as_dict_space
from .shield import gap_keep, keep_bounds, layer_bounds, side_keep


def quantile_midpoints(n: int, device=None) -> torch.Tensor:
    """tau_i = (2i + 1) / 2N, i = 0..N-1: the quantile levels the N outputs estimate, shape (N,)."""
    return (2 * torch.arange(n, device=device, dtype=torch.float32) + 1) / (2 * n)


def quantile_huber_loss(pred: torch.Tensor, target: torch.Tensor, kappa: float = 1.0,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """Quantile Huber loss of Dabney et al. (QR-DQN), as in QR-SAC.

    ``pred`` (..., N) quantiles at tau_i = (2i+1)/2N; ``target`` (..., M) target samples (no gradient).
    With u_ij = target_j - pred_i and Huber_kappa(u) = u^2 / 2 if |u| <= kappa else kappa (|u| - kappa / 2):
    rho_ij = |tau_i - 1{u_ij < 0}| Huber_kappa(u_ij) / kappa; per sample, sum over i and mean over j;
    then the (``mask``-weighted, shape (...)) mean over samples. Returns a scalar.
    """
    p, t = torch.broadcast_tensors(pred.unsqueeze(-1), target.detach().unsqueeze(-2))  # (..., N, M)
    # Huber_kappa(u) in one fused kernel (forward and backward): a tenth of an update's time on a CPU
    huber = nn.functional.huber_loss(p, t, reduction="none", delta=kappa)
    tau = quantile_midpoints(pred.shape[-1], pred.device).unsqueeze(-1)  # (N, 1)
    rho = (tau - (t < p).float()).abs() * huber  # u_ij < 0 <=> target_j < pred_i
    per_sample = rho.mean(-1).sum(-1) / kappa  # (...)
    if mask is None:
        return per_sample.mean()
    return (per_sample * mask).sum() / mask.sum().clamp(min=1)


def qrsac_target(nstep_return: torch.Tensor, discount: torch.Tensor, q1_next: torch.Tensor, q2_next: torch.Tensor,
                 log_prob_next: torch.Tensor, alpha: float) -> torch.Tensor:
    """Target quantiles (..., N) of QR-SAC.

    Per sample the target critic whose quantiles have the lower mean is taken (the distributional form of
    clipped double-Q), alpha * log pi(a'|s') is subtracted from every one of its quantiles, and the result
    is discounted onto the n-step return:  R + discount * (Z_sel(s', a') - alpha log pi(a'|s')).

    ``nstep_return``, ``discount``, ``log_prob_next``: (...); ``q1_next``, ``q2_next``: (..., N).
    """
    lower = (q1_next.mean(-1) <= q2_next.mean(-1)).unsqueeze(-1)
    z_next = torch.where(lower, q1_next, q2_next) - alpha * log_prob_next.unsqueeze(-1)
    return nstep_return.unsqueeze(-1) + discount.unsqueeze(-1) * z_next


def gaussian_kl(t_mean: torch.Tensor, t_log_std: torch.Tensor, mean: torch.Tensor,
                log_std: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of diagonal Gaussians, summed over the last axis."""
    return (log_std - t_log_std + (torch.exp(2 * t_log_std) + (t_mean - mean) ** 2) / (2 * torch.exp(2 * log_std))
            - 0.5).sum(-1)


def polyak_update(online: nn.Module, target: nn.Module, tau: float):
    """target <- (1 - tau) target + tau online, in place."""
    with torch.no_grad():
        t, o = list(target.parameters()), list(online.parameters())
        torch._foreach_lerp_(t, o, tau)


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, T, ...) at time ``index`` (B, L) -> (B, L, ...)."""
    idx = index.reshape(*index.shape, *([1] * (x.dim() - 2))).expand(*index.shape, *x.shape[2:])
    return torch.gather(x, 1, idx)


class QRSACAgent:
    """Asymmetric recurrent QR-SAC: a vision actor, twin quantile critics on the global state."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Box, config: AgentConfig,
                 device: str | torch.device = "cpu", burn_in: int = 16, acting_only: bool = False):
        """``acting_only``: only the actor (a rollout worker's policy copy: no critics, no optimisers)."""
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise TypeError(f"action space {action_space} is not a 1-d Box")
        self.observation_space = as_dict_space(observation_space)
        actor_reads = set(self.observation_space.spaces if config.actor_keys is None else config.actor_keys)
        config.check_layers(actor_reads & set(self.observation_space.spaces))
        self.obs_is_dict = isinstance(observation_space, spaces.Dict)
        self.action_space, self.config, self.device = action_space, config, torch.device(device)
        self.burn_in = burn_in
        self.action_dim = action_space.shape[0]
        self.action_low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device)
        self.action_high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device)
        self.acting_only = acting_only
        self.updates = 0  # update() calls so far (``config.actor_update_every`` counts them)
        self.seen_layers = None
        """Seen layers fitted to this actor (:mod:`gtvision.agent.seen_layers`; an exported agent's part
        ``SEEN_LAYERS``): its actions pass through their bounds in :meth:`act`; or None."""
        self._actor_metrics: dict[str, float] = {}
        self.reinitialise()
        if config.seen_shield_training != "seen" and not config.seen_shield:
            raise ValueError(f"agent.seen_shield_training={config.seen_shield_training!r} bounds the training steps "
                             "in place of a seen shield; this actor has none (agent.seen_shield=False)")
        if config.seen_shield_weight > 0 and not acting_only:
            missing = sorted({"opponent_grid", "proprio"} - set(self.replay_keys))
            if not config.seen_shield:
                raise ValueError(f"agent.seen_shield_weight={config.seen_shield_weight} trains a seen shield in RL; "
                                 "this actor has none (agent.seen_shield=False)")
            if missing:
                raise ValueError(f"agent.seen_shield_weight={config.seen_shield_weight} labels the seen shield from "
                                 f"the replay's opponent_grid and proprio; neither actor nor critics read {missing} "
                                 f"(critic_keys={list(self.critics[0].keys)})")

    # --- networks -----------------------------------------------------------------------------------------
    def reinitialise(self):
        """Fresh networks, targets and optimisers (paper III-E: when the buffer first fills)."""
        cfg, space = self.config, self.observation_space
        self.actor = Actor(space, self.action_dim, cfg).to(self.device)
        if self.acting_only:
            return
        self.critics = nn.ModuleList([QuantileCritic(space, self.action_dim, cfg) for _ in range(2)]).to(self.device)
        self.critic_targets = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr)
        self.log_alpha = torch.tensor(float(np.log(cfg.alpha)), device=self.device,
                                      requires_grad=cfg.target_entropy is not None)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.actor_lr) if self.log_alpha.requires_grad else None

    @property
    def alpha(self) -> float:
        """The entropy coefficient now (fixed unless ``config.target_entropy`` is set)."""
        return float(self.log_alpha.detach().exp())

    @property
    def hidden_size(self) -> int:
        return self.actor.hidden_size

    @property
    def replay_keys(self) -> tuple[str, ...]:
        """Observation keys the replay must store: those of the actor and of the critics."""
        keys = self.actor.keys + self.critics[0].keys
        return tuple(k for k in self.observation_space.spaces if k in keys)

    @property
    def image_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.actor.torso.image_keys + self.critics[0].torso.image_keys))

    def initial_hidden(self, num_envs: int) -> torch.Tensor:
        """Actor state at an episode's start: zeros (num_envs, hidden_size)."""
        return torch.zeros(num_envs, self.hidden_size, device=self.device)

    def _to_env_action(self, a: torch.Tensor) -> torch.Tensor:
        return self.action_low + (a + 1) * 0.5 * (self.action_high - self.action_low)

    def _from_env_action(self, a: torch.Tensor) -> torch.Tensor:
        return (2 * (a - self.action_low) / (self.action_high - self.action_low) - 1).clamp(-1, 1)

    # --- acting -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray] | np.ndarray, hidden: torch.Tensor,
            eval_mode: bool = False) -> tuple[np.ndarray, torch.Tensor]:
        """One control step for N environments.

        ``obs``: batched observations (N, ...) (a dict for Dict spaces); ``hidden`` (N, hidden_size), the
        state entering this step (:meth:`initial_hidden` at an episode's first step). Returns the action
        (N, A) in the action space's units (sampled; the Gaussian's mean squashed if ``eval_mode``) and
        the next hidden state (N, hidden_size).
        """
        features, hidden = self.step_features(obs, hidden)
        action, _ = self.actor.sample(features, deterministic=eval_mode)
        action = self.keep_gap(self._to_env_action(action), obs)
        if self.config.seen_shield and self.config.seen_shield_training == "privileged" and not eval_mode:
            grid, proprio = (torch.as_tensor(obs[k], device=action.device) for k in ("opponent_grid", "proprio"))
            action = keep_bounds(action, self.privileged_bounds(grid, proprio))
        else:
            action = self.keep_seen(action, features)
        if self.seen_layers is not None:
            action = keep_bounds(action, self.seen_layers(features).to(action.device))
        return action.cpu().numpy(), hidden

    def privileged_bounds(self, opponent_grid: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """The bounds (N, 3) a seen shield learns (``config.seen_shield_weight``) and, under
        ``config.seen_shield_training='privileged'``, trains behind: the gap keeper's (at ``config.gap_hold_m``,
        ``gap_look_m``) and the side keeper's on privileged features (:func:`gtvision.agent.shield.layer_bounds`)."""
        return layer_bounds(opponent_grid.float(), proprio.float(), True, True, self.config.gap_hold_m,
                            self.config.gap_look_m)

    def keep_seen(self, action: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``action`` (N, A) through the actor's seen shield (``config.seen_shield``: the bounds its own head reads
        off ``features``, :meth:`Actor.shield_bounds`); as it is otherwise."""
        if not self.config.seen_shield:
            return action
        return keep_bounds(action, self.actor.shield_bounds(features))

    def keep_gap(self, action: torch.Tensor, obs: Mapping[str, np.ndarray]) -> torch.Tensor:
        """``action`` (N, A) in the action space's units through the agent's safety layers: the gap keeper
        (:func:`gtvision.agent.shield.gap_keep`) when ``config.gap_keeper``, the side keeper
        (:func:`gtvision.agent.shield.side_keep`) when ``config.side_keeper``; as it is otherwise."""
        if self.config.gap_keeper:
            action = gap_keep(action, torch.as_tensor(obs["opponent_grid"], device=action.device),
                              torch.as_tensor(obs["proprio"], device=action.device), self.config.gap_hold_m,
                              self.config.gap_look_m)
        if self.config.side_keeper:
            action = side_keep(action, torch.as_tensor(obs["opponent_grid"], device=action.device))
        return action

    def step_features(self, obs: Mapping[str, np.ndarray] | np.ndarray,
                      hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The actor's features (N, F) at one batched observation and its next hidden state (no gradients
        are needed by callers; wrap in ``torch.no_grad``)."""
        if not self.obs_is_dict:
            obs = {"obs": obs}
        seq = {k: torch.as_tensor(np.asarray(obs[k]), device=self.device).unsqueeze(1) for k in self.actor.keys}
        features, hidden = self.actor.torso.unroll(seq, hidden)
        return features[:, 0], hidden

    # --- learning -----------------------------------------------------------------------------------------
    def update(self, batch: dict, kickstart_weight: float = 0.0) -> dict[str, float]:
        """One QR-SAC gradient step on a batch of :meth:`SequenceReplay.sample`.

        Rows 0..burn_in-1 of each window warm up the recurrent states without gradients; rows
        burn_in..burn_in+L-1 are trained; their n-step targets bootstrap from rows ``bootstrap_index``.
        ``kickstart_weight`` w > 0 (``TrainConfig.kickstart_weight``; the batch must hold a teacher's ``labels``,
        its pre-tanh mean and log std): the actor's loss adds w times KL(teacher || actor) on the trained rows.
        """
        cfg, bi = self.config, self.burn_in
        obs, first, mask = dict(batch["obs"]), batch["first"], batch["mask"]
        L = mask.shape[1]
        # Paper: III-E/IV-B give a random shift of up to 4 px, not how it meets sequences; ours: one shift per
        # sequence, shared by its frames, so the recurrent actor sees a steady camera.
        if cfg.augment:
            for k in self.image_keys:
                obs[k] = random_shift(obs[k], cfg.max_shift_px)
        h0 = batch["hidden"] if not cfg.zero_hidden_init else torch.zeros_like(batch["hidden"])
        if self.actor.hidden_size == 0:
            h0 = h0[:, :0]
        boot = batch["bootstrap_index"] - bi  # (B, L) into the post-burn-in axis
        action = self._from_env_action(batch["action"][:, bi:bi + L])

        # Whether the actor takes a step in this update, and on how many of the B sequences (the first m).
        self.updates += 1
        train_actor = self.updates % cfg.actor_update_every == 0
        B = mask.shape[0]
        m = B if cfg.actor_sequences is None else min(cfg.actor_sequences, B)
        # Actor features of rows burn_in.. (B, L + n, F); the burn-in runs from the stored state. Only the g
        # sequences the actor's loss trains on carry gradients; the others serve the critics' targets alone.
        g = m if train_actor else 0
        parts = []
        for rows, grad in ((slice(0, g), True), (slice(g, B), False)):
            if rows.start < rows.stop:
                with torch.set_grad_enabled(grad):
                    parts.append(self.actor.torso.unroll({k: v[rows] for k, v in obs.items()}, h0[rows],
                                                         first[rows], burn_in=bi)[0])
        feats = parts[0] if len(parts) == 1 else torch.cat(parts)
        # Critic features. Paper: V-C's symmetric critic has its own recurrence but no stored state is described;
        # ours: it burns in from zeros over the same burn-in rows.
        crit_feats = [c.torso.unroll(obs, c.torso.initial_hidden(first), first, burn_in=bi)[0] for c in self.critics]

        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(_gather_time(feats.detach(), boot))
            q_next = [t.quantiles(_gather_time(t.torso.unroll(obs, t.torso.initial_hidden(first), first, burn_in=bi)[0], boot),
                                  next_action) for t in self.critic_targets]
            target = qrsac_target(batch["nstep_return"], batch["nstep_discount"], q_next[0], q_next[1],
                                  next_log_prob, self.alpha)

        # Critic step: quantile Huber loss of both critics against the shared target.
        q = [c.quantiles(f[:, :L], action) for c, f in zip(self.critics, crit_feats)]
        critic_loss = sum(quantile_huber_loss(qi, target, cfg.kappa, mask) for qi in q)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        if train_actor:
            self._actor_metrics = self._actor_step(feats[:m, :L], [f[:m, :L] for f in crit_feats],
                                                   {k: v[:m] for k, v in obs.items()}, mask[:m],
                                                   batch["labels"][:m, bi:bi + L] if kickstart_weight > 0 else None,
                                                   kickstart_weight)

        for c, t in zip(self.critics, self.critic_targets):
            polyak_update(c, t, cfg.tau)

        return {
            "losses/critic": float(critic_loss.detach()),
            "values/q_mean": float(q[0].detach().mean()),
            "values/target_mean": float(target.mean()),
            "policy/alpha": self.alpha,
            **self._actor_metrics,  # the last actor step's (``actor_update_every`` > 1: maybe an earlier update's)
        }

    def _actor_step(self, feats: torch.Tensor, crit_feats: list[torch.Tensor], obs: Mapping[str, torch.Tensor],
                    mask: torch.Tensor, labels: torch.Tensor | None, kickstart_weight: float) -> dict[str, float]:
        """The actor's (and alpha's) step on its trained rows: ``feats`` (m, L, F) with gradients, the critics'
        ``crit_feats`` and ``obs`` of the same m sequences; returns its metrics."""
        cfg = self.config
        # Actor step: alpha log pi(a|s) - Q(s, a), Q the mean over quantiles of the critics combined by
        # cfg.actor_q. Paper: III-D does not give the actor loss; 'min' of the twin means is SAC's rule and
        # matches the lower-mean target. The critics' features are detached: the actor loss trains no critic.
        new_action, log_prob = self.actor.sample(feats)
        self.critics.requires_grad_(False)  # gradients flow through the critics to the action only
        q_pi = torch.stack([c.quantiles(f.detach(), new_action).mean(-1) for c, f in zip(self.critics, crit_feats)])
        q_pi = q_pi.min(0).values if cfg.actor_q == "min" else q_pi.mean(0)
        actor_loss = ((self.alpha * log_prob - q_pi) * mask).sum() / mask.sum().clamp(min=1)
        shield_mse = self.seen_shield_error(feats, obs, mask) if cfg.seen_shield_weight > 0 else None
        kickstart_kl = None if labels is None else self.teacher_kl(feats, labels, mask)
        loss = actor_loss
        if shield_mse is not None:
            loss = loss + cfg.seen_shield_weight * shield_mse
        if kickstart_kl is not None:
            loss = loss + kickstart_weight * kickstart_kl
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        self.critics.requires_grad_(True)
        if self.alpha_opt is not None:  # alpha follows the entropy towards its target
            entropy_gap = ((log_prob.detach() + cfg.target_entropy) * mask).sum() / mask.sum().clamp(min=1)
            alpha_loss = -self.log_alpha * entropy_gap
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        return {"losses/actor": float(actor_loss.detach()), "policy/log_prob": float(log_prob.detach().mean()),
                **({} if shield_mse is None else {"losses/seen_shield": float(shield_mse.detach())}),
                **({} if kickstart_kl is None else {"losses/kickstart_kl": float(kickstart_kl.detach())})}

    def teacher_kl(self, features: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean KL(teacher || actor) over the trained rows (``mask`` (B, L)): the actor's Gaussian on its
        ``features`` (B, L, F) against the teacher's in ``labels`` (B, L, >= 2A: pre-tanh mean, then log std)."""
        A = self.action_dim
        mean, log_std = self.actor.distribution(features)
        kl = gaussian_kl(labels[..., :A], labels[..., A:2 * A], mean, log_std)
        return (kl * mask).sum() / mask.sum().clamp(min=1)

    def seen_shield_error(self, features: torch.Tensor, obs: Mapping[str, torch.Tensor],
                          mask: torch.Tensor) -> torch.Tensor:
        """The seen shield's mean squared error over the trained rows (``mask`` (B, L)) and its 3 bounds: its
        bounds on the actor's ``features`` (B, L, F) against those the gap keeper and side keeper set on the
        replay's ``obs`` (B, W, ...) at rows burn_in..burn_in+L-1 (``config.seen_shield_weight``)."""
        (B, L), bi = mask.shape, self.burn_in
        grid, proprio = obs["opponent_grid"][:, bi:bi + L], obs["proprio"][:, bi:bi + L]
        labels = self.privileged_bounds(grid.flatten(0, 1), proprio.flatten(0, 1)).view(B, L, 3)
        err = ((self.actor.shield_bounds(features) - labels) ** 2).mean(-1)
        return (err * mask).sum() / mask.sum().clamp(min=1)

    # --- state --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critics": self.critics.state_dict(),
                "critic_targets": self.critic_targets.state_dict(), "actor_opt": self.actor_opt.state_dict(),
                "critic_opt": self.critic_opt.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "alpha_opt": None if self.alpha_opt is None else self.alpha_opt.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict):
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self.critic_targets.load_state_dict(state["critic_targets"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        if self.alpha_opt is not None:
            self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.updates = int(state.get("updates", 0))  # checkpoints before 2026-12-03 do not count them
