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

import torch
import torch.nn.functional as F

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
