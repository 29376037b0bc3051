"""Which way the recovery reflex should turn the nose: every start of the reflex (``gtvision.agent.recovery``) in a
checkpoint's 4-lap races from the back of the grid (`gtvision evaluate`'s races; bit for bit on the same thread
count), with what the car knew then (proprio: the steering command, the lateral acceleration and yaw rate of the
last hard knock) and what the simulator knew (privileged, to score the rules, not to drive): the car's heading
against the course, its lateral offset, a wall or a car in contact. The side that brings the nose back towards the
course's direction is the right one (``truth``: +1 left, -1 right). For each start: the side the reflex took, the
sides other on-board rules would have taken, and whether the car made 10 m of course within the next 10 s (the
stuck rule's measure) and finished its race.
Rules, all on proprio: ``steer`` (the reflex's: the side the steering command points to, left when straight);
``knock`` (away from the last hard lateral knock: the side the lateral acceleration pointed to at the last step
above KNOCK m/s^2 in the 10 s before; the steering's side without one); ``yaw`` (against the yaw rate's sum over
the 3 s before the stop: back the way the car turned). (In VT3's round 13's races no step passed KNOCK: the knock
rule took the steering's side throughout.)
Usage: THREADS=n python reflex_sides.py CHECKPOINT RACES SEED [OUT.csv]"""
import math
import os
import sys
from collections import deque

import numpy as np
import pandas as pd
import torch

from gtvision.agent.recovery import STEER_COMMAND, YAW_WINDOW_S
from gtvision.agent.stability import LATERAL_SPEED, YAW_RATE
from hook import reflex_races, wrap_reflex

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
KNOCK = 15.0
ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ro, b, reflex = reflex_races(ck, n, seed)
track = b.track
LAT_ACC = LATERAL_SPEED + 3  # v_dot's lateral component
knock_side = np.zeros(n)            # the side of the last hard knock (0: none in the last 10 s)
knock_age = np.full(n, 10 ** 6)
yaw_hist = deque(maxlen=round(YAW_WINDOW_S * 10))
starts, t = [], 0
orig = reflex.__call__


def call(action, proprio, image=None):
    global t
    p = np.asarray(proprio, dtype=np.float64)
    hard = np.abs(p[:, LAT_ACC]) > KNOCK
    knock_side[hard] = np.sign(p[hard, LAT_ACC])
    knock_age[hard] = 0
    yaw_hist.append(p[:, YAW_RATE].copy())
    before = reflex.since.clone()
    out = orig(action, proprio, image)
    began = (reflex.since == 0).numpy() & (before != 0).numpy() & live  # not in a new episode after the race
    if began.any():
        s = b.state
        head = track.heading_rad[s.station[:, 0]]
        herr = torch.atan2(torch.sin(s.yaw[:, 0] - head), torch.cos(s.yaw[:, 0] - head)).numpy()
        yaw_sum = np.sum(yaw_hist, axis=0)
        for r in np.nonzero(began)[0]:
            steer_side = -1.0 if p[r, STEER_COMMAND] < -0.05 else 1.0
            starts.append(dict(race=int(r), t=t / 10, progress=float(s.progress_m[r, 0]),
                               herr_deg=math.degrees(herr[r]), lat=float(s.lat_m[r, 0]),
                               wall=bool(s.wall_contact[r, 0]), car=bool(s.in_contact[r, 0, 1:].any()),
                               truth=-1.0 if herr[r] > 0 else 1.0, reflex=float(reflex.side[r]),
                               steer=steer_side,
                               knock=knock_side[r] if knock_age[r] <= 100 else steer_side,
                               knock_age_s=knock_age[r] / 10 if knock_age[r] <= 100 else np.nan,
                               yaw=-np.sign(yaw_sum[r]) if yaw_sum[r] != 0 else steer_side,
                               count=int(reflex.count[r])))
    knock_age[:] += 1
    return out


live = np.ones(n, bool)
wrap_reflex(ro, call)
progress = []  # (step, progress (n,)) to score each start's next 10 s
finished = np.zeros(n, bool)
ends_t = np.full(n, np.inf)
while live.any() and t < 6000:
    st = ro.step(None)
    progress.append(b.state.progress_m[:, 0].numpy().copy())
    done = live & (np.asarray(st.terminated) | np.asarray(st.truncated))
    for r in np.nonzero(done)[0]:
        finished[r] = bool(st.info["finished"][r])
        ends_t[r] = t
    knock_age[done] = 10 ** 6
    live &= ~done
    t += 1
    if t % 500 == 0:
        print(f"step {t}: {int(live.sum())} racing, {len(starts)} reflex starts", flush=True)
prog = np.array(progress)
df = pd.DataFrame(starts)
if len(df):
    i0 = (df.t * 10).round().astype(int).to_numpy()
    i1 = np.minimum(i0 + 100, np.minimum(ends_t[df.race] - 1, len(prog) - 1).astype(int))
    df["gain_10s_m"] = prog[i1, df.race] - prog[np.minimum(i0, len(prog) - 1), df.race]
    df["freed"] = df.gain_10s_m >= 10
    df["finished"] = finished[df.race]
    if len(sys.argv) > 4:
        df.to_csv(sys.argv[4], index=False)
    pd.set_option("display.width", 220)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\n{len(df)} reflex starts in {df.race.nunique()} of {n} races; {int((~finished).sum())} races unfinished")
    for rule in ("reflex", "steer", "knock", "yaw"):
        right = df[rule] == df.truth
        print(f"{rule:>6}: right side {int(right.sum())} of {len(df)}; freed when right "
              f"{int(df.freed[right].sum())}/{int(right.sum())}, when wrong {int(df.freed[~right].sum())}/{int((~right).sum())}")
else:
    print(f"no reflex start in {n} races; {int((~finished).sum())} unfinished")
