"""Does pushing pay in the moment? Per step of the committed agent's races: reward terms (weighted), in contact with a
car ahead or not, number of cars within r^t's window, place, lap."""
import sys, numpy as np, torch, pandas as pd
torch.set_num_threads(1)
from gtvision.evaluation import race_envs
from gtvision.agent.rollout import Rollout
from gtvision.rewards import TERM_NAMES
W = {"progress": 1, "off_course": 10, "wall": 20, "car_velocity": 0.5, "car_fixed": 6, "overtaking": 3, "steering_change": 0.5, "steering_history": 5}
ck = sys.argv[1]; n = int(sys.argv[2]); seed = int(sys.argv[3])
envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
ro = Rollout(envs, agent, seed=seed, eval_mode=(sys.argv[5] != "sample") if len(sys.argv) > 5 else True)
b = envs.unwrapped.batch
rows = []; live = np.ones(n, bool); t = 0
while live.any() and t < 6000:
    st = ro.step(None)
    s = b.state
    rel = (s.progress_m[:, 1:] - s.progress_m[:, :1]).numpy()
    inwin = ((rel > -20) & (rel < 40)).sum(1)
    ic = s.in_contact[:, 0, 1:].numpy()
    push = (ic & (rel > 0)).any(1)
    for r in np.nonzero(live)[0]:
        d = dict(race=r, t=t / 10, push=bool(push[r]), contact=bool(ic[r].any()), inwin=int(inwin[r]), place=int(st.info["place"][r]),
                 lap=int(s.laps_done[r, 0]), v=float(s.speed_mps[r, 0]), slip=float(s.slipstream[r, 0]), gas=float(st.action[r, 1]))
        for k in TERM_NAMES: d[k] = W[k] * float(st.info[f"reward_{k}"][r])
        rows.append(d)
    live &= ~(np.asarray(st.terminated) | np.asarray(st.truncated)); t += 1
df = pd.DataFrame(rows); df.to_csv(sys.argv[4], index=False)
print(df.groupby("push")[list(W)].mean().round(2))
