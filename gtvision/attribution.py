"""What the agent looks at (paper V-B): Integrated Gradients on pixels, and frame attributions through time.

- :func:`integrated_gradients`: captum's Integrated Gradients of one component of the actor's
  deterministic action (the squashed Gaussian mean) at the last step of a sequence, with respect to the
  last frame's pixels. As in V-B: the baseline is the frame blurred by a 7x7 mean filter, the path has
  20 linearly interpolated images (trapezoid rule), the attributions are summed over the colour
  channels, and :func:`top_mask` keeps the pixels holding the top 90% of the attribution mass.
- :func:`frame_attributions`: backpropagation through time of the same action to every earlier frame
  of the sequence (the recurrent actor's memory), as gradient x input summed over each frame.

Inputs are the actor's observation sequences: a dict of (B, T, ...) tensors with the ``image`` key
(uint8 or float in 0..255) and the actor's vector keys, and the hidden state (B, H) entering step 0.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .agent.rollout import Rollout
from .sim.core import CONTROL_HZ

MOMENTS = ("near", "overtake")
"""When :func:`explain_race`'s snapshots start: an opponent near, or the agent passing one (paper Fig. 5)."""

ACTIONS = {"steer": 0, "throttle": 1}
"""Action components by name (paper III-B: delta steering, combined throttle/brake)."""


def blurred_baseline(image: torch.Tensor, kernel: int = 7) -> torch.Tensor:
    """(..., H, W, C) images mean-filtered with a ``kernel`` x ``kernel`` window (reflect padding)."""
    shape = image.shape
    x = image.float().reshape(-1, *shape[-3:]).permute(0, 3, 1, 2)
    pad = kernel // 2
    x = F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), kernel, stride=1)
    return x.permute(0, 2, 3, 1).reshape(shape)


def _action_index(action: int | str) -> int:
    if isinstance(action, str):
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; valid: {', '.join(ACTIONS)} (or an index)")
        return ACTIONS[action]
    return int(action)


def _final_action(actor, obs: dict, hidden: torch.Tensor, image_key: str, last_image: torch.Tensor | None,
                  index: int) -> torch.Tensor:
    """The deterministic action component ``index`` (B,) after the whole sequence; ``last_image``
    (B, H, W, C) float replaces the image of the last step when given."""
    if last_image is not None:
        # captum stacks the interpolation steps along the batch, step-major: tile the sequences alike
        reps = last_image.shape[0] // obs[image_key].shape[0]

        def tile(v):
            return v.repeat(reps, *[1] * (v.dim() - 1)) if reps > 1 else v

        obs = {k: tile(v) for k, v in obs.items()}
        hidden = tile(hidden)
        obs[image_key] = torch.cat([obs[image_key][:, :-1].float(), last_image.unsqueeze(1)], 1)
    features, _ = actor.torso.unroll(obs, hidden)
    mean, _ = actor.distribution(features[:, -1])
    return torch.tanh(mean[:, index])


def integrated_gradients(actor, obs: dict, hidden: torch.Tensor, action: int | str = "steer", n_steps: int = 20,
                         image_key: str = "image", kernel: int = 7) -> dict:
    """Integrated Gradients of the final action w.r.t. the last frame (see the module docstring).

    Returns ``attribution`` (B, H, W) summed over channels, ``delta`` (B,) captum's convergence delta
    (the sum of the attributions minus the output difference; small means complete), ``output`` and
    ``baseline_output`` (B,).
    """
    from captum.attr import IntegratedGradients

    index = _action_index(action)
    obs = {k: torch.as_tensor(v) for k, v in obs.items() if k in actor.keys}
    last = obs[image_key][:, -1].float()
    base = blurred_baseline(last, kernel)
    ig = IntegratedGradients(lambda img: _final_action(actor, obs, hidden, image_key, img, index))
    attr, delta = ig.attribute(last, baselines=base, n_steps=n_steps, method="riemann_trapezoid",
                               return_convergence_delta=True)
    with torch.no_grad():
        out = _final_action(actor, obs, hidden, image_key, last, index)
        out_base = _final_action(actor, obs, hidden, image_key, base, index)
    return {"attribution": attr.sum(-1).detach(), "delta": delta.detach(), "output": out, "baseline_output": out_base}


