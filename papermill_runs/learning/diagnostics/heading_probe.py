"""Can the vision actor tell from one frame which way the course runs? The learner is put standing at ROUNDS x 500
random places of the lap (course distance, lateral offset within the walls, heading error psi uniform in
(-180, 180] degrees; ``place.py``), and a ridge-regression probe on the actor's image embedding (each ensemble
member's image encoder, concatenated) predicts cos psi (facing along the course: +) and sin psi (nose left of it:
+), fitted on four fifths of the lap and scored on the rest (every fifth 200 m block). A reflex that turns a
stopped car round, or picks its side, on the image would need these signs. With EPOCHS, a small CNN of its own
(three convolutions, 146,370 weights) is trained on the same frames (Adam, batch 128) for those signs and scored on the
same held-out places: what one frame holds, where the actor's encoder may not keep it.
Usage: THREADS=n python heading_probe.py CHECKPOINT [ROUNDS [EPOCHS]]"""
import math
import os
import sys

import time

import torch
import torch.nn as nn

from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs
from place import GAP_M, place, reach_m

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
ck = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
n = 500
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu", opponents=0)
ro = Rollout(envs, agent, seed=0, eval_mode=True)
env = envs.unwrapped
b = env.batch
track, car = b.track, b.params.car
actors = getattr(agent.actor, "actors", [agent.actor])
g = torch.Generator().manual_seed(0)
X, S, P, I = [], [], [], []
for _ in range(rounds):
    s = torch.rand(n, generator=g) * track.length_m
    psi = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    station = track.station_of_s(s)
    room_l = track.wall_left_m[station] - reach_m(car, psi) - GAP_M
    room_r = track.wall_right_m[station] - reach_m(car, psi) - GAP_M
    place(b, s, -room_r + torch.rand(n, generator=g) * (room_l + room_r), psi)
    image = torch.as_tensor(env._obs()["image"])
    I.append(image)
    with torch.no_grad():
        X.append(torch.cat([a.torso.encoders["image"](image).float() for a in actors], 1))
    S.append(s)
    P.append(psi)
X, S, P = torch.cat(X), torch.cat(S), torch.cat(P)
held_out = (S % 1000) < 200
Xa = torch.cat([X, torch.ones(len(X), 1)], 1)
A = Xa[~held_out]
print(f"{ck}: {len(X)} frames, {X.shape[1]} image features ({len(actors)} encoder(s)); ridge probe fitted on "
      f"{int((~held_out).sum())}, scored on {int(held_out.sum())} at other places of the lap")
for name, y in (("cos psi (facing along the course +)", P.cos()), ("sin psi (nose left of the course +)", P.sin())):
    w = torch.linalg.solve(A.T @ A + torch.eye(A.shape[1]), A.T @ y[~held_out])
    pred = Xa @ w
    right = (pred > 0) == (y > 0)
    clear = held_out & (y.abs() > 0.5)
    print(f"  {name}: sign right {right[held_out].float().mean():.1%} held out "
          f"({right[clear].float().mean():.1%} where |y| > 0.5), {right[~held_out].float().mean():.1%} fitted")

epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 0
if epochs:
    torch.manual_seed(0)
    x = torch.cat(I).permute(0, 3, 1, 2).float() / 255
    y = torch.stack([P.cos() > 0, P.sin() > 0], 1).float()
    net = nn.Sequential(nn.Conv2d(3, 16, 5, 2, 2), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 8 * 8, 64), nn.ReLU(),
                        nn.Linear(64, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    fit_rows, test_rows = torch.nonzero(~held_out).squeeze(1), torch.nonzero(held_out).squeeze(1)
    start = time.time()
    for epoch in range(epochs):
        for batch in fit_rows[torch.randperm(len(fit_rows), generator=g)].split(128):
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        right = ((net(x[test_rows]) > 0) == (y[test_rows] > 0.5)).float().mean(0)
    print(f"  a CNN of its own ({sum(p.numel() for p in net.parameters()):,} weights, {epochs} epochs, "
          f"{time.time() - start:.0f} s): sign of cos psi right {right[0]:.1%} held out, of sin psi {right[1]:.1%}")
