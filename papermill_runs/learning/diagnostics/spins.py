"""How often a checkpoint spins in its races, and what comes before each spin: the 4-lap races of `gtvision evaluate`
from the back of the grid (bit for bit on 1 thread), the car's heading against the course read from the simulator
at every step. A spin is the heading passing SPIN_DEG off the course's direction after it was within CALM_DEG less
than WINDOW_S before (a fast turn, not a slow drift). For each spin: where (lap, metres into it), the speed and the
rear slip angle one second before, the actions in the second before (steering step, pedal), the car contacts and
wall contacts in the WINDOW_S before (which way the other car lay: ahead, behind or beside, by progress), and
whether the race was finished. Prints a per-race summary and the spins' causes.
MODE 'esc:DEG:PMIN:PMAX[:pedal]' (a trial of a stability aid on on-board information, proprio alone): where the rear axle's
slip angle (from the forward and lateral speed and the yaw rate, and the car's geometry) is past DEG degrees at more
than 8 m/s, the steering turns towards the front axle's direction of travel (counter-steer) and the pedal is held
within [PMIN, PMAX] (':pedal': the pedal alone), over the agent's action (and after its reflex).
MODE 'layers:gap', 'layers:side', 'layers:gap+side' (thirty-fifth session; a bound, not an agent): the agent races
with the privileged safety layers of gtvision.agent.shield on (the gap keeper, the side keeper, at the agent's
settings), which read the opponents' grid that a vision actor may not: how many spins and unfinished races would a
layer that sees the cars around as well as the simulator does save?
MODE 'seen:HEAD.pt[:gap]' (thirty-fifth session): the agent races through the bounds a head on its own features sets
(seen_layers.py train): what the vision agent itself can do of the above (':gap': the throttle ceiling alone).
Usage: python spins.py CHECKPOINT RACES SEED [OUT_PREFIX [MODE]]   (OUT_PREFIX_spins.csv, OUT_PREFIX_races.csv;
OUT_PREFIX '-': none)"""
import math
import sys
from collections import deque

import numpy as np
import pandas as pd
import torch

from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs
from gtvision.sim.core import STEER_DELTA_DEG

SPIN_DEG, CALM_DEG, WINDOW_S = 90.0, 30.0, 2.0
torch.set_num_threads(1)
ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
MAX_T = int(__import__("os").environ.get("MAX_STEPS", 8000))
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
ro = Rollout(envs, agent, seed=seed, eval_mode=True)
b = envs.unwrapped.batch
track = b.track
car_spec = b.params.car
rear_m = car_spec.wheelbase_m * car_spec.front_weight_frac  # CoG to rear axle, as gtvision.sim.core
front_m = car_spec.wheelbase_m - rear_m
mode = sys.argv[5] if len(sys.argv) > 5 else "off"
esc_steps = np.zeros(n, int)


class Stability:
    """The agent's reflex (or none), then the stability aid; the Rollout's reflex slot."""

    def __init__(self, reflex, deg, pmin, pmax, steer=True):
        self.reflex, self.deg, self.pmin, self.pmax, self.steer = reflex, math.radians(deg), pmin, pmax, steer
        self.lock = math.radians(car_spec.max_steer_deg)

    def reset(self, mask):
        if self.reflex is not None:
            self.reflex.reset(mask)

    def __call__(self, action, proprio):
        if self.reflex is not None:
            action = self.reflex(action, proprio)
        p = torch.as_tensor(proprio).float()
        vx, vy, r, cmd = p[:, 0], p[:, 1], p[:, 8], p[:, 9] * self.lock
        alpha_r = torch.atan2(vy - rear_m * r, vx.abs().clamp(min=1.0))
        on = (alpha_r.abs() > self.deg) & (vx > 8.0)
        esc_steps[on.numpy()] += 1
        if not bool(on.any()):
            return action
        target = torch.atan2(vy + front_m * r, vx.clamp(min=1.0)).clamp(-self.lock, self.lock)
        steer = ((target - cmd) / math.radians(STEER_DELTA_DEG)).clamp(-1, 1)
        out = torch.as_tensor(action).clone()
        if self.steer:
            out[:, 0] = torch.where(on, steer.to(out), out[:, 0])
        out[:, 1] = torch.where(on, out[:, 1].clamp(self.pmin, self.pmax), out[:, 1])
        return out if torch.is_tensor(action) else out.numpy().astype(np.asarray(action).dtype)


if mode.startswith("layers:"):
    import dataclasses
    wanted = set(mode.split(":")[1].split("+"))
    assert wanted <= {"gap", "side"}, f"MODE layers: takes gap, side or gap+side, not {mode}"
    agent.config = dataclasses.replace(agent.config, gap_keeper="gap" in wanted, side_keeper="side" in wanted)
if mode.startswith("seen:"):
    import dataclasses
    from seen_layers import load_head
    seen_head, _ = load_head(mode.split(":")[1])
    gap_only = mode.endswith(":gap")
    agent.config = dataclasses.replace(agent.config, seen_shield=True)

    def seen_bounds(features):
        with torch.no_grad():
            bounds = seen_head(features.float())
        if gap_only:
            bounds = torch.cat([bounds[:, :1], -torch.ones_like(bounds[:, :1]), torch.ones_like(bounds[:, :1])], 1)
        return bounds

    agent.actor.shield_bounds = seen_bounds
