"""IV-D in two stages over DAgger runs' rounds (the twenty-third session's selection, LOG.md "A wider selection").
Stage 1: every round's 8 selection races (seed 1000, `distill/races_seed1000_recovery`); the 8 rounds of best mean
margin over all runs go on to stage 2: 16 more races (seed 2000, `distill/races_seed2000_recovery`). The pick is
the stage-2 round of best mean margin over its 24 races among those under MAX_CAR s of car contact a race (the
paper's rule, IV-D, with the racing target's 5 s for the human champion's worst), else of best margin.
Usage: python wide_selection.py RUN... [--max-car 5]"""
import sys
from pathlib import Path

import pandas as pd

args = sys.argv[1:]
max_car = 5.0
if "--max-car" in args:
    i = args.index("--max-car")
    max_car = float(args[i + 1])
    del args[i:i + 2]
STAGE_2 = 8


def tables(run: str, seed: int) -> dict[int, pd.DataFrame]:
    folder = Path(run) / "distill" / f"races_seed{seed}_recovery"
    return {int(f.stem[-6:]): pd.read_csv(f) for f in sorted(folder.glob("eval_tokyo_epoch_*.csv"))}


def row(run: str, rnd: int, t: pd.DataFrame) -> dict:
    return dict(run=run, round=rnd, races=len(t), won=int((t.place == 1).sum()), finished=int(t.finished.sum()),
                margin_m=t.margin_m.mean(), car_s=t.car_collision_time_s.mean(), wall_s=t.wall_time_s.mean())


stage_1 = {(Path(run).name, r): t for run in args for r, t in tables(run, 1000).items()}
stage_2 = {(Path(run).name, r): t for run in args for r, t in tables(run, 2000).items()}
first = pd.DataFrame([row(run, r, t) for (run, r), t in stage_1.items()]).sort_values("margin_m", ascending=False)
print(f"stage 1 (8 races, seed 1000), the best {STAGE_2} of {len(first)} rounds:")
print(first.head(STAGE_2).round(2).to_string(index=False))
second = []
for key in zip(first.run.head(STAGE_2), first["round"].head(STAGE_2)):
    if key not in stage_2:
        print(f"{key[0]} round {key[1]}: no stage-2 races yet")
        continue
    second.append(row(*key, pd.concat([stage_1[key], stage_2[key]])))
second = pd.DataFrame(second)
print("\nstage 2 (24 races, seeds 1000 and 2000):")
print(second.round(2).to_string(index=False))
under = second[second.car_s < max_car]
pool = under if len(under) else second
pick = pool.loc[pool.margin_m.idxmax()]
print(f"\npick: {pick.run} round {pick['round']} (best margin {pick.margin_m:+.0f} m"
      + (f" under {max_car} s of car contact)" if len(under) else f"; none under {max_car} s of car contact)"))
