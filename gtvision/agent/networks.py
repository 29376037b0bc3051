"""Actor and quantile critic networks (paper III-D).

Both are built from a :class:`Torso` over a configurable set of observation keys: image keys
(uint8 H x W x C Box) go through a CNN and a linear embedding, vector keys are flattened and concatenated,
and an optional GRU carries a hidden state over time. Every network works on sequences:

=====================  ==========================  =====================================
tensor                 shape                       notes
=====================  ==========================  =====================================
obs[image key]         (B, T, H, W, C) uint8       pixel values 0..255
obs[vector key]        (B, T, *shape) float32
first                  (B, T) bool                 first step of an episode: hidden reset
hidden                 (B, hidden_size) float32    (B, 0) without a GRU
features               (B, T, feature_dim)
action                 (B, T, A) float32           in [-1, 1]
quantiles              (B, T, N)                   N = num_quantiles
=====================  ==========================  =====================================
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from .config import AgentConfig


def is_image_space(space: spaces.Space) -> bool:
    """True for a Box of uint8 with shape (H, W, C): the observations that go to the CNN."""
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def as_dict_space(space: spaces.Space) -> spaces.Dict:
    """A Dict observation space as is; a Box as ``Dict(obs=box)``. Other spaces raise."""
    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            if not isinstance(sub, spaces.Box):
                raise TypeError(f"observation key {key!r} is a {type(sub).__name__}; only Box is supported")
        return space
    if isinstance(space, spaces.Box):
        return spaces.Dict({"obs": space})
    raise TypeError(f"observation space {space} is not a Box or a Dict of Box")


def resolve_keys(space: spaces.Dict, keys: Sequence[str] | None, images: bool = True) -> tuple[str, ...]:
    """Check ``keys`` against ``space``; None means every key (every vector key if not ``images``)."""
    if keys is None:
        return tuple(k for k, s in space.spaces.items() if images or not is_image_space(s))
    unknown = [k for k in keys if k not in space.spaces]
    if unknown:
        raise KeyError(f"observation keys {unknown} not in the observation space; valid: {list(space.spaces)}")
    return tuple(keys)


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) log(1 + |x|) (as DreamerV3): metres and hundreds of metres on one scale, sign kept."""
    return torch.sign(x) * torch.log1p(x.abs())


PROXIMITY_KEY = "opponent_grid"
"""The observation whose rows are cars at (x, y, ...) relative to the learner (``AgentConfig.opponent_proximity``)."""
CAR_LENGTH_M, CAR_WIDTH_M = 4.2, 2.0
"""A nominal car for ``car_nearness`` (Table I's cars: 4.0 to 4.6 m by 1.9 to 2.0 m)."""


def car_nearness(grid: torch.Tensor) -> torch.Tensor:
    """(..., rows) symlog(4 (max(|x| / length, |y| / width) - 1)) of an opponent grid (..., rows, >= 2): 0 where two
    aligned cars touch, growing by about 0.34 over the first tenth of a car length of gap."""
    d = torch.maximum(grid[..., 0].abs() / CAR_LENGTH_M, grid[..., 1].abs() / CAR_WIDTH_M)
    return symlog(4.0 * (d - 1.0))


