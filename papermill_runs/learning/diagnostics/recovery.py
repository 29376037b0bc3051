"""A recovery reflex on on-board information alone, around a checkpoint's policy: 4-lap races from the back of the
grid, the same seeds for each MODE. 'off': the policy as it races. 'on[:TRIG:REV:EXIT:THROTTLE]': when the car's forward speed
(proprio v_x) has stayed below 1 m/s for TRIG seconds (1.5), hold the brake REV seconds (3.0; the simulator engages
reverse after 1 s at a standstill, as GT7's automatic gearbox) steering to full lock opposite to the side the car's
steering points to (the side the policy wants to turn to; left when straight), then EXIT seconds (1.5) of the
policy's pedal (at least THROTTLE, 0.3) steering to full lock on that side: a three-point turn
(gtvision.agent.recovery). 'strict<d>+MODE': MODE with an actor's seen shield made stricter, each of its bounds that
acts moved d further in (seen_shield.py's 'seen_strict<d>'). Prints each mode's races and, for the races not
finished, where they end.
Usage: python recovery.py CHECKPOINT RACES SEED MODE [MODE ...]"""
import sys

import numpy as np
import torch

from gtvision.agent.recovery import RecoveryReflex
from gtvision.agent.rollout import Rollout
from gtvision.agent.shield import keep_bounds
from gtvision.evaluation import race_envs

torch.set_num_threads(1)
DT = 0.1
EDGES = torch.tensor([1.0, -1.0, 1.0])   # the seen shield's bounds where they do not act


class Reflex:
    """The checkpoint's policy (its mean action, through its seen shield when it has one) and the package's reflex
    (:class:`gtvision.agent.recovery.RecoveryReflex`, what ``agent.recovery`` races with) at this MODE's settings."""

    def __init__(self, agent, n, trig, rev, exit_s, exit_throttle, strict=None):
        self.agent, self.strict = agent, strict
        self.reflex = None if trig is None else RecoveryReflex(n, trig, rev, exit_s, exit_throttle)
        self.count = np.zeros(n, int)
        self.since_s = np.full(n, 99.0)

    def initial_hidden(self, n):
        return self.agent.initial_hidden(n)

    @torch.no_grad()
    def act(self, obs, hidden, eval_mode=True):
        if self.strict is None:
            action, hidden = self.agent.act(obs, hidden, eval_mode=True)
        else:   # the seen shield's bounds that act moved `strict` further in (seen_shield.py's seen_strict<d>)
            a = self.agent
            features, hidden = a.step_features(obs, hidden)
            action = a._to_env_action(a.actor.sample(features, deterministic=True)[0])
            seen = a.actor.shield_bounds(features)
            acts = (seen - EDGES).abs() > 0.05
            action = keep_bounds(action, torch.where(acts, seen - self.strict * EDGES, seen)).numpy()
        if self.reflex is None:
            return action, hidden
        action = self.reflex(action, obs["proprio"])
        self.count = self.reflex.count.numpy()
        self.since_s = np.minimum(self.reflex.since.numpy() * DT, 99.0)
        return action, hidden


def parse(mode):
    if mode.startswith("strict"):   # strict<d>+MODE: MODE through a stricter seen shield
        strict, mode = mode.split("+")
        return parse(mode)[:-1] + (float(strict[len("strict"):]),)
    if mode == "off":
        return None, 0.0, 0.0, 0.0, None
    vals = [float(v) for v in mode.split(":")[1:]]
    return tuple(vals + [1.5, 3.0, 1.5, 0.3][len(vals):]) + (None,)


ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for mode in sys.argv[4:]:
    envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
    reflex = Reflex(agent, n, *parse(mode))
    rollout = Rollout(envs, reflex, seed=seed, eval_mode=True)
    live, last, trace = np.ones(n, bool), {}, []
    for _ in range(6000):
        step = rollout.step(None)
        trace.append(np.stack([np.asarray(step.obs["proprio"])[:, 0], np.asarray(step.obs["proprio"])[:, 9],
                               step.action[:, 0], step.action[:, 1], reflex.since_s,
                               np.asarray(step.info["progress_m"]), np.asarray(step.info["wall_time_s"]),
                               np.asarray(step.info["car_contact_time_s"])], -1))
        for k in ("car_contact_time_s", "wall_time_s", "place", "finished", "progress_m", "time_s"):
            last[k] = np.where(live, step.info[k], last.get(k, step.info[k]))
        live &= ~(np.asarray(step.terminated) | np.asarray(step.truncated))
        if not live.any():
            break
    envs.close()
    fin = last["finished"].astype(bool)
    print(f"{mode}: won {int(((last['place'] == 1) & fin).sum())}, finished {int(fin.sum())}/{n}, "
          f"car {last['car_contact_time_s'].mean():.1f} s, wall {last['wall_time_s'].mean():.1f} s, "
          f"reflexes {reflex.count.sum()} in {(reflex.count > 0).sum()} races", flush=True)
    for i in np.flatnonzero(~fin):
        print(f"  race {i}: ended at {last['time_s'][i]:.1f} s, {last['progress_m'][i]:.0f} m, "
              f"place {last['place'][i]}", flush=True)
        t_end = int(round(last["time_s"][i] / DT))
        for t in range(max(0, t_end - 160), t_end, 5):
            vx, st, a0, a1, ph, pr, wa, ca = trace[t][i]
            print(f"    t {t * DT:6.1f}  vx {vx:6.1f}  steer {st:+.2f}  a ({a0:+.2f}, {a1:+.2f})  reflex {ph:5.1f}  "
                  f"progress {pr:7.0f}  wall {wa:5.1f}  car {ca:5.1f}")
