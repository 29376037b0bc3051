"""How each unfinished race ends, one row a race, from stuck.py's CSV: over its last 5 s the mean speed (m/s), the
share of steps touching a wall and a car, and the share facing the wrong way (more than 120 degrees off the course's
heading); then the counts of each kind of end (standing at a wall: below 1 m/s and at a wall at least half the time;
the wrong way: at least half the time; pinned by a car: standing with a car at least half the time; other).
Usage: python stuck_ends.py STUCK.csv"""
import sys

import pandas as pd

d = pd.read_csv(sys.argv[1])
rows = []
for race, x in d.groupby("race"):
    last = x.sort_values("t").tail(50)
    rows.append(dict(race=race, end_s=x.t.max(), progress_m=round(x.progress.max()), v=round(last.v.mean(), 1),
                     wall=round(last.wall.mean(), 2), car=round(last.car.mean(), 2),
                     wrong=round((last.heading_deg.abs() > 120).mean(), 2)))
t = pd.DataFrame(rows)
standing = t.v < 1.0
kind = pd.Series("other", index=t.index)
kind[standing & (t.car >= 0.5)] = "pinned by a car"
kind[standing & (t.wall >= 0.5) & (t.car < 0.5)] = "standing at a wall"
kind[t.wrong >= 0.5] = "the wrong way"
t["end"] = kind
print(t.to_string(index=False))
print()
print(t.end.value_counts().to_string())