def mlp(in_dim: int, width: int, depth: int, out_dim: int) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` ReLU units, then a linear output layer."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class ImageEncoder(nn.Module):
    """f_theta of paper III-D: convolutions (32/64/64, kernels 8/4/3, strides 4/2/1) -> linear ``embed``.

    Input (N, H, W, C) uint8; output (N, embed) float32.
    """

    def __init__(self, shape: tuple[int, int, int], cfg: AgentConfig):
        super().__init__()
        h, w, c = shape
        convs: list[nn.Module] = []
        for out_c, k, s in zip(cfg.cnn_channels, cfg.cnn_kernels, cfg.cnn_strides):
            convs += [nn.Conv2d(c, out_c, k, s), nn.ReLU()]
            c = out_c
            h, w = (h - k) // s + 1, (w - k) // s + 1
        if h < 1 or w < 1:
            raise ValueError(f"image {shape} too small for kernels {cfg.cnn_kernels} / strides {cfg.cnn_strides}")
        self.convs = nn.Sequential(*convs, nn.Flatten())
        # Paper III-D: "flattened and embedded into a 512-dimensional vector"; the ReLU is ours.
        self.embed = nn.Sequential(nn.Linear(c * h * w, cfg.image_embed), nn.ReLU())
        self.out_dim = cfg.image_embed
        self.set_compute(cfg.image_dtype, cfg.channels_last)

    def set_compute(self, image_dtype: str, channels_last: bool) -> None:
        """How the encoder computes (``AgentConfig.image_dtype``, ``AgentConfig.channels_last``; the same weights)."""
        self.autocast = image_dtype == "bfloat16"
        self.channels_last = bool(channels_last)
        self.convs.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.autocast:
            return self.embed(self.convs(x))
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return self.embed(self.convs(x)).float()


class Torso(nn.Module):
    """Encoders of ``keys`` -> concat -> optional GRU: the shared front of actor and critic.

    ``unroll(obs, hidden, first, burn_in)`` runs the first ``burn_in`` steps without gradients (paper IV-B)
    and returns the features of the remaining T - burn_in steps and the final hidden state.
    """

    def __init__(self, space: spaces.Dict, keys: Sequence[str], recurrent: bool, hidden_size: int,
                 cfg: AgentConfig):
        super().__init__()
        self.image_keys = tuple(k for k in keys if is_image_space(space[k]))
        self.vector_keys = tuple(k for k in keys if not is_image_space(space[k]))
        self.encoders = nn.ModuleDict({k: ImageEncoder(space[k].shape, cfg) for k in self.image_keys})
        in_dim = sum(e.out_dim for e in self.encoders.values())
        in_dim += sum(int(np.prod(space[k].shape)) for k in self.vector_keys)
        self.proximity = cfg.opponent_proximity and PROXIMITY_KEY in self.vector_keys
        if self.proximity:
            in_dim += int(space[PROXIMITY_KEY].shape[0])  # one nearness per row
        self.transform = cfg.vector_transform
        for i, k in enumerate(self.vector_keys):  # the observation space's bounds of each feature ('scaled')
            low = np.asarray(space[k].low, np.float32).reshape(-1)
            high = np.asarray(space[k].high, np.float32).reshape(-1)
            with np.errstate(invalid="ignore", over="ignore"):
                finite = np.isfinite(low) & np.isfinite(high) & (high > low)
                mid = np.where(finite, (low + high) / 2, 0.0).astype(np.float32)
                half = np.where(finite, (high - low) / 2, 1.0).astype(np.float32)
            self.register_buffer(f"bounded_{i}", torch.as_tensor(finite), persistent=False)
            self.register_buffer(f"mid_{i}", torch.as_tensor(mid), persistent=False)
            self.register_buffer(f"half_range_{i}", torch.as_tensor(half), persistent=False)
        self.recurrent = recurrent
        self.gru = nn.GRU(in_dim, hidden_size, batch_first=True) if recurrent else None
        self.hidden_size = hidden_size if recurrent else 0
        self.feature_dim = hidden_size if recurrent else in_dim

    def initial_hidden(self, first: torch.Tensor) -> torch.Tensor:
        """Zeros (B, hidden_size) for a batch shaped like ``first`` (B, T)."""
        return torch.zeros(first.shape[0], self.hidden_size, device=first.device)

    def embed(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Per-step inputs of the GRU: (B, T, in_dim), image embeddings then flattened vectors."""
        parts = []
        for k in self.image_keys:
            x = obs[k]
            b, t = x.shape[:2]
            parts.append(self.encoders[k](x.reshape(b * t, *x.shape[2:])).reshape(b, t, -1))
        for i, k in enumerate(self.vector_keys):
            x = obs[k]
            if self.proximity and k == PROXIMITY_KEY:
                parts.append(car_nearness(x.float()))
            x = x.reshape(*x.shape[:2], -1).float()
            if self.transform == "symlog":
                x = symlog(x)
            elif self.transform == "scaled":  # bounded features to [-1, 1] by their bounds, the others symlog
                bounded = getattr(self, f"bounded_{i}")
                x = torch.where(bounded, (x - getattr(self, f"mid_{i}")) / getattr(self, f"half_range_{i}"),
                                symlog(x))
            parts.append(x)
        return torch.cat(parts, dim=-1)

    def _recur(self, x: torch.Tensor, hidden: torch.Tensor, first: torch.Tensor | None):
        """GRU over (B, T, in_dim) from ``hidden`` (B, H), resetting to zeros where ``first``."""
        if first is None or not bool(first[:, 1:].any()):
            if first is not None:
                hidden = hidden * (~first[:, 0]).unsqueeze(-1).to(hidden.dtype)
            out, h = self.gru(x, hidden.unsqueeze(0).contiguous())
            return out, h.squeeze(0)
        # Episode boundaries inside the sequence: the GRU runs over the segments between the steps where any
        # row starts an episode, and the rows starting one are reset to zeros at the segment's start.
        keep = (~first).unsqueeze(-1).to(hidden.dtype)
        cuts = [0, *(torch.nonzero(first[:, 1:].any(0)).flatten() + 1).tolist(), x.shape[1]]
        outs, h = [], hidden.unsqueeze(0)
        for a, b in zip(cuts[:-1], cuts[1:]):
            out, h = self.gru(x[:, a:b], (h * keep[:, a]).contiguous())
            outs.append(out)
        return torch.cat(outs, dim=1), h.squeeze(0)

    def unroll(self, obs: Mapping[str, torch.Tensor], hidden: torch.Tensor, first: torch.Tensor | None = None,
               burn_in: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T - burn_in, feature_dim) and the hidden state (B, hidden_size) after step T."""
        if not self.recurrent:
            return self.embed({k: v[:, burn_in:] for k, v in obs.items()}), hidden
        if burn_in > 0:
            with torch.no_grad():  # Paper IV-B: the burn-in only warms up the recurrent state.
                _, hidden = self._recur(self.embed({k: v[:, :burn_in] for k, v in obs.items()}), hidden,
                                        None if first is None else first[:, :burn_in])
        rest = {k: v[:, burn_in:] for k, v in obs.items()}
        return self._recur(self.embed(rest), hidden, None if first is None else first[:, burn_in:])


class Actor(nn.Module):
    """pi_theta of paper III-D: Torso (CNN + proprio -> GRU) -> MLP -> tanh-squashed Gaussian."""

    def __init__(self, space: spaces.Dict, action_dim: int, cfg: AgentConfig):
        super().__init__()
        keys = resolve_keys(space, cfg.actor_keys)
        self.torso = Torso(space, keys, cfg.recurrent, cfg.hidden_size, cfg)
        self.head = mlp(self.torso.feature_dim, cfg.actor_width, cfg.actor_depth, 2 * action_dim)
        self.log_std_min, self.log_std_max = cfg.log_std_min, cfg.log_std_max
        # a seen shield's head: the teacher's layers' bounds (gtvision.agent.shield.BOUNDS) from the same features
        self.shield_head = mlp(self.torso.feature_dim, cfg.actor_width, cfg.actor_depth, 3) if cfg.seen_shield else None
        if cfg.init_log_std is not None:
            # a fresh policy's pre-tanh Gaussian: mean near 0 and std exp(init_log_std), whatever the input
            last = self.head[-1]
            with torch.no_grad():
                last.weight.mul_(0.01)
                last.bias.zero_()
                last.bias[action_dim:] = cfg.init_log_std

    @property
    def keys(self) -> tuple[str, ...]:
        return self.torso.image_keys + self.torso.vector_keys

    @property
    def hidden_size(self) -> int:
        return self.torso.hidden_size

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log std of the pre-tanh Gaussian, each (..., A)."""
        mean, log_std = self.head(features).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def shield_bounds(self, features: torch.Tensor) -> torch.Tensor:
        """A seen shield's bounds (..., 3) in [-1, 1] (``AgentConfig.seen_shield``; :data:`gtvision.agent.shield.BOUNDS`)."""
        if self.shield_head is None:
            raise ValueError("this actor has no seen shield (agent.seen_shield=False)")
        return torch.tanh(self.shield_head(features))

    def sample(self, features: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action (..., A) in [-1, 1] and its log-probability (...,) under the squashed law."""
        mean, log_std = self.distribution(features)
        u = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        log_prob = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log |d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), the numerically stable form.
        log_prob = log_prob - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u), log_prob


class QuantileCritic(nn.Module):
    """q_theta of paper III-D: features of its keys + action -> MLP -> N quantiles of the return.

    Asymmetric (default): flattened vector keys, no recurrence. Symmetric (V-C ablation): the actor's keys
    with its own CNN and GRU.

    Paper: III-D gives the critic proprio + global features (no image); V-C describes the asymmetric
    critic as using "local (image and proprioceptive data) and global features". We follow III-D;
    adding "image" to ``critic_keys`` gives the V-C reading (the critic then gets its own CNN).
    """

    def __init__(self, space: spaces.Dict, action_dim: int, cfg: AgentConfig):
        super().__init__()
        if cfg.symmetric_critic:
            keys = resolve_keys(space, cfg.actor_keys)
            recurrent = cfg.recurrent
        else:
            keys = resolve_keys(space, cfg.critic_keys, images=False)
            recurrent = False
        self.torso = Torso(space, keys, recurrent, cfg.hidden_size, cfg)
        state_dim = self.torso.feature_dim
        self.trunk = None
        if cfg.critic_trunk:
            # Paper: III-D gives the critic four 2048-unit layers on its inputs and the action; the trunk is
            # ours (DrQ-v2's critic): the state's ~600 features are brought to critic_trunk units, normalised,
            # before the action (2 numbers) joins them, so that the action is not lost among them.
            self.trunk = nn.Sequential(nn.Linear(state_dim, cfg.critic_trunk), nn.LayerNorm(cfg.critic_trunk),
                                       nn.Tanh())
            state_dim = cfg.critic_trunk
        self.head = mlp(state_dim + action_dim, cfg.critic_width, cfg.critic_depth, cfg.num_quantiles)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.torso.image_keys + self.torso.vector_keys

    def quantiles(self, features: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Quantiles (..., N) of the return of ``action`` (..., A) given state ``features`` (..., F)."""
        if self.trunk is not None:
            features = self.trunk(features)
        return self.head(torch.cat([features, action], dim=-1))