def top_mask(attribution: torch.Tensor, fraction: float = 0.9) -> torch.Tensor:
    """(B, H, W) bool: per image, the fewest pixels whose |attribution| adds up to ``fraction`` of the total."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    flat = attribution.abs().flatten(1)
    order = flat.argsort(1, descending=True)
    sorted_vals = flat.gather(1, order)
    cum = sorted_vals.cumsum(1)
    total = cum[:, -1:].clamp(min=1e-30)
    keep_sorted = (cum - sorted_vals) < fraction * total  # a pixel is kept while the mass before it is short
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter(1, order, keep_sorted)
    return mask.view_as(attribution)


def frame_attributions(actor, obs: dict, hidden: torch.Tensor, action: int | str = "steer",
                       image_key: str = "image") -> torch.Tensor:
    """(B, T): how much each frame of the sequence contributes to the final action, by backpropagation
    through time: |gradient x input| of the final action w.r.t. every frame, summed over its pixels."""
    index = _action_index(action)
    obs = {k: torch.as_tensor(v) for k, v in obs.items() if k in actor.keys}
    frames = obs[image_key].float().requires_grad_(True)
    out = _final_action(actor, {**obs, image_key: frames}, hidden, image_key, None, index)
    (grad,) = torch.autograd.grad(out.sum(), frames)
    return (grad * frames).abs().flatten(2).sum(-1).detach()


def explain_race(driver, scenario: str = "tokyo", snapshots: int = 4, interval_s: float = 0.5, history: int = 8,
                 seed: int = 0, start_s: float | None = None, agent=None, action: int | str = "steer",
                 max_time_s: float = 60.0, near_m: float = 20.0, min_start_s: float = 3.0,
                 moment: str = "near", device: str = "cpu") -> dict:
    """Paper Fig. 5 from a race: ``driver`` (a checkpoint, or ``"biai"``) drives one evaluation race from the
    back of the grid; at ``snapshots`` moments ``interval_s`` apart the actor's last ``history`` frames are
    explained (:func:`integrated_gradients`, :func:`top_mask`, :func:`frame_attributions`).

    The actor explained is the driver's, or ``agent`` (a ``QRSACAgent``) when given: it then rides along,
    its hidden state stepped on the same observations, while the driver drives (so the BIAI's race can
    show the method with an untrained actor). The snapshots start at ``start_s``, or else, past ``min_start_s``
    (the start, where the whole grid is near) and ``history`` steps, at the first moment ``moment`` names:
    ``"near"``, an opponent within ``near_m`` of the agent (the opponent drawn is the nearest one then);
    ``"overtake"``, the agent passing an opponent within ``near_m`` (paper Fig. 5: the snapshots straddle the
    pass, the opponent ahead along the course until it and behind from it on; that opponent is drawn).
    Returns the keyword arguments of :func:`gtvision.figures.figure_5` (``track``,
    ``agent_xy``, ``opponent_xy``, ``frames``, ``attributions``, ``masks``, ``frame_shares``) and
    ``times_s``, ``opponent`` (its car index), ``delta`` (Integrated Gradients' completeness gaps) and
    ``output_difference`` (the action's change from the blurred baseline to the frame, which the
    attributions add up to) and ``opponent_gap_m`` (the opponent's course position minus the agent's at the
    snapshots: positive while it is ahead).
    """
    import numpy as np

    from .evaluation import race_envs

    if moment not in MOMENTS:
        raise ValueError(f"unknown moment {moment!r}; valid moments: {', '.join(map(repr, MOMENTS))}")
    if snapshots < 1 or history < 1 or interval_s <= 0:
        raise ValueError(f"snapshots and history must be >= 1 and interval_s > 0, got {snapshots}, {history}, "
                         f"{interval_s}")
    envs, policy = race_envs(driver, scenario, 1, 1, device, max_time_s=max_time_s, render_image=True)
    explained = agent if agent is not None else policy
    if explained is None:
        envs.close()
        raise ValueError(f"driver {driver!r} has no actor to explain; pass agent= (a QRSACAgent)")
    keys = explained.actor.keys
    if "image" not in keys:
        envs.close()
        raise ValueError(f"the actor sees {', '.join(keys)}: no image to attribute (the GT Sophy baseline?)")
    rollout = Rollout(envs, policy, seed=seed, eval_mode=True)
    batch = envs.unwrapped.batch
    hidden = explained.initial_hidden(1)  # the explained actor's state, when it rides along
    seen: dict[str, list] = {k: [] for k in keys}
    hiddens, xy, progress = [], [], []
    stride = max(1, round(interval_s * CONTROL_HZ))
    for _ in range(int(math.ceil(batch.time_limit_s * CONTROL_HZ))):
        for k in keys:
            seen[k].append(np.asarray(rollout.obs[k][0]))
        if explained is policy:
            hiddens.append(rollout.hidden)
        else:
            hiddens.append(hidden)
            _, hidden = explained.act(rollout.obs, hidden, eval_mode=True)
        xy.append(np.stack([batch.state.x[0].cpu().numpy(), batch.state.y[0].cpu().numpy()], -1))
        progress.append(batch.state.progress_m[0].cpu().numpy())
        step = rollout.step(batch.biai_actions().cpu().numpy() if policy is None else None)
        if step.done[0]:
            break
    track = batch.params.track
    envs.close()
    xy = np.stack(xy)                                     # (T, cars, 2)
    progress = np.stack(progress)                         # (T, cars) course position
    ahead_m = progress[:, 1:] - progress[:, :1]           # (T, opponents) course gap, + ahead
    steps = len(xy)
    last_start = steps - 1 - (snapshots - 1) * stride
    if last_start < history - 1:
        raise ValueError(f"the race lasted {steps} steps: too short for {snapshots} snapshots {stride} steps "
                         f"apart after {history} frames of history")
    gaps = np.linalg.norm(xy[:, 1:] - xy[:, :1], axis=-1)  # (T, opponents) distance to the agent
    if start_s is not None:
        t0 = int(round(start_s * CONTROL_HZ))
        if not history - 1 <= t0 <= last_start:
            raise ValueError(f"start_s={start_s} is outside {(history - 1) / CONTROL_HZ:.1f}.."
                             f"{last_start / CONTROL_HZ:.1f} s "
                             "for this race")
    first = min(max(history - 1, int(round(min_start_s * CONTROL_HZ))), last_start)
    opponent = None
    if start_s is None and moment == "overtake":
        t0, opponent = _overtake(ahead_m, gaps, first, last_start, (snapshots - 1) * stride, near_m)
    elif start_s is None:
        near = np.flatnonzero(gaps[first:last_start + 1].min(1) < near_m) if gaps.shape[1] else []
        t0 = first + int(near[0]) if len(near) else first
    if opponent is None:
        opponent = 1 + int(gaps[t0].argmin()) if gaps.shape[1] else 0
    times = t0 + stride * np.arange(snapshots)
    out = {k: [] for k in ("attributions", "masks", "frame_shares", "delta", "output_difference")}
    for t in times:
        seq = {k: torch.as_tensor(np.stack(seen[k][t - history + 1:t + 1]))[None] for k in keys}
        h0 = hiddens[t - history + 1]
        ig = integrated_gradients(explained.actor, seq, h0, action=action)
        out["attributions"].append(ig["attribution"][0].numpy())
        out["masks"].append(top_mask(ig["attribution"])[0].numpy())
        out["delta"].append(float(ig["delta"][0]))
        out["output_difference"].append(float(ig["output"][0] - ig["baseline_output"][0]))
        out["frame_shares"].append(frame_attributions(explained.actor, seq, h0, action=action)[0].numpy())
    return {"track": track, "agent_xy": xy[times, 0], "opponent_xy": xy[times, opponent],
            "frames": np.stack([seen["image"][t] for t in times]),
            "attributions": np.stack(out["attributions"]), "masks": np.stack(out["masks"]),
            "frame_shares": np.stack(out["frame_shares"]), "times_s": times / CONTROL_HZ, "opponent": opponent,
            "delta": np.array(out["delta"]), "output_difference": np.array(out["output_difference"]),
            "opponent_gap_m": ahead_m[times, opponent - 1] if opponent else np.zeros(len(times))}


def _overtake(ahead_m, gaps, first: int, last_start: int, span: int, near_m: float) -> tuple[int, int]:
    """The first snapshot window ``[t0, t0 + span]`` (``first <= t0 <= last_start``) that straddles a pass: an
    opponent within ``near_m`` that is ahead of the agent along the course from ``t0`` to the pass and behind it
    from the pass to the window's end, with the pass in the window's middle. Returns ``t0`` and the opponent's
    car index."""
    import numpy as np

    ahead = ahead_m > 0
    half = span // 2
    # passes: opponent j ahead at t - 1, behind at t, and near then
    for t, j in zip(*np.nonzero(ahead[:-1] & ~ahead[1:] & (gaps[1:] < near_m))):
        t = int(t) + 1
        t0 = t - max(half, 1)
        if first <= t0 <= last_start and ahead[t0:t, j].all() and not ahead[t:t0 + span + 1, j].any():
            return t0, int(j) + 1
    raise ValueError(f"no pass of an opponent within {near_m} m that straddles {span + 1} steps in this race "
                     f"(after {first} steps); race longer (max_time_s) or use moment='near'")
