"""The ensemble's pedal from its most cautious member: races an exported ensemble (``gtvision export --ensemble``)
with the pedal (action 1: throttle above 0, brake below) at the members' minimum, or another order statistic,
instead of their mean; the steering stays the mean. A diagnostic of the thirty-ninth session (LOG.md): the committed
agent's unfinished races begin with a touch under braking at 43 to 49 m/s in traffic and a spin; does braking with
the earliest-braking member touch less?

usage (from papermill_runs/): PEDAL=min python learning/diagnostics/ensemble_pedal.py CHECKPOINT EPISODES SEED OUT
PEDAL: min (the default), mean (the package's rule: races as `gtvision evaluate`), or an integer k (the k-th lowest,
0 = min). MAX_S cuts the races short (a smoke run). One thread; writes OUT/eval_tokyo_<agent>_pedal_<PEDAL>.csv and
.json as `gtvision evaluate --out OUT` writes its table and summary, and prints the summary."""
import os, sys, json
import torch
torch.set_num_threads(1)
from gtvision import evaluation
from gtvision.agent import ensemble

ck, episodes, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rule = os.environ.get("PEDAL", "min")
PEDAL = 1


def distribution(self, features):
    parts = [a.distribution(f) for a, f in zip(self.actors, torch.split(features, self.torso.feature_dims, -1))]
    acts = torch.stack([torch.tanh(m) for m, _ in parts])           # (members, ..., 2)
    action = acts.mean(0)
    pedals = acts[..., PEDAL]
    k = 0 if rule == "min" else int(rule)
    action[..., PEDAL] = pedals.sort(0).values[k]
    action = action.clamp(-ensemble.SQUASH_LIMIT, ensemble.SQUASH_LIMIT)
    return torch.atanh(action), torch.stack([s for _, s in parts]).mean(0)


if rule != "mean":
    ensemble.EnsembleActor.distribution = distribution
max_s = float(os.environ["MAX_S"]) if "MAX_S" in os.environ else None
table = evaluation.evaluate(ck, "tokyo", episodes=episodes, seed=seed, progress=False, max_time_s=max_s)
csv, _ = evaluation.write_results(table, out, evaluation.results_name(ck, "tokyo") + f"_pedal_{rule}", None)
s = evaluation.summarize(table)
print(f"# {ck}, pedal {rule}, {episodes} races of seed {seed} -> {csv}")
print(json.dumps({k: (float(v) if hasattr(v, "__float__") else v) for k, v in s.items()}))
