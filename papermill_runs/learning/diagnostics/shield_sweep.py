"""Safety layers' settings at racing time: a checkpoint raced with gtvision.agent.shield's constants set to each
HOLD,GAIN,ACC_GAIN,LOOK in turn (the agent's gap_hold_m, the module's GAP_GAIN and GAP_ACC_GAIN, the agent's
gap_look_m), 'asis' (as the agent has them), or
'off' (no gap keeper, the policy alone), optionally followed by '+side:LOOK,HOLD,GAIN,STEER_GAIN' (the side keeper
on, with SIDE_LOOK_M, SIDE_HOLD_M, SIDE_GAIN, SIDE_STEER_GAIN), 4-lap races from the back of the grid, the same
seeds for each.
Usage: python shield_sweep.py CHECKPOINT RACES SEED SPEC [SPEC ...]"""
import dataclasses
import sys

import numpy as np
import torch

import gtvision.agent.shield as shield
from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs

torch.set_num_threads(1)
ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for spec in sys.argv[4:]:
    envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
    gap, _, side = spec.partition("+side:")
    if gap == "off":
        agent.config = dataclasses.replace(agent.config, gap_keeper=False)
    else:
        agent.config = dataclasses.replace(agent.config, gap_keeper=True)
        if gap != "asis":  # the hold and look distances are the agent's settings, the gains the module's
            hold, shield.GAP_GAIN, shield.GAP_ACC_GAIN, look = map(float, gap.split(","))
            agent.config = dataclasses.replace(agent.config, gap_hold_m=hold, gap_look_m=look)
    if side:
        shield.SIDE_LOOK_M, shield.SIDE_HOLD_M, shield.SIDE_GAIN, shield.SIDE_STEER_GAIN = map(float, side.split(","))
    agent.config = dataclasses.replace(agent.config, side_keeper=bool(side))
    rollout = Rollout(envs, agent, seed=seed, eval_mode=True)
    live, last = np.ones(n, bool), {}
    for _ in range(6000):
        step = rollout.step(None)
        for k in ("car_contact_time_s", "wall_time_s", "place", "finished", "margin_m"):
            last[k] = np.where(live, step.info[k], last.get(k, step.info[k]))
        live &= ~(np.asarray(step.terminated) | np.asarray(step.truncated))
        if not live.any():
            break
    print(f"{spec:34s} contact {last['car_contact_time_s'].mean():5.1f} s | wall {last['wall_time_s'].mean():5.1f} s | "
          f"place {last['place'].mean():5.2f} | wins {int((last['place'] == 1).sum())} | "
          f"finished {int(last['finished'].sum())}/{n} | margin {last['margin_m'].mean():6.0f} m", flush=True)
