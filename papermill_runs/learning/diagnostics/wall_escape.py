"""Does a car stopped at a wall get away? A bench of the recovery reflex on a checkpoint's own policy, alone on the
track: each race puts the learner at a standstill beside a wall (left or right, ``place.GAP_M`` from it at its nearest
corner) at one of POSITIONS course positions and one of the HEADINGS against the course (0: along it, 90: nose to
the left, 180: backwards), its network's memory fresh, and lets the driver (policy, reflex, aid, as it races)
drive for HORIZON_S. A situation escapes when the stuck rule (10 m of course in 10 s,
``gtvision.env.episodes.STUCK_S``) has not ended it and the car has made ESCAPED_M of course by then. The races'
unfinished ends are cars standing at a wall after a spin or a knock (LOG.md, "Where E3Vh's races end"), which this
measures many times over in a minute, where a race meets one in a hundred.
Usage: THREADS=n python wall_escape.py CHECKPOINT|biai [OUT.csv]   (prints the escape rate by heading and side)"""
import math
import os
import sys

import numpy as np
import pandas as pd
import torch

from gtvision.agent.rollout import Rollout
from gtvision.env.episodes import LEARNER
from gtvision.evaluation import race_envs
from place import at_wall, place

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
HEADINGS = np.arange(-150, 181, 30)
SIDES = (1, -1)                    # +1: the left wall, -1: the right one
POSITIONS = 12
HORIZON_S = 15.0
ESCAPED_M = 30.0
ck = sys.argv[1]
situations = [(p, side, h) for p in range(POSITIONS) for side in SIDES for h in HEADINGS]
n = len(situations)
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu", opponents=0)
ro = Rollout(envs, agent, seed=0, eval_mode=True)
env = envs.unwrapped
b = env.batch
track, car = b.track, b.params.car
# course positions spread over the lap, away from the start line (the lap count plays no part)
s_pos = torch.linspace(300.0, track.length_m - 300.0, POSITIONS)
s = torch.tensor([float(s_pos[p]) for p, _, _ in situations])
side = torch.tensor([float(sd) for _, sd, _ in situations])
psi = torch.tensor([math.radians(float(h)) for _, _, h in situations])
place(b, s, at_wall(track, car, s, side, psi), psi)
ro.obs = env._obs()
steps = round(HORIZON_S * 10)
ended = np.zeros(n, bool)
gain = np.zeros(n)
for t in range(steps):
    step = ro.step(env.biai_actions() if agent is None else None)   # 'biai': the built-in AI in the seat
    done = (np.asarray(step.terminated, bool) | np.asarray(step.truncated, bool)) & ~ended
    gain = np.where(ended, gain, b.state.progress_m[:, LEARNER].numpy() - s.numpy())
    ended |= done
rows = pd.DataFrame(situations, columns=["position", "side", "heading_deg"])
rows["s_m"] = s.numpy().round(0)
rows["gain_m"] = gain.round(1)
rows["ended"] = ended
rows["escaped"] = ~ended & (gain >= ESCAPED_M)
if len(sys.argv) > 2:
    rows.to_csv(sys.argv[2], index=False)
pd.set_option("display.width", 200)
print(f"{ck}: {n} situations, {HORIZON_S:.0f} s each; escaped {int(rows.escaped.sum())} of {n} "
      f"({rows.escaped.mean():.1%}); ended by the stuck rule {int(rows.ended.sum())}")
print(rows.pivot_table(index="heading_deg", columns="side", values="escaped", aggfunc="sum")
      .rename(columns={1: "left wall", -1: "right wall"}).to_string())
