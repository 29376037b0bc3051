"""Would the races the stuck rule ends have finished later? The races of `gtvision evaluate` (one thread: bit for bit)
with the stuck rule after STUCK s instead of 10 (``gtvision.env.episodes.STUCK_S``); the races are the same to the bit
until a car first stands 10 s. Stops at MAX_S. Prints, per race that stood 10 s without 10 m of course (the races'
rule would have ended it there), when, and whether it then made 100 m more by MAX_S or the longer rule ended it.
With MAX_S past the races' end (420 for Tokyo's 4 laps), whether each finished and its place.
Usage: STUCK=30 MAX_S=110 python stuck_longer.py CHECKPOINT RACES SEED"""
import os, sys, numpy as np, torch
torch.set_num_threads(1)
import gtvision.env as genv
from gtvision.env.episodes import STUCK_S
from hook import race_to_end, reflex_races

ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stuck, max_s = float(os.environ.get("STUCK", "30")), float(os.environ.get("MAX_S", "110"))
genv.RACE = {**genv.RACE, "stuck_s": stuck}   # read by race_envs when it builds the races
ro, b, _ = reflex_races(ck, n, seed)
live = np.ones(n, bool)
at10 = np.full(n, np.nan); prog10 = np.full(n, np.nan); ended = np.full(n, np.nan); place = np.zeros(n, int)


def on_step(t, st, done):
    now = (t + 1) / 10
    hit = live & np.isnan(at10) & (b.stuck_time_s.numpy() >= STUCK_S - 1e-3)
    at10[hit] = now
    prog10[hit] = b.state.progress_m[hit, 0].numpy()
    ended[done] = now
    place[done] = np.asarray(st.info["place"])[done]


finished = race_to_end(ro, live, on_step, max_steps=round(max_s * 10))
prog = b.state.progress_m[:, 0].numpy()
print(f"# {ck}, {n} races of seed {seed}, stuck rule {stuck} s, to {max_s} s")
for i in np.flatnonzero(~np.isnan(at10)):
    fate = (f"finished at {ended[i]:.1f} s, place {place[i]}" if finished[i] else
            f"ended unfinished at {ended[i]:.1f} s" if not np.isnan(ended[i]) else
            f"racing at {max_s} s, {prog[i] - prog10[i]:.0f} m on")
    print(f"race {i}: 10 s without 10 m at {at10[i]:.1f} s ({prog10[i]:.0f} m); {fate}")
print(f"{int((~np.isnan(at10)).sum())} races stood 10 s by {max_s} s; of all {n}: {int((finished & ~np.isnan(ended)).sum())} finished")
