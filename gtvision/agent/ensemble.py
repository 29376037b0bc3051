"""An ensemble of actors that drives as one: the mean of its members' actions, each member with its own memory.

Paper: none; the paper races one actor. Ours: DAgger students of the same teachers (rounds of one run, or runs
of other seeds) imitate them with errors of their own, and their unfinished races end at different places; the
mean of their deterministic actions averages those errors (bagging, as ensembles of imitation policies do). An
ensemble reads what each member reads (the vision actor's ``image`` and ``proprio``), so it is still a vision
agent; it costs one actor's compute per member.

:class:`EnsembleActor` has the :class:`~gtvision.agent.networks.Actor` interface that acting, racing and attribution
use (``keys``, ``hidden_size``, ``torso.unroll``, ``distribution``, ``sample``): its recurrent state is its members'
side by side, its features theirs side by side, and its pre-tanh mean the one whose squashed action is the mean of
theirs, ``atanh(mean_i tanh(mu_i))``, so that its deterministic action is exactly the members' mean action. Its
log std, used only where an action is sampled, is the mean of theirs. ``gtvision export --ensemble`` writes one
(:func:`gtvision.checkpoints.export`), and :func:`gtvision.checkpoints.load_actor` loads it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .networks import Actor

SQUASH_LIMIT = 1.0 - 1e-6
"""The mean action is kept within this of +-1 before its inverse tanh (a finite pre-tanh mean)."""


class EnsembleTorso(nn.Module):
    """The members' torsos side by side: hidden states and features concatenated, in member order."""

    def __init__(self, torsos: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(torsos)
        self.hidden_sizes = [t.hidden_size for t in torsos]
        self.feature_dims = [t.feature_dim for t in torsos]
        self.hidden_size = sum(self.hidden_sizes)
        self.feature_dim = sum(self.feature_dims)
        self.image_keys, self.vector_keys = torsos[0].image_keys, torsos[0].vector_keys

    def initial_hidden(self, first: torch.Tensor) -> torch.Tensor:
        return torch.zeros(first.shape[0], self.hidden_size, device=first.device)

    def unroll(self, obs: Mapping[str, torch.Tensor], hidden: torch.Tensor, first: torch.Tensor | None = None,
               burn_in: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [t.unroll(obs, h, first, burn_in)
                for t, h in zip(self.members, torch.split(hidden, self.hidden_sizes, -1))]
        return torch.cat([f for f, _ in outs], -1), torch.cat([h for _, h in outs], -1)


class EnsembleActor(nn.Module):
    """Actors of one architecture driving as one (see the module)."""

    def __init__(self, actors: Sequence[Actor]):
        super().__init__()
        if len(actors) < 2:
            raise ValueError(f"an ensemble needs at least 2 actors, got {len(actors)}")
        keys = actors[0].keys
        for i, a in enumerate(actors):
            if a.keys != keys:
                raise ValueError(f"ensemble member {i} reads {a.keys}, member 0 reads {keys}: members must read alike")
            if a.shield_head is not None:
                raise ValueError("an ensemble of actors with seen shields is not supported (agent.seen_shield)")
        self.actors = nn.ModuleList(actors)
        self.torso = EnsembleTorso([a.torso for a in actors])
        self.shield_head = None

    @property
    def keys(self) -> tuple[str, ...]:
        return self.actors[0].keys

    @property
    def hidden_size(self) -> int:
        return self.torso.hidden_size

    def distribution(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log std (..., A) of the pre-tanh Gaussian whose mean squashes to the members' mean action."""
        parts = [a.distribution(f) for a, f in zip(self.actors, torch.split(features, self.torso.feature_dims, -1))]
        action = torch.stack([torch.tanh(m) for m, _ in parts]).mean(0).clamp(-SQUASH_LIMIT, SQUASH_LIMIT)
        return torch.atanh(action), torch.stack([s for _, s in parts]).mean(0)

    def shield_bounds(self, features: torch.Tensor) -> torch.Tensor:
        raise ValueError("an ensemble has no seen shield")

    sample = Actor.sample
