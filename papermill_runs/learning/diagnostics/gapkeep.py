"""Does following (a few tenths of a metre back) pay under the paper's reward? The committed agent with a 'gap keeper':
its throttle capped, only when a car ahead in lane is within 2 m and closing, to hold 0.4 m. Same races."""
import sys, numpy as np, torch
torch.set_num_threads(1)
from gtvision.evaluation import race_envs
from gtvision.agent.rollout import Rollout
from gtvision.rewards import TERM_NAMES
import gtvision.agent.shield as shield
W = {"progress": 1, "off_course": 10, "wall": 20, "car_velocity": 0.5, "car_fixed": 6, "overtaking": 3, "steering_change": 0.5, "steering_history": 5}
ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

class GapKeeper:
    """The layer of gtvision.agent.shield (once this diagnostic's own code, now the package's) with hold gap g0 (m),
    closing gain kc (m/s per m) and acceleration gain ka around any policy; counts the steps it capped."""
    def __init__(self, inner, g0, kc, ka): self.inner = inner; self.device = inner.device; self.hits = 0; shield.GAP_HOLD_M, shield.GAP_GAIN, shield.GAP_ACC_GAIN = g0, kc, ka
    def act(self, obs, hidden, eval_mode=False):
        a, h = self.inner.act(obs, hidden, eval_mode=eval_mode)
        kept = shield.gap_keep(torch.as_tensor(a), torch.as_tensor(obs["opponent_grid"]), torch.as_tensor(obs["proprio"])).numpy()
        self.hits += int((kept[:, 1] < a[:, 1]).sum())
        return kept, h
    def __getattr__(self, k): return getattr(self.inner, k)

modes = {"policy": None}
for spec in sys.argv[4:]:
    modes[spec] = tuple(map(float, spec.split(",")))
for name, m in modes.items():
    envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
    if m is not None: agent = GapKeeper(agent, *m)
    ro = Rollout(envs, agent, seed=seed, eval_mode=True)
    ret = np.zeros(n); terms = {t: np.zeros(n) for t in TERM_NAMES}; live = np.ones(n, bool); last = None
    for _ in range(6000):
        st = ro.step(None)
        ret += np.where(live, st.reward, 0)
        for t in TERM_NAMES: terms[t] += np.where(live, st.info[f"reward_{t}"], 0)
        info = st.info
        end = live & (st.terminated | st.truncated)
        if last is None: last = {k: np.array(v, copy=True) for k, v in info.items() if isinstance(v, np.ndarray)}
        for k in ("car_contact_time_s", "wall_time_s", "place", "finished", "time_s", "margin_m"): last[k] = np.where(live, info[k], last[k])
        live &= ~end
        if not live.any(): break
    print(f"{name:12s} return {ret.mean():7.0f} | contact {last['car_contact_time_s'].mean():5.1f} s wall {last['wall_time_s'].mean():5.1f} s place {last['place'].mean():5.2f} wins {int((last['place']==1).sum())} finished {int(last['finished'].sum())}/{n} margin {last['margin_m'].mean():6.0f} | "
          + " ".join(f"{t[:7]} {W[t]*terms[t].mean():6.0f}" for t in TERM_NAMES) + (f" | capped {agent.hits}" if m else ""), flush=True)
