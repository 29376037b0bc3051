"""A compass on one frame, for the diagnostics (heading_probe.py, compass_side.py): standing frames at random places
and headings of the course, and a small CNN of its own trained on them for the signs of cos psi (facing along the
course) and sin psi (nose left of it)."""
import math
import time

import torch
import torch.nn as nn

from place import at_wall, place


def standing_frames(env, rounds: int, generator: torch.Generator):
    """``rounds`` x R frames of the learner standing at random course distances, lateral offsets within the walls and
    headings psi (uniform in (-pi, pi]): (images (M, H, W, 3) uint8, s (M,), psi (M,))."""
    b = env.batch
    track, car = b.track, b.params.car
    n = b.num_races
    images, S, P = [], [], []
    for _ in range(rounds):
        s = torch.rand(n, generator=generator) * track.length_m
        psi = (torch.rand(n, generator=generator) * 2 - 1) * math.pi
        left, right = at_wall(track, car, s, torch.ones(n), psi), at_wall(track, car, s, -torch.ones(n), psi)
        place(b, s, right + torch.rand(n, generator=generator) * (left - right), psi)
        images.append(torch.as_tensor(env._obs()["image"]))
        S.append(s)
        P.append(psi)
    return torch.cat(images), torch.cat(S), torch.cat(P)


def compass_net() -> nn.Module:
    """Three convolutions on a 64x64 frame -> two logits (cos psi > 0, sin psi > 0)."""
    return nn.Sequential(nn.Conv2d(3, 16, 5, 2, 2), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(),
                         nn.Linear(64, 2))


def as_input(images: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255


def train_compass(images, psi, rows, epochs: int, generator: torch.Generator):
    """The compass fitted (Adam 1e-3, batch 128) on ``rows`` of the frames; returns (net, seconds)."""
    torch.manual_seed(0)
    x = as_input(images)
    y = torch.stack([psi.cos() > 0, psi.sin() > 0], 1).float()
    net = compass_net()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    start = time.time()
    for _ in range(epochs):
        for batch in rows[torch.randperm(len(rows), generator=generator)].split(128):
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval(), time.time() - start
