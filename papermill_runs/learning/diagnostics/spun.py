"""Does a driver turn round after a spin? Episodes that start the learner spun (``learner_yaw_deg`` drawn in
[-180, 180], sliding along the course at 0, 20 or 40 m/s, at a random point of Tokyo, OPPONENTS BIAI cars around
it); an episode *recovers* when the learner has gained 100 m of course progress facing within 30 degrees of the
course's direction, within 30 s. Prints the share recovered, the median time to recover, and the share by start
speed.
Usage: python spun.py CHECKPOINT EPISODES SEED [OPPONENTS]
GROUND=1: the recovery reflex's stop clock reads the speed over the ground (forward and sideways) instead of the
forward speed, which is below 1 m/s (negative) in a car sliding backwards at any pace (thirty-third session; for a
reflex without the compass, the forward speed is read for nothing else).
STUCK=S: the stuck rule after S s (default 30; the races' is 10 s: a turn that takes longer ends there)."""
import os, sys, math, numpy as np, torch, gymnasium as gym
torch.set_num_threads(1)
import gtvision  # noqa: F401
from gtvision import checkpoints
from gtvision.env import env_kwargs_for
from gtvision.agent.rollout import Rollout

ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
opp = int(sys.argv[4]) if len(sys.argv) > 4 else 4
kw = dict(num_opponents=opp, start="random", bop=False, stuck_s=float(os.environ.get("STUCK", "30")), max_time_s=30.0,
          situations=[{"learner_yaw_deg": [-180, 180], "start_speed_mps": v} for v in (0, 20, 40)])
_, run_dir = checkpoints.resolve(ck)
kw = env_kwargs_for("gtvision/Tokyo-v0", kw, checkpoints.run_preset(run_dir).agent)
envs = gym.make_vec("gtvision/Tokyo-v0", num_envs=n, **kw)
agent = checkpoints.load_actor(ck, envs.single_observation_space, envs.single_action_space, "cpu")
ro = Rollout(envs, agent, seed=seed, eval_mode=True)
if os.environ.get("GROUND"):
    from hook import wrap_reflex
    from gtvision.agent.recovery import FORWARD_SPEED, LATERAL_SPEED
    reflex = ro.reflex
    assert reflex is not None and reflex.side_rule != "compass", "GROUND: a reflex that reads the forward speed only"

    def on_ground(action, proprio, image=None):
        p = torch.as_tensor(proprio).clone()
        p[:, FORWARD_SPEED] = torch.hypot(p[:, FORWARD_SPEED], p[:, LATERAL_SPEED])
        return reflex(action, p.numpy() if isinstance(proprio, np.ndarray) else p, image)

    wrap_reflex(ro, on_ground)
b = envs.unwrapped.batch
speed0 = b.state.speed_mps[:, 0].clone().numpy()   # after Rollout's reset
p0 = b.state.progress_m[:, 0].clone()
recovered = np.full(n, np.nan)
live = np.ones(n, bool)
for t in range(300):
    st = ro.step(None)
    s = b.state
    head = b.track.heading_rad[s.station[:, 0]]
    herr = torch.atan2(torch.sin(s.yaw[:, 0] - head), torch.cos(s.yaw[:, 0] - head)).abs().numpy()
    ok = ((s.progress_m[:, 0] - p0).numpy() > 100) & (herr < math.radians(30)) & live & np.isnan(recovered)
    recovered[ok] = (t + 1) / 10
    live &= ~(np.asarray(st.terminated) | np.asarray(st.truncated))
    if not (live & np.isnan(recovered)).any():
        break
rec = ~np.isnan(recovered)
print(f"{ck}: {rec.sum()} of {n} spun starts recovered ({rec.mean():.0%}), median {np.nanmedian(recovered):.1f} s")
for v in (0, 20, 40):
    m = np.isclose(speed0, v, atol=0.5)
    print(f"  start {v:2d} m/s: {rec[m].sum()} of {m.sum()} recovered")
