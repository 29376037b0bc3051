"""Average the actor weights of DAgger rounds A..B of a run (its RUN/distill) into OUT, a run directory that `gtvision evaluate
--checkpoint` takes. Usage: python avg_rounds.py RUN/distill A B OUT"""
import json, sys
from pathlib import Path
import torch
from gtvision import checkpoints

rounds_dir, a, b, out = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
states = [checkpoints.load_state(rounds_dir / "checkpoints" / f"epoch_{e:06d}", map_location="cpu")["agent"]["actor"]
          for e in range(a, b + 1)]
avg = {k: (torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v)
       for k, v in states[-1].items()}
out.mkdir(parents=True, exist_ok=True)
config = json.loads((rounds_dir / "config.json").read_text())
config["averaged_rounds"] = {"run": str(rounds_dir), "rounds": [a, b]}
checkpoints.save_networks(out, b, {"actor": avg}, 0, {"averaged_rounds": [a, b]})
(out / "config.json").write_text(json.dumps(config, indent=2))
print(out, len(states), "rounds averaged")
