"""Seen layers: a head on a trained actor's own features sets the bounds the privileged safety layers would.

Paper: none. The safety layers of :mod:`gtvision.agent.shield` (the gap keeper and the side keeper) read the opponents'
grid, a privileged feature the vision actor may not read. Raced through them, the committed vision agent finished 199
of 200 races against 195, with less car contact (3.0 and 2.7 s against 3.7 and 3.6 s); raced through seen layers
fitted by this module it finished 297 of 300 fresh races against 299 without, with no less contact (LOG.md, "Seen
layers" and "Seen layers on fresh seeds"): the head copies the layers' bounds, not their effect. A seen shield
(``AgentConfig.seen_shield``) learns their bounds in DAgger beside the policy; these are the same bounds fitted after
training, to an actor as it is (an ensemble too): the agent races a few races with the privileged layers on, so that
its states are those of a car the layers keep (as a teacher's layers label DAgger's states), a small MLP learns the
layers' bounds (:func:`gtvision.agent.shield.layer_bounds`) from the actor's features on those steps, and the agent
then races through the head's bounds (:func:`gtvision.agent.shield.keep_bounds`), reading only what its actor reads.
The opponents' grid is its label at fitting time only, as the compass's heading is
(:mod:`gtvision.agent.compass`).

``gtvision export --fit-seen-layers RACES`` fits one and stores it with the exported agent (the part
``gtvision.checkpoints.SEEN_LAYERS``; its races' and fitting's seconds in the export's ``config.json``, counted in the
training budget like any other training).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from torch import nn

from .shield import BOUNDS, layer_bounds

WIDTH = 256
"""The head's hidden width (two layers)."""
SET_WEIGHT = 4.0
"""A step where a layer sets a bound weighs this many times another in the squared error (about one step in ten)."""
SET_EDGE = 0.95
"""A bound counts as set (a lift, a steer) where it lies this far inside the action space's edge (1, -1, 1)."""


class SeenLayers(nn.Module):
    """An MLP from an actor's features (N, F) to the layers' bounds (N, 3) (:data:`gtvision.agent.shield.BOUNDS`),
    clamped to [-1, 1]. (A tanh on its output saturates at the edges where most labels lie, and learnt nothing.)"""

    def __init__(self, feature_dim: int, width: int = WIDTH):
        super().__init__()
        self.feature_dim, self.width = feature_dim, width
        self.net = nn.Sequential(nn.Linear(feature_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, len(BOUNDS)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"the seen layers read {self.feature_dim} features, got {features.shape[-1]}")
        return self.net(features.float()).clamp(-1.0, 1.0)


def layer_steps(checkpoint, scenario: str, races: int, seed: int, laps: int = 4, device: str = "cpu",
                progress: bool = True, max_time_s: float | None = None) -> dict:
    """``races`` evaluation races (:func:`gtvision.evaluation.race_envs`, from the back of the grid) of the agent of
    ``checkpoint``, driven with its privileged layers on (at its ``gap_hold_m`` and ``gap_look_m``): its actor's
    features (float16) and the layers' bounds at every step of every race, with the race each came from.
    ``max_time_s``: the races end there (the tests' short ones)."""
    from .rollout import Rollout
    from ..evaluation import race_envs

    if races < 1:
        raise ValueError(f"the seen layers need races >= 1, got {races!r}")
    envs, agent = race_envs(checkpoint, scenario, races, laps, device, max_time_s=max_time_s)
    try:
        if "opponent_grid" not in envs.single_observation_space.spaces:
            raise ValueError(f"seen layers learn from the races' opponent_grid, which {checkpoint}'s races do not "
                             f"observe (they observe {sorted(envs.single_observation_space.spaces)})")
        cfg = agent.config
        # the privileged layers drive these races (a vision agent is refused them in racing: check_layers)
        agent.config = dataclasses.replace(cfg, gap_keeper=True, side_keeper=True)
        captured = {}
        step_features = agent.step_features

        def capture(obs, hidden):
            features, hidden = step_features(obs, hidden)
            captured["features"] = features
            return features, hidden

        agent.step_features = capture
        rollout = Rollout(envs, agent, seed=seed, eval_mode=True)
        features, bounds, race = [], [], []
        live = np.ones(races, bool)
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=races, desc=f"seen layers: {races} races with the privileged layers", unit="race")
        while live.any():
            obs = rollout.obs
            labels = layer_bounds(torch.as_tensor(obs["opponent_grid"]).float(),
                                  torch.as_tensor(obs["proprio"]).float(), True, True, cfg.gap_hold_m, cfg.gap_look_m)
            step = rollout.step(None)
            rows = np.nonzero(live)[0]
            features.append(captured["features"][rows].cpu().half())
            bounds.append(labels[rows])
            race.append(torch.as_tensor(rows))
            done = live & (np.asarray(step.terminated) | np.asarray(step.truncated))
            live &= ~done
            if bar is not None and done.any():
                bar.update(int(done.sum()))
        if bar is not None:
            bar.close()
    finally:
        envs.close()
    return {"features": torch.cat(features), "bounds": torch.cat(bounds), "race": torch.cat(race),
            "hold_m": cfg.gap_hold_m, "look_m": cfg.gap_look_m}


