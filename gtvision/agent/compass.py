"""A compass on one frame: which way does the course run? For the recovery reflex's side (``recovery_side='compass'``).

Paper: none. The reflex (:mod:`gtvision.agent.recovery`) backs a stopped car off and turns its nose to one side; the
side that points the nose back along the course frees the car, the other drives it into the wall again or the wrong
way. The actor's own image embedding holds that side poorly (a ridge probe on it is right 54-61% of the time:
LOG.md, "A car stopped at a wall"), so the compass is a small CNN of its own, trained in about a minute on frames
this module draws: the learner's car standing anywhere on the lap at any heading, half of them beside a wall
(often the nose in it, as at the reflex's moments), with up to ``MAX_CARS`` other cars standing around it (the
reflex's moments are often in the crowd of the first corners). It predicts the signs of cos psi (facing along the
course) and sin psi (nose left of it), psi the heading against the course; the reflex turns the nose right when the
compass says it points left of the course, and left otherwise.

It reads only the image (what the vision actor reads); the simulator's heading is its label at training time
only. ``gtvision export --set agent.recovery=true --set agent.recovery_side=compass`` trains one for the checkpoint's
scenario and stores it with the exported agent (the part ``gtvision.checkpoints.COMPASS``; its training seconds in the export's
``config.json``, counted in the training budget like any other training)."""
from __future__ import annotations

import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..sim.render import CameraConfig, render_ego

MAX_CARS = 7
"""At most this many other cars stand in a training frame's scene (0 to ``MAX_CARS``, uniform)."""
CARS_WITHIN_M = 30.0
"""They stand within this far of the learner along the course, ahead or behind."""
WALL_SHARE = 0.5
"""The share of training frames with the learner beside a wall (``WALL_GAP_M`` from it at its nearest corner)."""
WALL_GAP_M = 0.3
HELD_OUT_EVERY_M = 1000.0
"""The compass is scored on the frames whose course distance falls in the first ``HELD_OUT_M`` of every
``HELD_OUT_EVERY_M`` (places of the lap it was not trained on)."""
HELD_OUT_M = 200.0


class Compass(nn.Module):
    """Three convolutions on a (N, H, W, 3) uint8 frame -> (N, 2) logits of cos psi > 0 and sin psi > 0."""

    def __init__(self, image_size: int = 64):
        super().__init__()
        side = -(-image_size // 8)
        self.net = nn.Sequential(nn.Conv2d(3, 16, 5, 2, 2), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(32 * side * side, 64), nn.ReLU(), nn.Linear(64, 2))
        self.image_size = image_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = torch.as_tensor(images)
        if images.dim() != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"the compass reads (N, {self.image_size}, {self.image_size}, 3) frames, got "
                             f"{tuple(images.shape)}")
        device = next(self.parameters()).device
        return self.net(images.to(device).permute(0, 3, 1, 2).float() / 255)


def reach_m(car, psi: torch.Tensor) -> torch.Tensor:
    """How far a car at heading ``psi`` against the course reaches across it from its centre (m)."""
    return car.length_m / 2 * psi.sin().abs() + car.width_m / 2 * psi.cos().abs()


