"""Where a turn round's seconds go: standing spun starts (the learner at rest at any heading, at a random point of
Tokyo among OPPONENTS BIAI cars, as spun.py's 0 m/s starts) raced for 30 s without a stuck rule; per start, when the
learner first has 10 m of course progress over its start (what the races' stuck rule asks within 10 s), when the
crawl begins and ends, how many reflex back-offs run, the heading against the course at the start, and the wall time.
Usage: python crawl_timing.py CHECKPOINT EPISODES SEED [OPPONENTS] > OUT.txt  (one thread)
SET="CRAWL_STOP_S=0.5 CRAWL_MPS=4": the module constants of gtvision.agent.recovery to try instead.
REVERSE=S, EXIT=S: the reflex's back-off and drive-out (``recovery_reverse_s``, ``recovery_exit_s``) instead of the
agent's."""
import sys, math, numpy as np, torch, gymnasium as gym
torch.set_num_threads(1)
import gtvision  # noqa: F401
from gtvision import checkpoints
from gtvision.env import env_kwargs_for
from gtvision.agent.rollout import Rollout

import os
from gtvision.agent import recovery
for pair in os.environ.get("SET", "").split():
    name, value = pair.split("=")
    assert hasattr(recovery, name), name
    setattr(recovery, name, type(getattr(recovery, name))(value))
ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
opp = int(sys.argv[4]) if len(sys.argv) > 4 else 4
kw = dict(num_opponents=opp, start="random", bop=False, stuck_s=30.0, max_time_s=30.0,
          learner_yaw_deg=[-180, 180], start_speed_mps=0.0)
_, run_dir = checkpoints.resolve(ck)
kw = env_kwargs_for("gtvision/Tokyo-v0", kw, checkpoints.run_preset(run_dir).agent)
envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=n, **kw)
agent = checkpoints.load_actor(ck, envs.single_observation_space, envs.single_action_space, "cpu")
ro = Rollout(envs, agent, seed=seed, eval_mode=True)
rx = ro.reflex
if os.environ.get("REVERSE"):
    rx._reverse = round(float(os.environ["REVERSE"]) * 10)
if os.environ.get("EXIT"):
    rx._exit = round(float(os.environ["EXIT"]) * 10)
b = envs.unwrapped.batch
tr = b.track


def heading_err():
    s = b.state
    head = tr.heading_rad[s.station[:, 0]]
    return torch.rad2deg(torch.atan2(torch.sin(s.yaw[:, 0] - head), torch.cos(s.yaw[:, 0] - head))).numpy()


p0 = b.state.progress_m[:, 0].clone().numpy()
h0 = heading_err()
nan = lambda: np.full(n, np.nan)
at10, crawl_on, crawl_off, back_offs = nan(), nan(), nan(), np.zeros(n, int)
live = np.ones(n, bool)
was_crawling = np.zeros(n, bool)
for t in range(300):
    st = ro.step(None)
    now = (t + 1) / 10
    gain = b.state.progress_m[:, 0].numpy() - p0
    hit = live & np.isnan(at10) & (gain > 10)
    at10[hit] = now
    if rx is not None:
        crawling = rx.crawling.numpy() if rx.crawl else np.zeros(n, bool)
        crawl_on[live & crawling & np.isnan(crawl_on)] = now
        crawl_off[live & was_crawling & ~crawling & np.isnan(crawl_off)] = now
        was_crawling = crawling
        back_offs += (live & (rx.since.numpy() == 0))
    live &= ~(np.asarray(st.terminated) | np.asarray(st.truncated))
wall = b.state.wall_time_s[:, 0].numpy() if hasattr(b.state, "wall_time_s") else nan()
print(f"# {ck} {os.environ.get('SET', '')} reverse {rx._reverse / 10} s exit {rx._exit / 10} s: {n} standing spun starts, seed {seed}, {opp} BIAI; 30 s, no stuck rule")
print(f"10 m of progress within 10 s: {(at10 <= 10).sum()}; within 30 s: {(~np.isnan(at10)).sum()}")
back = np.abs(h0) > 90
for name, m in (("facing backwards (>90 deg)", back), ("facing along (<=90 deg)", ~back)):
    print(f"{name}: {m.sum()} starts; 10 m within 10 s {(at10[m] <= 10).sum()}, within 30 s {(~np.isnan(at10[m])).sum()}; "
          f"crawl began in {(~np.isnan(crawl_on[m])).sum()} (median at {np.nanmedian(crawl_on[m]) if (~np.isnan(crawl_on[m])).any() else float('nan'):.1f} s, "
          f"ended median {np.nanmedian(crawl_off[m]) if (~np.isnan(crawl_off[m])).any() else float('nan'):.1f} s); back-offs mean {back_offs[m].mean():.2f}")
print("start  head0  at10m  crawl_on  crawl_off  back_offs")
for i in range(n):
    print(f"{i:5d} {h0[i]:6.0f} {at10[i]:6.1f} {crawl_on[i]:8.1f} {crawl_off[i]:9.1f} {back_offs[i]:9d}")
