"""A seen shield (agent.seen_shield: the vision actor's head that predicts its teacher's safety layers' bounds from
image and proprio) against the layers it learnt: 4-lap races from the back of the grid, the same seeds for each MODE:
'seen' (as trained: the action through the head's bounds), 'off' (the policy alone), 'oracle' (the action through the
privileged layers' own bounds: gap keeper 1.0 m / 5 m and side keeper, the shielded teacher's), 'seen_gap' (the
head's throttle ceiling only), 'oracle_gap' (the privileged gap keeper alone, 0.4 m / 3 m as SH1 trained), 'seen_strict<d>' (the head's bounds, each one
that acts moved d further into the action space: a stricter shield; d 0.3 when not given). For every mode the
head's bounds are compared with the layers' at each step of a running race: how often a layer acts (its bound is off
the action space's edge by more than 0.05), how many of those steps the head sees (recall) and how many of the
head's own (precision), and the mean absolute error of each bound where the layer acts; and for the races not
finished, in their last 10 s: the share of steps where the privileged gap keeper would cap the throttle below 0.5, the
mean speed and the car contact and wall contact in those 10 s; and how many of the races' wall contacts (each start
of one) follow a step where the bounds moved the action (by more than 0.05) within the 2 s before, against the share
of all 2-s windows that hold such a step.
Usage: python seen_shield.py CHECKPOINT RACES SEED MODE [MODE ...]"""
import sys

import numpy as np
import torch

from gtvision.agent.rollout import Rollout
from gtvision.agent.shield import BOUNDS, keep_bounds, layer_bounds
from gtvision.evaluation import race_envs

torch.set_num_threads(1)
EDGES = torch.tensor([1.0, -1.0, 1.0])


class Probe:
    """The checkpoint's policy, its action through the bounds ``mode`` says; logs both bounds of every step."""

    def __init__(self, agent, mode):
        self.agent, self.mode, self.device = agent, mode, agent.device
        self.seen, self.true, self.moved = [], [], []

    def initial_hidden(self, n):
        return self.agent.initial_hidden(n)

    @torch.no_grad()
    def act(self, obs, hidden, eval_mode=True):
        a = self.agent
        features, hidden = a.step_features(obs, hidden)
        action = a._to_env_action(a.actor.sample(features, deterministic=True)[0])
        seen = a.actor.shield_bounds(features)
        true = layer_bounds(torch.as_tensor(obs["opponent_grid"]), torch.as_tensor(obs["proprio"]), True, True, 1.0, 5.0)
        self.seen.append(seen)
        self.true.append(true)
        before = action
        if self.mode == "seen":
            action = keep_bounds(action, seen)
        elif self.mode.startswith("seen_strict"):   # seen_strict<d>: each bound that acts moved d further in
            d = float(self.mode[len("seen_strict"):] or 0.3)
            acts = (seen - EDGES).abs() > 0.05
            action = keep_bounds(action, torch.where(acts, seen - d * EDGES, seen))
        elif self.mode == "seen_gap":
            action = keep_bounds(action, torch.cat([seen[:, :1], -torch.ones_like(seen[:, :1]), torch.ones_like(seen[:, :1])], -1))
        elif self.mode == "oracle_gap":
            action = keep_bounds(action, layer_bounds(torch.as_tensor(obs["opponent_grid"]),
                                                      torch.as_tensor(obs["proprio"]), True, False, 0.4, 3.0))
        elif self.mode == "oracle":
            action = keep_bounds(action, true)
        self.moved.append(((action - before).abs().amax(-1) > 0.05).numpy())
        return action.numpy(), hidden


ck, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for mode in sys.argv[4:]:
    envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
    probe = Probe(agent, mode)
    rollout = Rollout(envs, probe, seed=seed, eval_mode=True)
    live, last, lives, speeds, contacts, walls = np.ones(n, bool), {}, [], [], [], []
    for _ in range(6000):
        lives.append(live.copy())
        step = rollout.step(None)
        speeds.append(np.asarray(step.info["speed_mps"]))
        contacts.append(np.asarray(step.info["car_contact_time_s"]))
        walls.append(np.asarray(step.info["wall_time_s"]))
        for k in ("car_contact_time_s", "wall_time_s", "place", "finished", "margin_m"):
            last[k] = np.where(live, step.info[k], last.get(k, step.info[k]))
        live &= ~(np.asarray(step.terminated) | np.asarray(step.truncated))
        if not live.any():
            break
    m = torch.as_tensor(np.stack(lives)).reshape(-1)
    seen, true = torch.cat(probe.seen)[m], torch.cat(probe.true)[m]
    acts_true, acts_seen = (true - EDGES).abs() > 0.05, (seen - EDGES).abs() > 0.05
    parts = []
    for j, name in enumerate(BOUNDS):
        t, s = acts_true[:, j], acts_seen[:, j]
        recall = float((t & s).sum() / t.sum().clamp(min=1))
        precision = float((t & s).sum() / s.sum().clamp(min=1))
        mae = float((seen[t, j] - true[t, j]).abs().mean()) if t.any() else float("nan")
        parts.append(f"{name} acts {100 * float(t.float().mean()):4.1f}% recall {recall:.2f} precision {precision:.2f} "
                     f"err {mae:.2f}")
    print(f"{mode:6s} contact {last['car_contact_time_s'].mean():5.1f} s | wall {last['wall_time_s'].mean():5.1f} s | "
          f"place {last['place'].mean():5.2f} | wins {int((last['place'] == 1).sum())} | "
          f"finished {int(last['finished'].sum())}/{n} | margin {last['margin_m'].mean():6.0f} m", flush=True)
    print("       " + " | ".join(parts), flush=True)
    alive = np.stack(lives)                                           # (T, n)
    wall = np.diff(np.stack(walls), axis=0, prepend=0.0) > 0          # in contact with a wall at this step
    onset = wall & ~np.roll(wall, 1, axis=0) & alive
    onset[0] = False
    moved = np.stack(probe.moved) & alive
    recent = np.stack([moved[max(0, t - 20):t].any(0) for t in range(len(moved))])   # moved within the 2 s before
    print(f"       wall contacts begun: {int(onset.sum())}, after the bounds moved the action within 2 s: "
          f"{100 * recent[onset].mean():3.0f}% (of all steps: {100 * recent[alive].mean():3.0f}%)", flush=True)
    capped = (torch.stack(probe.true)[..., 0] < 0.5).numpy()          # the layer's ceiling below half throttle
    for i in np.flatnonzero(~last["finished"].astype(bool)):
        end = int(alive[:, i].sum())                                  # the race's steps
        w = slice(max(0, end - 100), end)
        print(f"       race {i}: ended at step {end}, last 10 s: capped {100 * capped[w, i].mean():3.0f}% | "
              f"speed {np.stack(speeds)[w, i].mean():4.1f} m/s | car contact "
              f"{contacts[end - 1][i] - contacts[max(0, end - 101)][i]:4.1f} s | wall "
              f"{walls[end - 1][i] - walls[max(0, end - 101)][i]:4.1f} s", flush=True)
