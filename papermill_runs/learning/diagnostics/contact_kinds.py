"""Where a driver's car contact comes from: every step in which the learner touches another car, by where the other
car is along the course (ahead: more than 3 m ahead, the learner's nose on its tail; behind: more than 3 m back, a
car on the learner's tail; alongside: between), by lap, and the learner's own throttle/brake command then.
Usage: python contact_kinds.py CHECKPOINT RACES SEED  (4-lap races from the back of the grid, as `gtvision evaluate`)."""
import sys

import numpy as np
import torch

from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs

torch.set_num_threads(1)
ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
rollout = Rollout(envs, agent, seed=seed, eval_mode=True)
batch = envs.unwrapped.batch
dt = 0.1  # s per control step (10 Hz)
kinds = ("ahead", "alongside", "behind")
secs = {k: np.zeros(4) for k in kinds}
gas = {k: [] for k in kinds}
live = np.ones(n, bool)
for _ in range(6000):
    step = rollout.step(None)
    s = batch.state
    rel = (s.progress_m[:, 1:] - s.progress_m[:, :1]).numpy()
    touch = s.in_contact[:, 0, 1:].numpy() & live[:, None]
    lap = np.minimum(s.laps_done[:, 0].numpy().astype(int), 3)
    for kind, mask in (("ahead", rel > 3), ("behind", rel < -3), ("alongside", np.abs(rel) <= 3)):
        hit = (touch & mask).any(1)
        np.add.at(secs[kind], lap[hit], dt)
        gas[kind] += list(np.asarray(step.action)[hit, 1])
    live &= ~(np.asarray(step.terminated) | np.asarray(step.truncated))
    if not live.any():
        break
print(f"{ck}: {n} races, seed {seed}; seconds of contact per race (a step touching cars in two places counts in both)")
print(f"{'kind':10s} {'total':>6s} " + " ".join(f"lap {i + 1:d}" for i in range(4)) + "   learner's throttle/brake mean")
for k in kinds:
    print(f"{k:10s} {secs[k].sum() / n:6.1f} " + " ".join(f"{v / n:5.1f}" for v in secs[k])
          + f"   {np.mean(gas[k]) if gas[k] else float('nan'):+.2f}")
