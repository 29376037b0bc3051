"""Does the compass read the course from a frame at a wall? Frames of the learner standing at random places of the
lap (``compass.standing_frames``: anywhere between the walls) and standing at a wall (``wall_frames``: beside the left
or right wall, ``place.GAP_M`` from it, any heading: often the nose in the wall, as at the reflex's moments), held
out by lap blocks (every fifth 200 m); the compass trained on the open frames alone, and on open and wall frames
together (the same number of gradient steps), each scored on both kinds of held-out frames.
Usage: THREADS=n python compass_walls.py [ROUNDS EPOCHS]"""
import math
import os
import sys

import torch

from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs
from compass import as_input, standing_frames, train_compass
from place import at_wall, place

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
rounds, epochs = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (48, 12)


def wall_frames(env, rounds, generator):
    b = env.batch
    track, car, n = b.track, b.params.car, b.num_races
    images, S, P = [], [], []
    for _ in range(rounds):
        s = torch.rand(n, generator=generator) * track.length_m
        psi = (torch.rand(n, generator=generator) * 2 - 1) * math.pi
        side = torch.where(torch.rand(n, generator=generator) < 0.5, 1.0, -1.0)
        place(b, s, at_wall(track, car, s, side, psi), psi)
        images.append(torch.as_tensor(env._obs()["image"]))
        S.append(s)
        P.append(psi)
    return torch.cat(images), torch.cat(S), torch.cat(P)


envs, _ = race_envs("biai", "tokyo", 500, 4, "cpu", opponents=0, render_image=True)
Rollout(envs, None, seed=0)
g = torch.Generator().manual_seed(0)
IU, SU, PU = standing_frames(envs.unwrapped, rounds, g)
IW, SW, PW = wall_frames(envs.unwrapped, rounds, g)
held = lambda S: (S % 1000) < 200
tests = {"open": (IU[held(SU)], PU[held(SU)]), "wall": (IW[held(SW)], PW[held(SW)])}


def score(net):
    out = {}
    with torch.no_grad():
        for name, (I, P) in tests.items():
            pred = torch.cat([net(as_input(c)) for c in I.split(2000)]) > 0
            y = torch.stack([P.cos() > 0, P.sin() > 0], 1)
            out[name] = ((pred == y).float().mean(0) * 100).tolist()
    return out


rows_u = torch.nonzero(~held(SU)).squeeze(1)
net, sec = train_compass(IU, PU, rows_u, epochs, g)
print(f"open frames only ({len(rows_u)}, {epochs} epochs, {sec:.0f} s): {score(net)}  [cos %, sin %]", flush=True)
I, S, P = torch.cat([IU, IW]), torch.cat([SU, SW]), torch.cat([PU, PW])
rows = torch.nonzero(~held(S)).squeeze(1)
net, sec = train_compass(I, P, rows, epochs // 2, g)
print(f"open + wall frames ({len(rows)}, {epochs // 2} epochs, {sec:.0f} s): {score(net)}", flush=True)
net, sec = train_compass(I, P, rows, epochs, g)
print(f"open + wall frames ({len(rows)}, {epochs} epochs, {sec:.0f} s): {score(net)}", flush=True)