if mode.startswith("esc:"):
    _, deg, pmin, pmax, *rest = mode.split(":")
    ro.reflex = Stability(ro.reflex, float(deg), float(pmin), float(pmax), steer=rest != ["pedal"])
W = int(WINDOW_S * 10)
hist = [deque(maxlen=W + 1) for _ in range(n)]
spun = np.zeros(n, bool)  # the heading is past SPIN_DEG (a spin already counted)
spins, races = [], {}
live = np.ones(n, bool)
for t in range(MAX_T):
    st = ro.step(None)
    s = b.state
    head = track.heading_rad[s.station[:, 0]]
    psi = np.degrees(torch.atan2(torch.sin(s.yaw[:, 0] - head), torch.cos(s.yaw[:, 0] - head)).numpy())
    rel = (s.progress_m[:, 1:] - s.progress_m[:, :1]).numpy()
    ic = s.in_contact[:, 0, 1:].numpy()
    beta = np.degrees(np.arctan2((s.vy[:, 0] - rear_m * s.yaw_rate[:, 0]).numpy(), np.maximum(s.vx[:, 0].abs().numpy(), 1.0)))
    act = np.asarray(st.action)
    for r in np.nonzero(live)[0]:
        contact_rel = rel[r][ic[r]]
        hist[r].append(dict(psi=psi[r], v=float(s.speed_mps[r, 0]), beta=beta[r], steer=act[r, 0], pedal=act[r, 1],
                            wall=bool(s.wall_contact[r, 0]),
                            car=("" if not ic[r].any() else "ahead" if contact_rel.min() > 2.5
                                 else "behind" if contact_rel.max() < -2.5 else "beside")))
        if abs(psi[r]) > SPIN_DEG and not spun[r]:
            spun[r] = True
            h = list(hist[r])
            if min(abs(x["psi"]) for x in h) < CALM_DEG:
                one = h[-11] if len(h) > 10 else h[0]
                cars = [x["car"] for x in h if x["car"]]
                spins.append(dict(race=r, t_s=t / 10, lap=int(s.laps_done[r, 0]) + 1,
                                  s_m=float(s.s_m[r, 0]), v_1s=one["v"], beta_1s=one["beta"],
                                  steer_1s=np.mean([abs(x["steer"]) for x in h[-10:]]),
                                  pedal_1s=np.mean([x["pedal"] for x in h[-10:]]),
                                  car=cars[0] if cars else "", car_steps=len(cars),
                                  wall=any(x["wall"] for x in h)))
        if abs(psi[r]) < CALM_DEG:
            spun[r] = False
    done = live & (np.asarray(st.terminated) | np.asarray(st.truncated))
    for r in np.nonzero(done)[0]:
        races[r] = dict(race=r, finished=bool(st.info["finished"][r]), place=int(st.info["place"][r]),
                        car_s=float(st.info["car_contact_time_s"][r]), time_s=float(st.info["time_s"][r]),
                        esc_s=esc_steps[r] / 10)
    live &= ~done
    if not live.any():
        break
d = pd.DataFrame([races[r] for r in sorted(races)])
sp = pd.DataFrame(spins, columns=["race", "t_s", "lap", "s_m", "v_1s", "beta_1s", "steer_1s", "pedal_1s", "car",
                                  "car_steps", "wall"])
d["spins"] = [int((sp.race == r).sum()) for r in d.race]
sp["finished"] = [bool(d.finished[d.race == r].iloc[0]) for r in sp.race]
cause = np.where(sp.car != "", "car " + sp.car, np.where(sp.wall, "wall", "alone"))
sp["cause"] = cause
print(f"{ck} seed {seed} mode {mode}: won {int((d.finished & (d.place == 1)).sum())}, finished {int(d.finished.sum())} of {n}, "
      f"car {d.car_s.mean():.2f} s, race time {d.time_s[d.finished].median():.1f} s (median, finished), "
      f"aid acting {d.esc_s.mean():.1f} s a race; {len(sp)} spins in {int((d.spins > 0).sum())} races "
      f"({int((d.spins[~d.finished] > 0).sum())} of the {int((~d.finished).sum())} unfinished)")
if len(sp):
    print("\nspins by what came first in the 2 s before (car contact: where the other car lay):")
    print(sp.groupby("cause").agg(spins=("race", "size"), unfinished=("finished", lambda f: int((~f).sum())),
                                  v_1s=("v_1s", "median"), beta_1s=("beta_1s", lambda x: x.abs().median()),
                                  steer_1s=("steer_1s", "median"), pedal_1s=("pedal_1s", "median")).to_string())
    print("\nspins by lap:", sp.groupby("lap").size().to_dict())
    print("spins by km into the lap:", sp.groupby((sp.s_m // 1000).astype(int)).size().to_dict())
    print("\n" + sp.round(2).to_string(index=False))
if len(sys.argv) > 4 and sys.argv[4] != "-":
    d.to_csv(sys.argv[4] + "_races.csv", index=False)
    sp.to_csv(sys.argv[4] + "_spins.csv", index=False)
