"""Would a compass on the image pick the reflex's side better, and finish more races? A prototype, not the agent: a
compass of its own (``compass.py``: a small CNN on one frame for the signs of cos psi and sin psi) is trained on
ROUNDS x 500 standing frames of the whole lap (its training minutes would count in the five hours), then the
checkpoint races `gtvision evaluate`'s races (4 laps from the back of the grid, 19 BIAI; bit for bit on the same
thread count) with its reflex's side at each start taken from the compass on that step's frame (turn the nose back
towards the course: right when the compass says the nose points left of it) instead of the steering's. Prints the
races finished and, at every reflex start, the compass's side against the simulator's heading (the truth).
Usage: THREADS=n python compass_side.py CHECKPOINT RACES SEED [ROUNDS EPOCHS]"""
import math
import os
import sys

import numpy as np
import torch

from gtvision.agent.recovery import STEER_COMMAND, STEER_GAIN
from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs
from compass import as_input, standing_frames, train_compass
from hook import race_to_end, reflex_races, wrap_reflex

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rounds, epochs = (int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 else (48, 12)
frame_envs, _ = race_envs("biai", "tokyo", 500, 4, "cpu", opponents=0, render_image=True)
Rollout(frame_envs, None, seed=0)
g = torch.Generator().manual_seed(0)
images, _, psi = standing_frames(frame_envs.unwrapped, rounds, g)
frame_envs.close()
net, seconds = train_compass(images, psi, torch.arange(len(images)), epochs, g)
print(f"compass: {len(images)} frames, {epochs} epochs, {seconds:.0f} s of training", flush=True)

ro, b, reflex = reflex_races(ck, n, seed)
orig = reflex.__call__
live = np.ones(n, bool)
starts = []


def call(action, proprio, image=None):
    before = reflex.since.clone()
    out = orig(action, proprio, image)
    began = (reflex.since == 0) & (before != 0) & torch.as_tensor(live)
    if began.any():
        rows = torch.nonzero(began).squeeze(1)
        with torch.no_grad():
            nose_left = net(as_input(torch.as_tensor(ro.obs["image"])[rows]))[:, 1] > 0
        side = torch.where(nose_left, -1.0, 1.0)
        steer_side = reflex.side[rows].clone()
        reflex.side[rows] = side
        steer = torch.as_tensor(np.asarray(proprio))[rows, STEER_COMMAND].float()
        rate = (STEER_GAIN * (-side - steer)).clamp(-1.0, 1.0)   # backing: the wheel away from the side
        out = out.copy() if isinstance(out, np.ndarray) else out.clone()
        out[rows.numpy(), 0] = rate.numpy().astype(out.dtype) if isinstance(out, np.ndarray) else rate.to(out)
        s = b.state
        head = b.track.heading_rad[s.station[rows, 0]]
        herr = torch.atan2(torch.sin(s.yaw[rows, 0] - head), torch.cos(s.yaw[rows, 0] - head))
        for i, r in enumerate(rows.tolist()):
            starts.append(dict(race=r, herr_deg=math.degrees(float(herr[i])), truth=-1.0 if herr[i] > 0 else 1.0,
                               compass=float(side[i]), steer=float(steer_side[i])))
    return out


wrap_reflex(ro, call)
finished = race_to_end(ro, live, report=lambda: f"{len(starts)} reflex starts")
right = sum(x["compass"] == x["truth"] for x in starts)
steer_right = sum(x["steer"] == x["truth"] for x in starts)
print(f"{ck}, {n} races of seed {seed}, the reflex's side from the compass: {int(finished.sum())} finished; "
      f"{len(starts)} reflex starts, the compass's side right in {right}, the steering's would be in {steer_right}; "
      f"unfinished: {np.nonzero(~finished)[0].tolist()}")
