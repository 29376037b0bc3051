"""Where do cars standing backwards at a wall go? Eight of them (four at 180 degrees, four at 150; left and right
walls in turn, 500 to 4,000 m), the checkpoint driving as it races (policy, reflex, aid), alone: every 2 s the heading
against the course, the reflex's starts and cycles in a row (``recovery_turn``), the compass's backwards count
(``recovery_wrong_way_s``) and the course made since the start (the stuck rule ends a race without 10 m in 10 s; a
new episode starts then, at the grid).
Usage: THREADS=n python turn_trace.py CHECKPOINT"""
import math
import os
import sys

import torch

from gtvision.agent.rollout import Rollout
from gtvision.env.episodes import LEARNER
from gtvision.evaluation import race_envs
from place import at_wall, place

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
ck = sys.argv[1]
n = 8
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu", opponents=0)
ro = Rollout(envs, agent, seed=0, eval_mode=True)
b = envs.unwrapped.batch
tr, car = b.track, b.params.car
s = torch.linspace(500, 4000, n)
psi = torch.full((n,), math.radians(180.0))
psi[4:] = math.radians(150)
side = torch.tensor([1., -1.] * 4)
place(b, s, at_wall(tr, car, s, side, psi), psi)
ro.obs = envs.unwrapped._obs()
for t in range(120):
    ro.step(None)
    if t % 20 == 19:
        S = b.state
        head = tr.heading_rad[S.station[:, LEARNER]]
        herr = torch.rad2deg(torch.atan2(torch.sin(S.yaw[:, LEARNER] - head), torch.cos(S.yaw[:, LEARNER] - head)))
        r = ro.reflex
        print(f"{(t + 1) / 10:.0f} s: heading {[round(float(h)) for h in herr]}, reflex starts {r.count.tolist()}, "
              f"cycles in a row {r.cycles.tolist()}, compass backwards {r.backwards.tolist()}, course made "
              f"{[round(float(p)) for p in (S.progress_m[:, LEARNER] - s)]} m")