def compass_scenes(track, car, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``n`` scenes of the learner's car (car 0) standing at a random place and heading, ``MAX_CARS`` others around:
    (x, y, yaw) each (n, 1 + MAX_CARS), the learner's course distance s (n,) and heading psi against the course (n,).
    Cars not in a scene stand half a lap away."""
    g = generator
    rand = lambda *shape: torch.rand(*shape, generator=g)
    s = rand(n) * track.length_m
    psi = (rand(n) * 2 - 1) * math.pi
    station = track.station_of_s(s)
    left = track.wall_left_m[station] - reach_m(car, psi) - WALL_GAP_M
    right = -(track.wall_right_m[station] - reach_m(car, psi) - WALL_GAP_M)
    lat = right + rand(n) * (left - right)
    at_wall = rand(n) < WALL_SHARE
    lat = torch.where(at_wall, torch.where(rand(n) < 0.5, left, right), lat)
    # the others: along the course around the learner, between the walls, mostly facing along it
    count = torch.randint(0, MAX_CARS + 1, (n,), generator=g)
    present = torch.arange(MAX_CARS) < count[:, None]
    s_o = (s[:, None] + (rand(n, MAX_CARS) * 2 - 1) * CARS_WITHIN_M) % track.length_m
    s_o = torch.where(present, s_o, (s[:, None] + track.length_m / 2) % track.length_m)
    st_o = track.station_of_s(s_o)
    wl, wr = track.wall_left_m[st_o] - car.width_m, track.wall_right_m[st_o] - car.width_m
    lat_o = -wr + rand(n, MAX_CARS) * (wl + wr)
    spun = rand(n, MAX_CARS) < 0.2
    psi_o = torch.where(spun, (rand(n, MAX_CARS) * 2 - 1) * math.pi, torch.randn(n, MAX_CARS, generator=g) * 0.2)
    S = torch.cat([s[:, None], s_o], 1)
    L = torch.cat([lat[:, None], lat_o], 1)
    x, y, _ = track.point_at(S, L)
    yaw = track.heading_rad[track.station_of_s(S)] + torch.cat([psi[:, None], psi_o], 1)
    return x, y, yaw, s, psi


def compass_frames(scenario: str, frames: int, seed: int = 0, image_size: int = 64, chunk: int = 500):
    """``frames`` training frames of ``scenario`` (:func:`compass_scenes` drawn as the learner's camera sees them):
    (images (M, H, W, 3) uint8, s (M,), psi (M,))."""
    from ..sim.scenarios import get_scenario
    from ..sim.circuits import load_track
    from ..sim.cars import get_car

    sc = get_scenario(scenario)
    track, car = load_track(sc.track), get_car(sc.car)
    camera = CameraConfig(height_px=image_size, width_px=image_size)
    g = torch.Generator().manual_seed(seed)
    images, S, P = [], [], []
    for start in range(0, frames, chunk):
        n = min(chunk, frames - start)
        x, y, yaw, s, psi = compass_scenes(track, car, n, g)
        images.append(render_ego(track, x, y, yaw, torch.zeros(n, dtype=torch.long), car.length_m, car.width_m,
                                 car.height_m, camera))
        S.append(s)
        P.append(psi)
    return torch.cat(images), torch.cat(S), torch.cat(P)


def held_out(s: torch.Tensor) -> torch.Tensor:
    """(M,) bool: the frames of the places the compass is scored on, not trained on."""
    return (s % HELD_OUT_EVERY_M) < HELD_OUT_M


def compass_accuracy(compass: Compass, images: torch.Tensor, psi: torch.Tensor) -> tuple[float, float]:
    """The shares of ``images`` on which the compass's signs of cos psi and of sin psi are right."""
    with torch.no_grad():
        pred = torch.cat([compass(chunk) for chunk in images.split(2000)]).cpu() > 0
    truth = torch.stack([psi.cos() > 0, psi.sin() > 0], 1)
    right = (pred == truth).float().mean(0)
    return float(right[0]), float(right[1])


def train_compass(scenario: str, frames: int = 24000, epochs: int = 12, seed: int = 0, batch: int = 128,
                  lr: float = 1e-3, image_size: int = 64, progress: bool = True) -> Compass:
    """A compass for ``scenario``: ``frames`` frames (:func:`compass_frames`), Adam on the signs' cross-entropy for
    ``epochs`` passes over those not held out. Returns it in eval mode, with ``info`` (frames, epochs, seconds of
    drawing and training, and its held-out accuracy)."""
    if frames < 1 or epochs < 1:
        raise ValueError(f"the compass needs frames >= 1 and epochs >= 1, got frames={frames!r}, epochs={epochs!r}")
    start = time.perf_counter()
    images, s, psi = compass_frames(scenario, frames, seed, image_size)
    fit = torch.nonzero(~held_out(s)).squeeze(1)
    test = torch.nonzero(held_out(s)).squeeze(1)
    torch.manual_seed(seed)
    compass = Compass(images.shape[1])
    labels = torch.stack([psi.cos() > 0, psi.sin() > 0], 1).float()
    opt = torch.optim.Adam(compass.parameters(), lr)
    g = torch.Generator().manual_seed(seed + 1)
    steps = epochs * -(-len(fit) // batch)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=f"compass ({scenario}, {len(fit)} frames)", unit="step")
    for _ in range(epochs):
        for rows in fit[torch.randperm(len(fit), generator=g)].split(batch):
            loss = F.binary_cross_entropy_with_logits(compass(images[rows]), labels[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    compass.eval()
    cos_right, sin_right = compass_accuracy(compass, images[test], psi[test])
    compass.info = {"scenario": scenario, "frames": frames, "epochs": epochs, "seed": seed,
                    "seconds": round(time.perf_counter() - start, 1),
                    "held_out_frames": len(test), "held_out_cos_right": round(cos_right, 4),
                    "held_out_sin_right": round(sin_right, 4)}
    return compass


def load_compass(state: dict) -> Compass:
    """A compass from its stored weights (the part ``COMPASS`` of an exported agent)."""
    size = state.get("image_size")
    weights = {k: v for k, v in state.items() if k != "image_size"}
    compass = Compass(int(size) if size is not None else 64)
    compass.load_state_dict(weights)
    return compass.eval()


def compass_state(compass: Compass) -> dict:
    """What an exported agent stores of ``compass`` (its weights and frame size)."""
    return {**compass.state_dict(), "image_size": compass.image_size}
