"""Does the vision actor remember an opponent that has left its view during a pass? (issue 16, deliverable 2)

The actor sees a 64x64 forward view (90 degrees across) and proprio; a car alongside or just behind it is out of
view. Two measurements on the same races (from the back of the grid, 19 BIAI, deterministic policy):

1. **Probe.** At every step with a car beside the agent and out of its view (within 6 m sideways, its front
   corner behind the view's 45-degree edge, less than 10 m back), which side is it on? A logistic-regression probe
   is fitted on the first half of the races and scored on the second (balanced accuracy), reading (a) the GRU's
   state after the step, the actor's memory, or (b) the GRU's input at that step, what the view and proprio show
   now. If (a) reads the side and (b) does not, the memory carries the car that has left the view.
2. **Wipe.** The same races again with the actor's memory set to zeros (its state at an episode's start) at every
   moment a car leaves the view beside it, and, as a control, at as many moments drawn at random: car contact in
   the 3 s after each wipe, and the races' results, against the untouched policy.

    python papermill_runs/learning/diagnostics/memory.py CHECKPOINT RACES SEED [OUT.md]
"""
import sys
from pathlib import Path

import numpy as np
import torch

from gtvision.agent.rollout import Rollout
from gtvision.evaluation import race_envs

torch.set_num_threads(1)
L, W = 4.18, 1.95  # the race cars' length and width (m)
HZ = 10
AFTER_S = 3.0


def beside_out_of_view(grid: np.ndarray) -> np.ndarray:
    """(N, 14, 6) opponent grid -> (N,) side of the nearest car beside and out of view: +1 left, -1 right, 0 none."""
    x, y = grid[..., 0], grid[..., 1]
    present = np.abs(grid).sum(-1) > 0
    hidden_from_view = (x + L / 2) < (np.abs(y) - W / 2)  # its front corner behind the 45-degree edge of the view
    near = present & hidden_from_view & (np.abs(y) < 6.0) & (x > -10.0)
    dist = np.where(near, np.hypot(x, y), np.inf)
    k = dist.argmin(-1)
    side = np.sign(np.take_along_axis(y, k[:, None], -1)[:, 0])
    return np.where(near.any(-1), side, 0.0)


class Probe:
    """The policy, recording the actor's memory and its input at every step, and wiping the memory on request."""

    def __init__(self, inner, wipe: str | None = None, rng=None, rate: float = 0.0):
        self.inner, self.wipe, self.rng, self.rate = inner, wipe, rng, rate
        self.device = inner.device
        self.rows, self.prev_side, self.wiped = [], None, []

    def act(self, obs, hidden, eval_mode=False):
        side = beside_out_of_view(np.asarray(obs["opponent_grid"]))
        prev = np.zeros_like(side) if self.prev_side is None else self.prev_side
        onset = (side != 0) & (prev == 0)
        wipe = np.zeros_like(onset)
        if self.wipe == "onset":
            wipe = onset
        elif self.wipe == "random":
            wipe = self.rng.random(len(side)) < self.rate
        if wipe.any():
            hidden = torch.where(torch.as_tensor(wipe)[:, None], 0.0, hidden)
        self.wiped.append(wipe)
        self.prev_side = side
        with torch.no_grad():
            seq = {k: torch.as_tensor(np.asarray(obs[k])).unsqueeze(1) for k in self.inner.actor.keys}
            gru_input = self.inner.actor.torso.embed(seq)[:, 0]
        action, next_hidden = self.inner.act(obs, hidden, eval_mode=eval_mode)
        self.rows.append((side, onset, gru_input.numpy(), next_hidden.numpy()))
        return action, next_hidden

    def __getattr__(self, k):
        return getattr(self.inner, k)


def run(checkpoint, n, seed, wipe=None, rate=0.0):
    envs, agent = race_envs(checkpoint, "tokyo", n, 4, "cpu")
    probe = Probe(agent, wipe, np.random.default_rng(seed), rate)
    ro = Rollout(envs, probe, seed=seed, eval_mode=True)
    live, contact, last = np.ones(n, bool), [], {}
    while live.any():
        st = ro.step(None)
        for k in ("car_contact_time_s", "wall_time_s", "place", "finished", "margin_m"):
            last[k] = np.where(live, st.info[k], last.get(k, st.info[k]))
        contact.append(last["car_contact_time_s"].copy())  # held at its final value once a race has ended
        probe.rows[-1] = (*probe.rows[-1], live.copy())  # the races this step belongs to
        live &= ~(st.terminated | st.truncated)
    envs.close()
    return probe, np.array(contact), last


