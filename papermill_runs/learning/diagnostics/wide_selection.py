"""IV-D in two stages over DAgger runs' rounds (the twenty-third session's selection, README "A wider selection").
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
    return dict(run=Path(run).name, round=rnd, races=len(t), won=int((t.place == 1).sum()), finished=int(t.finished.sum()),
                margin_m=t.margin_m.mean(), car_s=t.car_collision_time_s.mean(), wall_s=t.wall_time_s.mean())


first = pd.DataFrame([row(run, r, t) for run in args for r, t in tables(run, 1000).items()])
first = first.sort_values("margin_m", ascending=False)
print(f"stage 1 (8 races, seed 1000), the best {STAGE_2} of {len(first)} rounds:")
print(first.head(STAGE_2).round(2).to_string(index=False))
second = []
for _, r in first.head(STAGE_2).iterrows():
    run = next(a for a in args if Path(a).name == r.run)
    more = tables(run, 2000).get(r["round"])
    if more is None:
        print(f"{r.run} round {r['round']}: no stage-2 races yet")
        continue
    second.append(row(run, r["round"], pd.concat([tables(run, 1000)[r["round"]], more])))
second = pd.DataFrame(second)
print("\nstage 2 (24 races, seeds 1000 and 2000):")
print(second.round(2).to_string(index=False))
under = second[second.car_s < max_car]
pool = under if len(under) else second
pick = pool.loc[pool.margin_m.idxmax()]
print(f"\npick: {pick.run} round {pick['round']} (best margin {pick.margin_m:+.0f} m"
      + (f" under {max_car} s of car contact)" if len(under) else f"; none under {max_car} s of car contact)"))