def held_out(race: torch.Tensor) -> torch.Tensor:
    """The steps scored, not fitted: those of the last eighth of the races (at least one)."""
    races = int(race.max()) + 1
    return race >= races - max(1, races // 8)


def set_share(bounds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the throttle ceiling is set, and where a steering bound is (both (N,) bool)."""
    return bounds[:, 0] < SET_EDGE, (bounds[:, 1] > -SET_EDGE) | (bounds[:, 2] < SET_EDGE)


def fit_seen_layers(steps: dict, epochs: int = 4, seed: int = 0, batch: int = 512, lr: float = 1e-3,
                    progress: bool = True) -> SeenLayers:
    """A :class:`SeenLayers` fitted to ``steps`` (:func:`layer_steps`): Adam on the squared error of its bounds,
    weighted :data:`SET_WEIGHT` where a layer sets one, for ``epochs`` passes over the steps not :func:`held_out`.
    Returns it in eval mode, with ``info`` (steps, epochs, seconds, and on the held-out steps: how often the head
    sets a bound where the layer does, its mean error there)."""
    if epochs < 1:
        raise ValueError(f"the seen layers need epochs >= 1, got {epochs!r}")
    start = time.perf_counter()
    x, y = steps["features"], steps["bounds"].float()
    test = held_out(steps["race"])
    fit = torch.nonzero(~test).squeeze(1)
    torch.manual_seed(seed)
    head = SeenLayers(x.shape[1])
    opt = torch.optim.Adam(head.parameters(), lr)
    g = torch.Generator().manual_seed(seed + 1)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs * -(-len(fit) // batch), desc=f"seen layers ({len(fit)} steps)", unit="step")
    for _ in range(epochs):
        for rows in fit[torch.randperm(len(fit), generator=g)].split(batch):
            ceiling, steer = set_share(y[rows])
            weight = 1 + (SET_WEIGHT - 1) * (ceiling | steer).float()
            loss = (((head(x[rows]) - y[rows]) ** 2).mean(-1) * weight).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    head.eval()
    with torch.no_grad():
        pred = head(x[test])
    truth = y[test]
    info = {"steps": len(fit), "epochs": epochs, "seed": seed, "seconds": round(time.perf_counter() - start, 1),
            "held_out_steps": int(test.sum())}
    for name, layer, seen in zip(("ceiling", "steer"), set_share(truth), set_share(pred)):
        info[f"held_out_{name}_set"] = round(float(layer.float().mean()), 4)
        info[f"held_out_{name}_found"] = round(float((seen & layer).sum() / max(int(layer.sum()), 1)), 4)
        info[f"held_out_{name}_error"] = round(float((pred - truth)[layer].abs().mean()) if layer.any() else 0.0, 4)
    head.info = info
    return head


def seen_layers_state(head: SeenLayers) -> dict:
    """What an exported agent stores of ``head`` (its weights and sizes)."""
    return {**head.state_dict(), "feature_dim": head.feature_dim, "width": head.width}


def load_seen_layers(state: dict) -> SeenLayers:
    """Seen layers from their stored weights (the part ``SEEN_LAYERS`` of an exported agent)."""
    head = SeenLayers(int(state["feature_dim"]), int(state["width"]))
    head.load_state_dict({k: v.float() for k, v in state.items() if k not in ("feature_dim", "width")})
    return head.eval()


__all__ = ["SeenLayers", "fit_seen_layers", "layer_steps", "load_seen_layers", "seen_layers_state"]
