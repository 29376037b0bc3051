"""How many unfinished races a perfect wrong-way turnaround would save: a checkpoint's 4-lap races from the back of
the grid (`gtvision evaluate`'s races, bit for bit on 1 thread), with the car's heading against the course read from
the simulator (privileged: an oracle, not an agent). MODE 'off': the policy (and its reflex) as it races. MODE
'oracle:DEG[:HOLD]': where the heading has been more than DEG degrees off the course's direction for HOLD seconds
(0: at once), the BIAI's turnaround drives (brake to 5 m/s, full lock towards the course at a crawl; nose at a
barrier: back out on the other lock) until the heading is back within 60 degrees. Prints the races' table (won, finished, car contact) and the oracle's takeovers.
Usage: python wrong_way_oracle.py CHECKPOINT RACES SEED MODE [OUT.csv]"""
import math
import sys

import numpy as np
import pandas as pd
import torch

from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs
from gtvision.sim.biai import BIAIConfig
from gtvision.sim.core import STEER_DELTA_DEG

torch.set_num_threads(1)
ck, n, seed, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
ro = Rollout(envs, agent, seed=seed, eval_mode=True)
b = envs.unwrapped.batch
cfg = BIAIConfig()
on = torch.zeros(n, dtype=torch.bool)
takeovers = np.zeros(n, int)
deg = float(mode.split(":")[1]) if mode.startswith("oracle") else None
hold = round(10 * float(mode.split(":")[2])) if mode.count(":") > 1 else 0
wrong_for = torch.zeros(n, dtype=torch.long)


class Oracle:
    """The agent's reflex (or none), then the oracle's turnaround where it drives; the Rollout's reflex slot."""

    def __init__(self, reflex):
        self.reflex = reflex

    def reset(self, mask):
        if self.reflex is not None:
            self.reflex.reset(mask)

    def __call__(self, action, proprio):
        global on, wrong_for
        if self.reflex is not None:
            action = self.reflex(action, proprio)
        s, track, car = b.state, b.params.track, b.params.car
        psi = s.yaw[:, 0] - track.heading_rad[s.station[:, 0]]
        psi = torch.atan2(torch.sin(psi), torch.cos(psi))
        wrong_for = torch.where(psi.abs() > math.radians(deg), wrong_for + 1, torch.zeros_like(wrong_for))
        start = ~on & (wrong_for > hold)
        takeovers[start.numpy()] += 1
        on = (on | start) & (psi.abs() > math.radians(60.0))
        if not bool(on.any()):
            return action
        speed, lat = s.speed_mps[:, 0], s.lat_m[:, 0]
        lock = math.radians(car.max_steer_deg)
        cmd = s.steer_cmd_rad[:, 0]
        a_turn = ((-torch.sign(psi) * lock - cmd) / math.radians(STEER_DELTA_DEG)).clamp(-1, 1)
        a_rev = ((torch.sign(psi) * lock - cmd) / math.radians(STEER_DELTA_DEG)).clamp(-1, 1)
        pedal = (cfg.speed_gain * (cfg.turnaround_mps - speed)).clamp(-1.0, 0.4)
        nose_at_wall = s.wall_contact[:, 0] & (torch.sign(lat) * torch.sin(psi) > 0)
        backing = s.reverse_time_s[:, 0] > 0
        rev = nose_at_wall | (backing & (s.speed_mps[:, 0] > 0.3))
        steer = torch.where(rev, a_rev, a_turn)
        pedal = torch.where(rev, torch.full_like(pedal, -1.0), pedal)
        out = torch.as_tensor(action).clone()
        out[:, 0] = torch.where(on, steer, out[:, 0])
        out[:, 1] = torch.where(on, pedal, out[:, 1])
        return out if torch.is_tensor(action) else out.numpy().astype(np.asarray(action).dtype)


if deg is not None:
    ro.reflex = Oracle(ro.reflex)
rows = {}
live = np.ones(n, bool)
for t in range(8000):
    st = ro.step(None)
    if deg is not None:
        on &= ~torch.as_tensor(st.done | ro.autoreset)
        wrong_for[torch.as_tensor(st.done | ro.autoreset)] = 0
    done = live & (np.asarray(st.terminated) | np.asarray(st.truncated))
    for r in np.nonzero(done)[0]:
        rows[r] = dict(race=r, finished=bool(st.info["finished"][r]), place=int(st.info["place"][r]),
                       car_s=float(st.info["car_contact_time_s"][r]), progress_m=float(st.info["progress_m"][r]),
                       time_s=float(st.info["time_s"][r]), takeovers=int(takeovers[r]))
    live &= ~done
    if not live.any():
        break
d = pd.DataFrame([rows[r] for r in sorted(rows)])
d["won"] = d.finished & (d.place == 1)
print(f"{ck} seed {seed} mode {mode}: won {int(d.won.sum())}, finished {int(d.finished.sum())} of {n}, "
      f"car {d.car_s.mean():.2f} s, takeovers {int(d.takeovers.sum())} in {int((d.takeovers > 0).sum())} races")
print(d[~d.finished].to_string(index=False))
if len(sys.argv) > 5:
    d.to_csv(sys.argv[5], index=False)
