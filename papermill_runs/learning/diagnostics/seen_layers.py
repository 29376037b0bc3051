"""Seen layers for an ensemble (thirty-fifth session): a head on the committed agent's own features learns the bounds
the privileged safety layers (gtvision.agent.shield: the gap keeper and the side keeper) would set, from the agent's
own races; the agent then races through the head's bounds, reading only its view and proprio.

  collect CKPT RACES SEED OUT.pt   race CKPT (4-lap Tokyo races from the back of the grid, gtvision evaluate's) with
                                   the privileged layers on, so that its states are those of a car the layers keep
                                   (DRIVE=plain: without them); store the actor's features (float16) and the layers'
                                   bounds (gtvision.agent.shield.layer_bounds) at every step of every race
  train DATA.pt... HEAD.pt         fit a head (MLP, tanh, squared error) from features to bounds on the races of all
                                   but the last file's last eighth, and score it on those: of the steps where a layer
                                   lifts or steers, how often the head does, and how often its lifts are the layer's
Each part prints its wall time: it is training (counted in the five hours of issue 16).
A trained head races in spins.py (MODE seen:HEAD.pt).
The package's version of both parts is gtvision.agent.seen_layers (`gtvision export --fit-seen-layers RACES`): the
same races and loss, its own draw order; this script made the head LOG.md's table raced (thirty-fifth session).
"""
import sys
import time

import numpy as np
import torch
import torch.nn as nn

THREADS = 2
WEIGHT = 4.0
"""The squared error of a step where a layer sets a bound weighs this many times another's (they are 1 in 10)."""
LIFT = 0.95
"""A bound counts as set (a lift, a steer) where it lies this far inside the action space's edge (1, -1, 1)."""


def head_for(feature_dim: int, width: int = 256) -> nn.Module:
    """An MLP from features to the three bounds; its output is clamped to [-1, 1] where it is used (a tanh on it
    saturates at the bounds' edges, where most labels lie, and learns nothing: the first try, 54 s)."""
    return nn.Sequential(nn.Linear(feature_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 3))


def collect(ck, n, seed, out):
    import dataclasses

    from gtvision.agent.rollout import Rollout
    from gtvision.agent.shield import layer_bounds
    from gtvision.evaluation import race_envs
    import os
    torch.set_num_threads(THREADS)
    t0 = time.time()
    envs, agent = race_envs(ck, "tokyo", n, 4, "cpu")
    cfg = agent.config
    drive = os.environ.get("DRIVE", "layers")
    agent.config = dataclasses.replace(cfg, gap_keeper=drive == "layers", side_keeper=drive == "layers")
    captured = {}
    step_features = agent.step_features

    def capture(obs, hidden):
        features, hidden = step_features(obs, hidden)
        captured["f"] = features
        return features, hidden

    agent.step_features = capture
    ro = Rollout(envs, agent, seed=seed, eval_mode=True)
    feats, bounds, race_of = [], [], []
    live = np.ones(n, bool)
    finished = np.zeros(n, bool)
    t = 0
    while live.any() and t < int(os.environ.get("MAX_STEPS", 8000)):
        obs = ro.obs
        b = layer_bounds(torch.as_tensor(obs["opponent_grid"]).float(), torch.as_tensor(obs["proprio"]).float(),
                         True, True, cfg.gap_hold_m, cfg.gap_look_m)
        st = ro.step(None)
        idx = np.nonzero(live)[0]
        feats.append(captured["f"][idx].half())
        bounds.append(b[idx])
        race_of.append(torch.as_tensor(idx))
        done = live & (np.asarray(st.terminated) | np.asarray(st.truncated))
        finished[done] = np.asarray(st.info["finished"], bool)[done]
        live &= ~done
        t += 1
        if t % 500 == 0:
            print(f"step {t}: {int(live.sum())} racing, {time.time() - t0:.0f} s", flush=True)
    data = dict(features=torch.cat(feats), bounds=torch.cat(bounds), race=torch.cat(race_of), seed=seed,
                checkpoint=ck, drive=drive, hold_m=cfg.gap_hold_m, look_m=cfg.gap_look_m)
    torch.save(data, out)
    b = data["bounds"]
    print(f"{ck} seed {seed}, {n} races driven with the layers {'on' if drive == 'layers' else 'off'}: finished "
          f"{int(finished.sum())}; {len(b)} steps, gap keeper lifting on {(b[:, 0] < LIFT).float().mean():.3f}, side "
          f"keeper on {((b[:, 1] > -LIFT) | (b[:, 2] < LIFT)).float().mean():.3f}; wall time {time.time() - t0:.1f} s")


def score(pred, b):
    lines = []
    for name, layer, head in (("ceiling", b[:, 0] < LIFT, pred[:, 0] < LIFT),
                              ("steer", (b[:, 1] > -LIFT) | (b[:, 2] < LIFT), (pred[:, 1] > -LIFT) | (pred[:, 2] < LIFT))):
        lines.append(f"{name}: layer sets it on {layer.float().mean():.3f} of steps, the head on "
                     f"{(head & layer).sum() / max(int(layer.sum()), 1):.2f} of those; {(head & layer).sum() / max(int(head.sum()), 1):.2f} "
                     f"of the head's are the layer's; mean error there {(pred - b)[layer].abs().mean():.3f}")
    return "; ".join(lines)


def train(files, out, epochs=int(__import__("os").environ.get("EPOCHS", 8))):
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    t0 = time.time()
    parts = [torch.load(f) for f in files]
    last = parts[-1]
    held = last["race"] >= int(last["race"].max()) + 1 - max(1, (int(last["race"].max()) + 1) // 8)
    xs = [p["features"] for p in parts[:-1]] + [last["features"][~held]]
    ys = [p["bounds"] for p in parts[:-1]] + [last["bounds"][~held]]
    x, y = torch.cat(xs), torch.cat(ys)
    xv, yv = last["features"][held].float(), last["bounds"][held]
    head = head_for(x.shape[1])
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    batch = 512
    for epoch in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            j = perm[i:i + batch]
            set_ = ((y[j, 0] < LIFT) | (y[j, 1] > -LIFT) | (y[j, 2] < LIFT)).float()
            loss = (((head(x[j].float()) - y[j]) ** 2).mean(-1) * (1 + (WEIGHT - 1) * set_)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            pv = head(xv).clamp(-1, 1)
        print(f"epoch {epoch + 1}: train loss {loss.item():.4f}, held-out loss {((pv - yv) ** 2).mean():.4f}; "
              f"{score(pv, yv)} ({time.time() - t0:.0f} s)", flush=True)
    torch.save(dict(state=head.state_dict(), feature_dim=x.shape[1], files=files, hold_m=last["hold_m"],
                    look_m=last["look_m"]), out)
    print(f"trained on {len(x)} steps, scored on {len(xv)} (the last eighth of {files[-1]}'s races); "
          f"wall time {time.time() - t0:.1f} s")


def load_head(path):
    saved = torch.load(path)
    head = head_for(saved["feature_dim"])
    head.load_state_dict(saved["state"])
    head.eval()
    return (lambda features: head(features).clamp(-1, 1)), saved


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "collect":
        collect(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif what == "train":
        train(sys.argv[2:-1], sys.argv[-1])
    else:
        sys.exit(__doc__)
