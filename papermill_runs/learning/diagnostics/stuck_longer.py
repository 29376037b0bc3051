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
from gtvision.evaluation import race_envs
from gtvision.agent.rollout import Rollout

ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stuck, max_s = float(os.environ.get("STUCK", "30")), float(os.environ.get("MAX_S", "110"))
genv.RACE = {**genv.RACE, "stuck_s": stuck}
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
ro = Rollout(envs, agent, seed=seed, eval_mode=True)
b = envs.unwrapped.batch
live = np.ones(n, bool)
at10 = np.full(n, np.nan); prog10 = np.full(n, np.nan); ended = np.full(n, np.nan)
finished = np.zeros(n, bool); place = np.zeros(n, int)
for t in range(round(max_s * 10)):
    st = ro.step(None)
    now = (t + 1) / 10
    stuck_time = b.stuck_time_s.numpy()
    hit = live & np.isnan(at10) & (stuck_time >= STUCK_S - 1e-3)
    at10[hit] = now
    prog10[hit] = b.state.progress_m[hit, 0].numpy()
    done = live & (np.asarray(st.terminated) | np.asarray(st.truncated))
    ended[done] = now
    finished[done] = np.asarray(st.info["finished"])[done]
    place[done] = np.asarray(st.info["place"])[done]
    live &= ~done
prog = b.state.progress_m[:, 0].numpy()
print(f"# {ck}, {n} races of seed {seed}, stuck rule {stuck} s, to {max_s} s")
for i in np.flatnonzero(~np.isnan(at10)):
    fate = (f"finished at {ended[i]:.1f} s, place {place[i]}" if finished[i] else
            f"ended unfinished at {ended[i]:.1f} s" if not np.isnan(ended[i]) else
            f"racing at {max_s} s, {prog[i] - prog10[i]:.0f} m on")
    print(f"race {i}: 10 s without 10 m at {at10[i]:.1f} s ({prog10[i]:.0f} m); {fate}")
print(f"{int((~np.isnan(at10)).sum())} races stood 10 s by {max_s} s; of all {n}: {int((finished & ~np.isnan(ended)).sum())} finished")
