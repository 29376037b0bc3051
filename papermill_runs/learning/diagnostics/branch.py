"""Does pushing pay? At contact steps with the car ahead, branch the race (deepcopy): the policy as is
against the policy with the throttle lowered by `lift` for k steps; compare discounted returns over H steps."""
import sys, copy, numpy as np, torch
torch.set_num_threads(1)
from gtvision.evaluation import race_envs
from gtvision.agent.rollout import Rollout
from gtvision.rewards import TERM_NAMES
ck = sys.argv[1]; seed = int(sys.argv[2]); nbranch = int(sys.argv[3])
H, gamma = 150, 0.99
envs, agent = race_envs(ck, "tokyo", 1, 4, "cpu")
ro = Rollout(envs, agent, seed=seed, eval_mode=True)
b = envs.unwrapped.batch

def run(ro, H, lift, k):
    ret, terms, cont = 0.0, {t: 0.0 for t in TERM_NAMES}, 0
    for t in range(H):
        a = None
        if t < k:
            a, _ = ro.agent.act(ro.obs, ro.hidden, eval_mode=True)
            a = np.asarray(a).copy(); a[:, 1] = np.clip(a[:, 1] - lift, -1, 1)
        st = ro.step(a)
        ret += gamma ** t * float(st.reward[0])
        for n in TERM_NAMES:
            terms[n] += gamma ** t * float(st.info[f"reward_{n}"][0])
        cont += int(bool(b.state.car_contact[0, 0])) if False else 0
        if st.done[0]:
            break
    cc = float(ro.envs.unwrapped.batch.state.car_contact_time_s[0, 0])
    return ret, terms, cc

rows = []
t = 0; last = -100
while len(rows) < nbranch and t < 3000:
    s = b.state
    ahead = s.in_contact[0, 0, :] & (s.progress_m[0, :] > s.progress_m[0, 0])
    if bool(ahead.any()) and t - last >= 20:
        last = t
        base = copy.deepcopy(ro)
        cc0 = float(b.state.car_contact_time_s[0, 0])
        res = {}
        for name, lift, k in (("policy", 0, 0), ("lift0.3x5", 0.3, 5), ("lift0.6x5", 0.6, 5), ("brake1.2x3", 1.2, 3)):
            r2 = copy.deepcopy(base)
            ret, terms, cc = run(r2, H, lift, k)
            res[name] = (ret, terms, cc - cc0)
        p = res["policy"]
        line = f"t {t/10:6.1f} place {int((s.progress_m[0]>s.progress_m[0,0]).sum())+1:2d}  policy G {p[0]:7.1f} contact {p[2]:5.1f}s | "
        line += " | ".join(f"{n}: dG {r[0]-p[0]:+6.1f} dcontact {r[2]-p[2]:+5.1f}s dprog {r[1]['progress']-p[1]['progress']:+5.1f} dovt {r[1]['overtaking']-p[1]['overtaking']:+6.1f} dcar {r[1]['car_fixed']-p[1]['car_fixed']:+5.1f}" for n, r in res.items() if n != "policy")
        print(line, flush=True)
        rows.append(res)
    ro.step(None); t += 1
d = {n: np.mean([r[n][0] - r["policy"][0] for r in rows]) for n in rows[0] if n != "policy"}
print("mean dG", d)
