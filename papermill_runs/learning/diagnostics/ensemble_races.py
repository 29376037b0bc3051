"""Race an ensemble of vision actors: the mean of their actions (eval mode), each with its own GRU state.

usage (from papermill_runs/): python learning/diagnostics/ensemble_races.py OUT SEED EPISODES LAPS CK1 CK2 ...
(the reflex and safety settings of CK1). The twenty-fourth session's first look at an ensemble (LOG.md, "An ensemble
of students"), before `gtvision export --ensemble` (gtvision/agent/ensemble.py) made one an agent of its own: this
averages the members' actions in the action space's units, the package the same actions through the tanh (equal up
to rounding); writes OUT/races.csv and prints the summary."""
import sys, json, os
import numpy as np, torch
torch.set_num_threads(1)
from gtvision import checkpoints, evaluation

out, seed, episodes, laps, cks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
_load = checkpoints.load_actor

class Ensemble:
    def __init__(self, members):
        self.members = members
        self.config = members[0].config
        self.device = members[0].device
        self.sizes = [m.initial_hidden(1).shape[-1] for m in members]
    def initial_hidden(self, n):
        return torch.cat([m.initial_hidden(n) for m in self.members], -1)
    def act(self, obs, hidden, eval_mode=False):
        parts = torch.split(hidden, self.sizes, -1)
        acts, hs = zip(*(m.act(obs, h, eval_mode=eval_mode) for m, h in zip(self.members, parts)))
        return np.mean(acts, 0).astype(acts[0].dtype), torch.cat(hs, -1)

def load_ensemble(path, obs_space, act_space, device="cpu"):
    return Ensemble([_load(c, obs_space, act_space, device) for c in cks])

evaluation.checkpoints.load_actor = load_ensemble
table = evaluation.evaluate(cks[0], "tokyo", episodes=episodes, seed=seed, laps=laps, progress=False)
table["driver"] = "+".join(cks)
os.makedirs(out, exist_ok=True)
table.to_csv(os.path.join(out, "races.csv"), index=False)
s = evaluation.summarize(table)
print(json.dumps({k: (float(v) if hasattr(v, "__float__") else v) for k, v in s.items()}))
