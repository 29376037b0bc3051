"""The frames the recovery reflex begins on, with the truth: races a checkpoint (its own reflex, unchanged) and saves,
at every reflex start, the learner's frame, the simulator's heading error against the course (degrees, + nose
left), the race and the time, and how many other cars stand within 30 m of it; a test set for a compass of the
reflex's moments (compass_walls.py's open and wall frames are placed, these are met in races).
Usage: THREADS=n python reflex_frames.py CHECKPOINT RACES SEED OUT.pt"""
import os
import sys

import numpy as np
import torch

from gtvision.env.episodes import LEARNER
from hook import race_to_end, reflex_races, wrap_reflex

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
ck, n, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ro, b, reflex = reflex_races(ck, n, seed)
orig = reflex.__call__
live = np.ones(n, bool)
rows_out = {"image": [], "herr_deg": [], "race": [], "time_s": [], "near_cars": [], "steer_side": []}


def call(action, proprio, image=None):
    before = reflex.since.clone()
    out = orig(action, proprio, image)
    began = (reflex.since == 0) & (before != 0) & torch.as_tensor(live)
    if began.any():
        rows = torch.nonzero(began).squeeze(1)
        s = b.state
        head = b.track.heading_rad[s.station[rows, LEARNER]]
        herr = torch.atan2(torch.sin(s.yaw[rows, LEARNER] - head), torch.cos(s.yaw[rows, LEARNER] - head))
        d = torch.hypot(s.x[rows] - s.x[rows, LEARNER:LEARNER + 1], s.y[rows] - s.y[rows, LEARNER:LEARNER + 1])
        d[:, LEARNER] = float("inf")
        rows_out["image"].append(torch.as_tensor(ro.obs["image"])[rows].clone())
        rows_out["herr_deg"].append(torch.rad2deg(herr))
        rows_out["race"].append(rows)
        rows_out["time_s"].append(s.time_s[rows].clone())
        rows_out["near_cars"].append((d < 30).sum(1))
        rows_out["steer_side"].append(reflex.side[rows].clone())
    return out


wrap_reflex(ro, call)
finished = race_to_end(ro, live)
saved = {k: torch.cat(v) if v else torch.zeros(0) for k, v in rows_out.items()}
torch.save({**saved, "checkpoint": ck, "seed": seed, "races": n, "finished": int(finished.sum())}, out)
h = saved["herr_deg"]
print(f"{ck}, {n} races of seed {seed}: {int(finished.sum())} finished, {len(h)} reflex starts saved to {out}; "
      f"near cars (30 m) at them: mean {saved['near_cars'].float().mean():.1f}; |heading error| > 90 deg at "
      f"{int((h.abs() > 90).sum())}")
