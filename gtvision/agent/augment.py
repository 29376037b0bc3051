"""Random shift with mirrored padding (paper III-E, IV-B; Yarats et al. DrQ).

The image is padded by reflection by ``max_shift`` pixels on each side and a window of its own size is
cropped at a random integer offset, which moves the content by at most ``max_shift`` pixels along each
axis. Implemented as one gather with reflected indices: no padding copy, no Python loop over images,
any dtype (uint8 stays uint8).
"""
from __future__ import annotations

import torch


def reflect_index(index: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror (reflect, edge not repeated) indices outside [0, size): -1 -> 1, size -> size - 2."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def random_shift(images: torch.Tensor, max_shift: int, shifts: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each leading-axis item of ``images`` by a random integer offset, reflect-padded.

    ============  ==========================  ================================================
    argument      shape                       notes
    ============  ==========================  ================================================
    images        (B, ..., H, W, C)           one shift per b, shared over the middle axes
                                              (e.g. all T frames of a replayed sequence)
    shifts        (B, 2) long, optional       (dy, dx) in [-max_shift, max_shift]; drawn if None
    returns       (B, ..., H, W, C)           out[b, y, x] = images[b, r(y + dy), r(x + dx)]
    ============  ==========================  ================================================
    """
    if max_shift < 0 or max_shift >= min(images.shape[-3], images.shape[-2]):
        raise ValueError(f"max_shift={max_shift} must be in [0, {min(images.shape[-3:-1]) - 1}]")
    b, h, w = images.shape[0], images.shape[-3], images.shape[-2]
    if shifts is None:
        shifts = torch.randint(-max_shift, max_shift + 1, (b, 2), device=images.device, generator=generator)
    rows = reflect_index(torch.arange(h, device=images.device) + shifts[:, :1], h)  # (B, H)
    cols = reflect_index(torch.arange(w, device=images.device) + shifts[:, 1:], w)  # (B, W)
    x = images.reshape(b, -1, h, w, images.shape[-1])  # (B, M, H, W, C)
    bi = torch.arange(b, device=images.device)[:, None, None, None]
    mi = torch.arange(x.shape[1], device=images.device)[None, :, None, None]
    out = x[bi, mi, rows[:, None, :, None], cols[:, None, None, :]]
    return out.reshape(images.shape)
