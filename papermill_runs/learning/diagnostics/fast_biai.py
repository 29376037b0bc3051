"""Can a faster BIAI pass the field cleanly? The BIAI in the agent's seat (the back of the grid) aiming for ``PACE`` of
the QSS speed profile, alone and in a pack (``BIAIConfig.pace`` and ``pack_pace``; 0.965 and 0.93 by default), against
19 BIAI at the default pace.

    python papermill_runs/learning/diagnostics/fast_biai.py EPISODES SEED PACE,PACK_PACE [PACE,PACK_PACE ...]
"""
import dataclasses
import sys

import torch

import gtvision.evaluation as ev
from gtvision.env.racing import LEARNER
from gtvision.sim.biai import BIAIConfig, biai_controls

torch.set_num_threads(1)
episodes, seed = int(sys.argv[1]), int(sys.argv[2])
race_envs = ev.race_envs
for spec in sys.argv[3:]:
    pace, pack = map(float, spec.split(","))
    cfg = dataclasses.replace(BIAIConfig(), pace=pace, pack_pace=pack)

    def faster_seat(*args, cfg=cfg, **kwargs):
        envs, agent = race_envs(*args, **kwargs)
        b = envs.unwrapped.batch
        b.biai_actions = lambda: biai_controls(b.state, b.params, b.plan, cfg)[:, LEARNER]
        return envs, agent
    ev.race_envs = faster_seat
    table = ev.evaluate("biai", "tokyo", episodes, seed, progress=False)
    print(f"pace {pace}, pack pace {pack}: wins {int((table.place == 1).sum())}/{len(table)}, place "
          f"{table.place.mean():.2f}, car contact {table.car_collision_time_s.mean():.2f} s, wall "
          f"{table.wall_time_s.mean():.1f} s, finished {int(table.finished.sum())}", flush=True)