def fit_probe(xtr, ytr, xte, yte):
    """Balanced accuracy on (xte, yte) of a logistic regression fitted on (xtr, ytr), labels +-1."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = torch.as_tensor((xtr - mu) / sd, dtype=torch.float32), torch.as_tensor((xte - mu) / sd, dtype=torch.float32)
    t = torch.as_tensor(ytr > 0, dtype=torch.float32)
    lin = torch.nn.Linear(a.shape[1], 1)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200)
    w = torch.where(t > 0, 0.5 / t.mean(), 0.5 / (1 - t.mean()))  # both sides weigh alike

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(lin(a)[:, 0], t, weight=w)
                + 1e-3 * lin.weight.square().sum())
        loss.backward()
        return loss

    opt.step(closure)
    pred = (lin(b)[:, 0] > 0).detach().numpy()
    truth = yte > 0
    return 0.5 * ((pred[truth]).mean() + (~pred[~truth]).mean())


def main():
    checkpoint, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out = sys.argv[4] if len(sys.argv) > 4 else None
    lines = [f"# Memory of an opponent that left the view: `{checkpoint}`, {n} races, seed {seed}", ""]
    probe, contact, last = run(checkpoint, n, seed)
    side = np.stack([r[0] for r in probe.rows])       # (T, N)
    onset = np.stack([r[1] for r in probe.rows])
    gin = np.stack([r[2] for r in probe.rows])         # (T, N, D_in)
    mem = np.stack([r[3] for r in probe.rows])         # (T, N, H)
    live = np.stack([r[4] for r in probe.rows])
    # steps since the car beside went out of view (within one spell of `side != 0`)
    since = np.zeros_like(side)
    for t in range(1, len(side)):
        since[t] = np.where((side[t] != 0) & (side[t - 1] != 0), since[t - 1] + 1, 0)
    races = np.broadcast_to(np.arange(n), side.shape)
    sel = (side != 0) & live
    train, test = sel & (races < n // 2), sel & (races >= n // 2)
    lines += [(f"Steps with a car beside and out of view: {int(sel.sum())} of {int(live.sum())} "
               f"({sel.sum() / live.sum():.1%}); left {int((side[sel] > 0).sum())}, right "
               f"{int((side[sel] < 0).sum())}; spells (a car leaving the view) {int((onset & live).sum())}."), "",
              "Which side is the car on? Balanced accuracy of a linear probe on the held-out races (chance 0.50):", "",
              "| probe reads | all such steps | 0-1 s after it left the view | 1-2 s | 2-3 s |",
              "| --- | --- | --- | --- | --- |"]
    for name, feats in (("the GRU's state (the actor's memory)", mem), ("the GRU's input (view and proprio now)", gin)):
        cells = [fit_probe(feats[train], side[train], feats[test], side[test])]
        for lo, hi in ((0, 10), (10, 20), (20, 30)):
            band = test & (since >= lo) & (since < hi)
            cells.append(fit_probe(feats[train], side[train], feats[band], side[band]) if band.sum() > 20 else np.nan)
        lines.append(f"| {name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    onsets = int((onset & live).sum())
    rate = onsets / live.sum()
    lines += ["", (f"Wiping the memory (to an episode's first state) at every moment a car leaves the view beside the "
                   f"agent, or at as many random moments ({rate:.3f} per step): car contact in the {AFTER_S:.0f} s "
                   "after each wipe (or each such moment, untouched) and the races:"), "",
              ("| arm | moments | car contact in the 3 s after (s per moment) | car contact per race | wall | wins | "
               "place mean | finished |"), "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for arm in (None, "onset", "random"):
        if arm is not None:
            probe, contact, last = run(checkpoint, n, seed, arm, rate)
        alive = np.stack([r[4] for r in probe.rows])
        moments = (onset if arm is None else np.stack(probe.wiped)) & alive
        c = contact
        k = int(AFTER_S * HZ)
        after = [c[min(t + k, len(c) - 1), r] - c[t, r] for t, r in zip(*np.nonzero(moments))]
        lines.append(f"| {arm or 'untouched'} | {len(after)} | {np.mean(after):.2f} | "
                     f"{last['car_contact_time_s'].mean():.1f} s | {last['wall_time_s'].mean():.1f} s | "
                     f"{int((last['place'] == 1).sum())}/{n} | {last['place'].mean():.2f} | "
                     f"{int(last['finished'].sum())}/{n} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).write_text(text)


if __name__ == "__main__":
    main()
