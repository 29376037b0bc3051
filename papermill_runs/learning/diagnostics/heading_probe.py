"""Can the vision actor tell from one frame which way the course runs? The learner is put standing at ROUNDS x 500
random places of the lap (course distance, lateral offset within the walls, heading error psi uniform in
(-180, 180] degrees; ``place.py``), and a ridge-regression probe on the actor's image embedding (each ensemble
member's image encoder, concatenated) predicts cos psi (facing along the course: +) and sin psi (nose left of it:
+), fitted on four fifths of the lap and scored on the rest (every fifth 200 m block). A reflex that turns a
stopped car round, or picks its side, on the image would need these signs. With EPOCHS, a small CNN of its own
(three convolutions, 146,370 weights) is trained on the same frames (Adam, batch 128) for those signs and scored on the
same held-out places: what one frame holds, where the actor's encoder may not keep it.
Usage: THREADS=n python heading_probe.py CHECKPOINT [ROUNDS [EPOCHS]]"""
import os
import sys

import torch

from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs
from compass import as_input, standing_frames, train_compass

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
ck = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
n = 500
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu", opponents=0)
ro = Rollout(envs, agent, seed=0, eval_mode=True)
env = envs.unwrapped
b = env.batch
actors = getattr(agent.actor, "actors", [agent.actor])
g = torch.Generator().manual_seed(0)
I, S, P = standing_frames(env, rounds, g)
with torch.no_grad():
    X = torch.cat([torch.cat([a.torso.encoders["image"](chunk).float() for a in actors], 1) for chunk in I.split(n)])
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
    fit_rows, test_rows = torch.nonzero(~held_out).squeeze(1), torch.nonzero(held_out).squeeze(1)
    net, seconds = train_compass(I, P, fit_rows, epochs, g)
    y = torch.stack([P.cos() > 0, P.sin() > 0], 1)
    with torch.no_grad():
        right = ((net(as_input(I[test_rows])) > 0) == y[test_rows]).float().mean(0)
    print(f"  a CNN of its own ({sum(p.numel() for p in net.parameters()):,} weights, {epochs} epochs, "
          f"{seconds:.0f} s): sign of cos psi right {right[0]:.1%} held out, of sin psi {right[1]:.1%}")
