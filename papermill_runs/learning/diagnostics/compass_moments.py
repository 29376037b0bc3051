"""How often is each compass right at the reflex's real moments? Scores compasses on the frames reflex_frames.py saved
at the reflex starts of races (the truth: the simulator's heading error, nose left of the course or right), next to
the steering's side (the reflex's default) on the same starts, and on the placed frames the package's compass is
scored on: (1) the prototype (compass.py: open frames, no cars, trained here), (2) the package's
(gtvision.agent.compass: half at a wall, up to 7 cars around): an exported agent's stored one (--from), else one
trained here with its defaults. Both the side (the sign of sin psi) and facing backwards (cos psi < 0, what
``recovery_turn`` reads) are scored.
Usage: THREADS=n python compass_moments.py FRAMES.pt [FRAMES.pt ...] [--from AGENT_DIR]"""
import os
import sys

import torch

from gtvision import checkpoints
from gtvision.agent.compass import load_compass, train_compass
from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs
from compass import as_input, standing_frames, train_compass as train_prototype

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
args = sys.argv[1:]
stored = None
if "--from" in args:
    i = args.index("--from")
    stored, args = args[i + 1], args[:i] + args[i + 2:]
sets = [torch.load(p) for p in args]
images = torch.cat([d["image"] for d in sets])
herr = torch.cat([d["herr_deg"] for d in sets])
steer_side = torch.cat([d["steer_side"] for d in sets])
near = torch.cat([d["near_cars"] for d in sets])
truth_left = herr > 0        # nose left of the course: the reflex should turn it right (side -1)
truth_back = herr.abs() > 90
print(f"{len(herr)} reflex starts from {', '.join(args)}; other cars within 30 m at {int((near > 0).sum())}; "
      f"|heading error| > 90 deg at {int((herr.abs() > 90).sum())}")
steer_right = (steer_side < 0) == truth_left
print(f"  the steering's side right at {int(steer_right.sum())} (of the cars facing backwards "
      f"{int(steer_right[truth_back].sum())}/{int(truth_back.sum())})")


def report(name, logits):
    right = (logits[:, 1] > 0) == truth_left
    back = (logits[:, 0] < 0) == truth_back
    print(f"  {name}: the side right at {int(right.sum())} of {len(right)} ({right.float().mean():.0%}; of the cars "
          f"facing backwards {int(right[truth_back].sum())}/{int(truth_back.sum())}, the others "
          f"{int(right[~truth_back].sum())}/{int((~truth_back).sum())}); backwards or not right at {int(back.sum())} "
          f"({back.float().mean():.0%})", flush=True)


frame_envs, _ = race_envs("biai", "tokyo", 500, 4, "cpu", opponents=0, render_image=True)
Rollout(frame_envs, None, seed=0)
g = torch.Generator().manual_seed(0)
I, _, P = standing_frames(frame_envs.unwrapped, 48, g)
frame_envs.close()
net, seconds = train_prototype(I, P, torch.arange(len(I)), 12, g)
with torch.no_grad():
    report(f"the prototype ({seconds:.0f} s of training)", net(as_input(images)))
    if stored:
        state = checkpoints.load_state(checkpoints.resolve(stored)[0])["agent"][checkpoints.COMPASS]
        report(f"{stored}'s compass", load_compass(state)(images))
    else:
        compass = train_compass("tokyo", progress=False)
        report(f"the package's compass ({compass.info})", compass(images))
