#!/usr/bin/env python3
"""Does one score threshold mean the same on a quiet series and a busy one?

Writes synthetic 5-minute series (`timestamp,value`), runs `outagewatch
backtest` over them and prints, per kind of event, the highest score each
event reached and how many reached the alert (0.5):

- quiet series, 0.8 reports per row on average with a daily wave (most
  rows 0 or 1), with surges of three hours at 4x, 5x, 6x and 8x their usual
  count, one every other day from day 21, at random hours;
- busy series, 40 per row, with lone rows at 1.5x to 3x (blips: one hit is
  a `possible`, never a problem) and half-hour outages at 5x.

A score that means the same everywhere puts every surge and outage over
0.5 and every blip and every ordinary week under it. These series are
Poisson around a fixed daily wave, with no drift and no overdispersion:
they show what a setting does to the evidence, not what it costs in false
incidents, which is the simulator's to say (`scripts/evaluate.py`).
Usage:

    cargo build --release && python3 scripts/quiet_scores.py [--series 8]

Settings are passed as OUTAGEWATCH_DETECT__<NAME> variables, as
`scripts/evaluate.py` does.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import statistics
import subprocess
import tempfile
from datetime import datetime, timedelta

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS_A_DAY = 288
DAYS = 35
START = datetime(2026, 1, 5)
ALERT = 0.5


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal for large ones."""
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def usual(row: int, mean: float) -> float:
    phase = (row % ROWS_A_DAY) / ROWS_A_DAY * 2 * math.pi
    return mean * (1 + 0.5 * math.sin(phase))


def series(rng: random.Random, mean: float, events: list[tuple[int, int, float]]) -> list[int]:
    """Counts for every row; `events` are (first row, rows, factor)."""
    out = []
    for r in range(DAYS * ROWS_A_DAY):
        factor = next((f for a, n, f in events if a <= r < a + n), 1.0)
        out.append(poisson(rng, usual(r, mean) * factor))
    return out


def write(path: str, counts: list[int]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value"])
        for r, c in enumerate(counts):
            w.writerow([(START + timedelta(minutes=5 * r)).strftime("%Y-%m-%d %H:%M:%S"), c])


def scores(path: str) -> list[float]:
    with open(path) as f:
        return [float(row["anomaly_score"]) for row in csv.DictReader(f)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(REPO, "target/release/outagewatch"))
    ap.add_argument("--series", type=int, default=8, help="series of each kind")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    plans = []  # (name, mean, events: (first row, rows, factor, label))
    for k in range(args.series):
        surges = []
        for n, day in enumerate(range(21, DAYS - 1, 2)):
            factor = [4.0, 5.0, 6.0, 8.0][(n + k) % 4]
            at = day * ROWS_A_DAY + rng.randrange(ROWS_A_DAY - 36)
            surges.append((at, 36, factor, f"quiet surge {factor:g}x, 3 h"))
        plans.append((f"quiet-{k}", 0.8, surges))
        busy = []
        for n, day in enumerate(range(21, DAYS - 1, 2)):
            at = day * ROWS_A_DAY + rng.randrange(ROWS_A_DAY - 6)
            if n % 2:
                busy.append((at, 6, 5.0, "busy outage 5x, 30 min"))
            else:
                factor = [1.5, 2.0, 3.0][(n // 2 + k) % 3]
                busy.append((at, 1, factor, f"busy blip {factor:g}x, one row"))
        plans.append((f"busy-{k}", 40.0, busy))

    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, mean, events in plans:
            path = os.path.join(tmp, f"{name}.csv")
            write(path, series(rng, mean, [(a, n, f) for a, n, f, _ in events]))
            files.append(path)
        out = os.path.join(tmp, "out")
        subprocess.run([args.binary, "backtest", "--out", out, *files], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        peaks: dict[str, list[float]] = {}
        for (name, _, events), path in zip(plans, files):
            s = scores(os.path.join(out, os.path.basename(path)))
            for a, n, _, label in events:
                # The event and the hour after it (a confirmation may come late).
                peaks.setdefault(label, []).append(max(s[a : a + n + 12]))
            kind = "quiet" if name.startswith("quiet") else "busy"
            ordinary = max(s[14 * ROWS_A_DAY : 21 * ROWS_A_DAY])
            peaks.setdefault(f"{kind} ordinary week (days 14-21)", []).append(ordinary)

    print(f"{'event':38} {'n':>3} {'>= 0.5':>7} {'median':>7} {'min':>6} {'max':>6}")
    for label in sorted(peaks):
        v = peaks[label]
        over = sum(x >= ALERT for x in v)
        print(f"{label:38} {len(v):3} {over:7} {statistics.median(v):7.3f} {min(v):6.3f} {max(v):6.3f}")


if __name__ == "__main__":
    main()
