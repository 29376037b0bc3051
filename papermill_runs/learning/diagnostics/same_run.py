"""Do two runs compute the same? Compares two runs' per-epoch records (``metrics.jsonl``, or ``distill.jsonl`` for
DAgger rounds) on every key but the clock's, and prints the first difference or how many records agree to the last
digit, then the ratio of their wall clocks (LOG.md, "make race on another CPU").

    python same_run.py A/metrics.jsonl B/metrics.jsonl
"""
import json
import sys

CLOCK = {"charts/wall_s", "charts/sps", "distill/wall_s"}
"""The keys that measure the machine, not the computation (``distill/wall_time_s`` is the car's time at walls)."""


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(a_path, b_path):
    a, b = records(a_path), records(b_path)
    n = min(len(a), len(b))
    for i in range(n):
        keys = sorted(k for k in set(a[i]) | set(b[i]) if k not in CLOCK)
        diff = [k for k in keys if a[i].get(k) != b[i].get(k)]
        if diff:
            print(f"record {i} differs first: " + ", ".join(f"{k} {a[i].get(k)!r} / {b[i].get(k)!r}" for k in diff[:4]))
            return 1
    print(f"the first {n} records agree on every key but the clock's ({len(a)} and {len(b)} records)")
    for clock in sorted(CLOCK - {"charts/sps"}):
        if clock in a[n - 1] and clock in b[n - 1]:
            print(f"{clock} at record {n - 1}: {a[n - 1][clock]:.1f} / {b[n - 1][clock]:.1f} s "
                  f"= {a[n - 1][clock] / b[n - 1][clock]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
