"""Does following pay under the paper's reward? The committed agent as is, against the same agent with a
scripted 'shield' that lifts/brakes when closing on a car ahead in its lane. Same races (seed), paper reward."""
import sys, numpy as np, torch
torch.set_num_threads(1)
from gtvision.evaluation import race_envs
from gtvision.agent.rollout import Rollout
from gtvision.rewards import TERM_NAMES

ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
modes = {"policy": None, "coast": (1.0, 0.6, 0.0), "brake": (1.5, 1.0, -0.5)}

class Shield:
    def __init__(self, inner, g0, T, cap):
        self.inner, self.g0, self.T, self.cap = inner, g0, T, cap
        self.device = inner.device
    def act(self, obs, hidden, eval_mode=False):
        a, h = self.inner.act(obs, hidden, eval_mode=eval_mode)
        g = np.asarray(obs["opponent_grid"])[:, :7]  # ahead rows: x, y, vx, vy (ego frame, relative)
        present = np.abs(g).sum(-1) > 0
        gap = g[..., 0] - 4.3
        closing = np.maximum(-g[..., 2], 0.0)
        danger = present & (np.abs(g[..., 1]) < 2.3) & (g[..., 0] > 0) & (gap < self.g0 + closing * self.T)
        hit = danger.any(-1)
        a = np.asarray(a).copy()
        a[hit, 1] = np.minimum(a[hit, 1], self.cap)
        return a, h
    def __getattr__(self, k):
        return getattr(self.inner, k)

for name, m in modes.items():
    envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
    if m is not None:
        agent = Shield(agent, *m)
    ro = Rollout(envs, agent, seed=seed, eval_mode=True)
    ret = np.zeros(n); terms = {t: np.zeros(n) for t in TERM_NAMES}; live = np.ones(n, bool)
    last = None
    for _ in range(6000):
        st = ro.step(None)
        ret += np.where(live, st.reward, 0)
        for t in TERM_NAMES:
            terms[t] += np.where(live, st.info[f"reward_{t}"], 0)
        info = st.info
        end = live & (st.terminated | st.truncated)
        if last is None: last = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in info.items()}
        for k in ("car_contact_time_s", "wall_time_s", "place", "finished", "time_s", "margin_m", "progress_m"):
            last[k] = np.where(live, info[k], last[k])
        live &= ~end
        if not live.any(): break
    w = {"progress": 1, "off_course": 10, "wall": 20, "car_velocity": 0.5, "car_fixed": 6, "overtaking": 3, "steering_change": 0.5, "steering_history": 5}
    print(f"{name:7s} return {ret.mean():8.0f} | contact {last['car_contact_time_s'].mean():5.1f} s wall {last['wall_time_s'].mean():5.1f} s place {last['place'].mean():5.2f} finished {int(last['finished'].sum())}/{n} time {last['time_s'].mean():6.1f} | "
          + " ".join(f"{t[:7]} {w[t]*terms[t].mean():7.0f}" for t in TERM_NAMES), flush=True)
