"""How the races that do not finish end: the last seconds before the stuck rule (no 10 m of progress in 10 s) ends
a race, per race: speed, heading against the course, lateral offset, wall and car contact (``wall``, ``car``: at the
step's last physics tick; ``car_time_s``, ``wall_time_s``: the race's totals so far, which also count a touch within
the step's six ticks), the actions, place.
With TEACHER, the teacher's mean action at every state (``t_steer``, ``t_pedal``): what DAgger would label it.
Usage: python stuck.py CHECKPOINT RACES SEED [OUT.csv [TEACHER]]  (the races of `gtvision evaluate` with that seed,
bit for bit when they ran on 1 thread: a bfloat16 encoder's sums differ with the thread count).
With the reflex, its state too (``reflex``: steps since it started, ``crawl``: turning round at a crawl).
MAX_S=T stops the races at T seconds (for a race known to end before: the others need not run on)."""
import os, sys, math, collections, numpy as np, torch, pandas as pd
torch.set_num_threads(int(os.environ.get("THREADS", "1")))  # THREADS=2: the races of `evaluate --threads 2`
from gtvision.evaluation import race_envs
from gtvision.agent.rollout import Rollout

ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
driver = agent
if len(sys.argv) > 5:  # the student drives (its mean action, as in `evaluate`); the teacher labels
    from gtvision import checkpoints
    from gtvision.agent.distill import TeacherStudent
    teacher = checkpoints.load_actor(checkpoints.resolve(sys.argv[5])[0], envs.single_observation_space,
                                     envs.single_action_space, "cpu")
    driver = TeacherStudent(teacher, agent, "student")
ro = Rollout(envs, driver, seed=seed, eval_mode=True)
b = envs.unwrapped.batch
track = b.track
last = [collections.deque(maxlen=160) for _ in range(n)]
ends = {}
live = np.ones(n, bool); t = 0
max_steps = round(float(os.environ.get("MAX_S", "600")) * 10)
rx = ro.reflex
while live.any() and t < max_steps:
    st = ro.step(None)
    s = b.state
    head = track.heading_rad[s.station[:, 0]]
    herr = torch.atan2(torch.sin(s.yaw[:, 0] - head), torch.cos(s.yaw[:, 0] - head)).numpy()
    rel = (s.progress_m[:, 1:] - s.progress_m[:, :1]).numpy()
    ic = s.in_contact[:, 0, 1:].numpy()
    near = np.where(ic, rel, np.nan)
    for r in np.nonzero(live)[0]:
        last[r].append(dict(race=r, t=t / 10, v=float(s.speed_mps[r, 0]), vx=float(s.vx[r, 0]),
                            heading_deg=math.degrees(herr[r]), lat=float(s.lat_m[r, 0]),
                            wall=bool(s.wall_contact[r, 0]), car=bool(ic[r].any()),
                            car_rel_m=float(np.nanmin(np.abs(near[r]))) if ic[r].any() else np.nan,
                            steer=float(st.action[r, 0]), pedal=float(st.action[r, 1]), gear=int(s.gear[r, 0]),
                            place=int(st.info["place"][r]), progress=float(s.progress_m[r, 0]),
                            stuck_s=float(st.info["stuck_time_s"][r]),
                            car_time_s=float(s.car_contact_time_s[r, 0]), wall_time_s=float(s.wall_time_s[r, 0]),
                            **({} if rx is None else dict(reflex=int(rx.since[r]), crawl=bool(rx.crawling[r]))),
                            **({} if driver is agent else dict(zip(("t_steer", "t_pedal"),
                                                                   np.tanh(driver.labels[r, :2]).tolist())))))
    done = live & (np.asarray(st.terminated) | np.asarray(st.truncated))
    for r in np.nonzero(done)[0]:
        ends[r] = bool(st.info["finished"][r])
    live &= ~done; t += 1
bad = [int(r) for r, f in ends.items() if not f]
print(f"{len(bad)} of {n} races not finished: {bad}")
rows = [row for r in bad for row in last[r]]
df = pd.DataFrame(rows)
if len(sys.argv) > 4:
    df.to_csv(sys.argv[4], index=False)
pd.set_option("display.width", 200)
for r in bad:
    d = df[df.race == r]
    print(f"\nrace {r}: ended at {d.t.max():.1f} s, {d.progress.max():.0f} m")
    drop = d.v.diff().idxmin()  # the step of the largest loss of speed, and the steps around it
    print(f"largest loss of speed in one step: {-d.v.diff().min():.1f} m/s at {d.t[drop]:.1f} s")
    print(d.loc[drop - 3:drop + 2][["t", "v", "heading_deg", "lat", "wall", "car", "car_time_s", "wall_time_s",
                                    "steer", "pedal", "place"]].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(d.iloc[::10][["t", "v", "vx", "heading_deg", "lat", "wall", "car", "car_rel_m", "steer", "pedal", "gear",
                        "place", "stuck_s"] + (["reflex", "crawl"] if rx is not None else []) + (["t_steer", "t_pedal"] if driver is not agent else [])].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
