"""How much does a driver's racing rest on the contact model? Its races from the back of the grid with the share of
a car-car impulse's yaw kick (``gtvision.sim.core.SimParams.contact_yaw_share``, 0.35 by default) set otherwise.

    python papermill_runs/learning/diagnostics/yaw_share.py CHECKPOINT EPISODES SEED SHARE [SHARE ...]
"""
import dataclasses
import sys

import torch

import gtvision.evaluation as ev

torch.set_num_threads(1)
checkpoint, episodes, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
race_envs = ev.race_envs
for share in map(float, sys.argv[4:]):
    def with_share(*args, share=share, **kwargs):
        envs, agent = race_envs(*args, **kwargs)
        batch = envs.unwrapped.batch
        batch.params = dataclasses.replace(batch.params, contact_yaw_share=share)
        return envs, agent
    ev.race_envs = with_share
    table = ev.evaluate(checkpoint, "tokyo", episodes, seed, progress=False)
    print(f"contact_yaw_share {share}: wins {int((table.place == 1).sum())}/{len(table)}, place {table.place.mean():.2f}, "
          f"car contact {table.car_collision_time_s.mean():.1f} s, wall {table.wall_time_s.mean():.1f} s, "
          f"finished {int(table.finished.sum())}, margin mean {table.margin_m.mean():.0f} m", flush=True)
