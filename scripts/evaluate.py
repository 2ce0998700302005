#!/usr/bin/env python3
"""The detector's evaluation protocol, in one run.

1. NAB: `outagewatch backtest` over every labelled file of the windows file,
   scored with the NAB rules (nabscore.py) under all three profiles, with
   the threshold NAB sweeps over the whole set (the plain score).
2. Leave-one-file-out: for each file, any `--tune` setting is chosen on
   the other files alone, and the held-out file is scored with that
   choice; the per-file scores and their mean. The score threshold is
   fixed at 0.5, where the product alerts (nothing is chosen on NAB when
   there is no `--tune`); beside it, for comparison, the same with the
   threshold also chosen on the other files.
3. The simulator: `outagewatch simulate evaluate` for each seed (its hard
   cases included), with the figures of every seed and their totals.

Files never seen are scored with the same command: point `--data-dir` and
`--windows` at them.

    python3 scripts/evaluate.py                      # the defaults
    python3 scripts/evaluate.py --tune alert_p=1e-6,1e-7,1e-8
    python3 scripts/evaluate.py --skip-sim --data-dir DIR --windows FILE

Settings are passed to the binary as OUTAGEWATCH_DETECT__<NAME> variables.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
ALERT_SCORE = 0.5
PROFILES = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]


def load_nabscore(path: str):
    spec = importlib.util.spec_from_file_location("nabscore", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load nabscore from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["nabscore"] = module
    spec.loader.exec_module(module)
    return module


def settings_env(combo: dict) -> dict:
    env = dict(os.environ)
    for name, value in combo.items():
        env[f"OUTAGEWATCH_DETECT__{name.upper()}"] = value
    return env


def backtest(binary: str, files: list[str], out: str, combo: dict) -> None:
    subprocess.run(
        [binary, "backtest", "--out", out, *files],
        env=settings_env(combo),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def parse_tune(specs: list[str]) -> list[dict]:
    """Every combination of the `--tune name=v1,v2` values (the first
    combination first: the defaults, when they are listed first)."""
    axes = []
    for spec in specs:
        name, _, values = spec.partition("=")
        if not values:
            raise SystemExit(f"--tune takes name=v1,v2,...; got {spec!r}")
        axes.append([(name.strip(), v.strip()) for v in values.split(",")])
    return [dict(c) for c in itertools.product(*axes)] if axes else [{}]


def describe(combo: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in combo.items()) or "defaults"


def nab(args, nabscore) -> None:
    with open(args.windows) as fh:
        windows = json.load(fh)
    keys = sorted(windows)
    files = [os.path.join(args.data_dir, k) for k in keys]
    combos = parse_tune(args.tune)
    profiles = nabscore.load_profiles(None)
    loaded = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, combo in enumerate(combos):
            out = os.path.join(tmp, f"run{i}")
            backtest(args.binary, files, out, combo)
            _, fds, _ = nabscore.load_detector(out, windows, keys, data_dir=args.data_dir, detector="run")
            loaded[i] = {fd.key: fd for fd in fds}

    print(f"## NAB: {len(keys)} files of {args.windows}")
    default = loaded[0]
    print(f"settings: {describe(combos[0])}")
    for p in PROFILES:
        r = nabscore.evaluate(list(default.values()), p, profiles[p], "outagewatch")
        t = r.totals
        print(
            f"  {p:19s} NAB {r.normalised:6.2f}  (threshold {r.threshold:.4f}, windows "
            f"{t.win_hit}/{t.win_hit + t.win_miss}, FP rows {t.fp})"
        )

    prof = profiles["standard"]
    print()
    print(f"## Leave-one-file-out (standard profile): each file scored with what the other {len(keys) - 1} chose")
    # The score's 0.5 is where the product alerts (the evidence for a
    # problem reaches alert_p), so nothing needs choosing on NAB: the
    # threshold is fixed there, and only `--tune` settings are chosen.
    held_out(nabscore, loaded, keys, combos, args, prof, tune_threshold=False)
    print()
    held_out(nabscore, loaded, keys, combos, args, prof, tune_threshold=True)


def held_out(nabscore, loaded, keys, combos, args, prof, tune_threshold: bool) -> None:
    """Leave-one-file-out: for each file, the `--tune` combination (and,
    with `tune_threshold`, the score threshold) that scores best on the
    other files, and the held-out file's score with that choice."""
    chosen = [c.split("=")[0] for c in args.tune]
    if tune_threshold:
        chosen.insert(0, "the score threshold (the middle of the range that scores best)")
        print(f"  tuned: {', '.join(chosen)}")
    else:
        print(f"  threshold fixed at the product's alert, {ALERT_SCORE}; tuned: {', '.join(chosen) or 'nothing'}")
    held_scores = []
    for key in keys:
        best = None
        for i, combo in enumerate(combos):
            others = [fd for k, fd in loaded[i].items() if k != key]
            if tune_threshold:
                raw, threshold = middle_threshold(nabscore, others, prof)
            else:
                threshold = ALERT_SCORE
                raw = nabscore.evaluate(others, "standard", prof, "outagewatch", threshold).raw
            # Ties keep the earlier combination (the defaults first).
            if best is None or raw > best[0] + 1e-9:
                best = (raw, i, threshold)
        _, i, threshold = best
        held = nabscore.evaluate([loaded[i][key]], "standard", prof, "outagewatch", threshold)
        t = held.totals
        held_scores.append(held.normalised)
        print(
            f"  {os.path.basename(key):28s} {held.normalised:6.2f}  (threshold {threshold:.4f}"
            f"{', ' + describe(combos[i]) if args.tune else ''}; windows {t.win_hit}/"
            f"{t.win_hit + t.win_miss}, FP rows {t.fp})"
        )
    mean = sum(held_scores) / len(held_scores)
    print(f"  mean of the held-out files: {mean:.2f}")


def middle_threshold(nabscore, files, prof) -> tuple[float, float]:
    """The best raw score over `files` and the threshold in the middle of
    the range of thresholds that reach it. NAB's sweep returns the range's
    top, an anomaly score of one of these rows: on other files a row scored
    a hair below it would be lost for no reason the tuning files gave."""
    thr, raw = nabscore.sweep(files, prof)
    best = int(raw.argmax())
    # thr runs from +inf down; every threshold in (thr[j], thr[best]] keeps
    # the same detections, where j is the first candidate below the plateau.
    j = best + 1
    while j < len(raw) and abs(raw[j] - raw[best]) < 1e-12:
        j += 1
    top = float(thr[best])
    if j >= len(thr):
        return float(raw[best]), top
    low = float(thr[j])
    if top == float("inf"):
        return float(raw[best]), low * 1.5 if low > 0 else 1.0
    return float(raw[best]), (top + low) / 2


def simulate(args) -> None:
    seeds = [int(s) for s in args.seeds.split(",") if s]
    print()
    print(f"## Simulator: seeds {', '.join(map(str, seeds))} (simulate evaluate --end-unix {args.end_unix})")

    def run(seed: int):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            path = f.name
        cmd = [args.binary, "simulate", "evaluate", "--end-unix", str(args.end_unix),
               "--seed", str(seed), "--json", path, *args.sim_arg]
        p = subprocess.run(cmd, capture_output=True, text=True)
        try:
            with open(path) as fh:
                figures = json.load(fh)
        except (OSError, ValueError):
            figures = None
        os.unlink(path)
        return seed, p, figures

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run, seeds))
    for seed, p, figures in results:
        print(f"### seed {seed} (exit {p.returncode})")
        if figures is None:
            sys.stdout.write(p.stdout + p.stderr)
            continue
        keep = [line for line in p.stdout.splitlines() if not line.startswith("  ")]
        print("\n".join(keep))
    figures = [f for _, _, f in results if f]
    if figures:
        summary(figures)


def summary(figures: list[dict]) -> None:
    """Totals over the seeds: outages found, delays, false incidents, the
    hard cases' must-holds."""
    outages = sum(f["outages"] for f in figures)
    detected = sum(f["detected"] for f in figures)
    days = sum(f["service_days"] for f in figures)
    false = sum(f["false_incidents"] for f in figures)
    delays = sorted(o["problem_after_min"] for f in figures for o in f["outage_list"]
                    if o["problem_after_min"] is not None)
    median = None
    if delays:
        n = len(delays)
        median = delays[n // 2] if n % 2 else (delays[n // 2 - 1] + delays[n // 2]) / 2
    quiet = [o for f in figures for o in f["outage_list"] if o["case"] == "quiet"]
    late = sum(r["opened_day_3_on"] for f in figures for r in f["recurring"])
    steps = [c["incidents"] for f in figures for c in f["steps"]]
    growth = [c["incidents"] for f in figures for c in f["growth"]]
    print(f"### all {len(figures)} seeds")
    print(f"  outages found: {detected}/{outages} = {100 * detected / max(outages, 1):.1f}%"
          f" (quiet ones {sum(o['problem_after_min'] is not None for o in quiet)}/{len(quiet)})")
    print(f"  median delay to problem: {median} min")
    print(f"  false incidents: {false} in {days:.0f} service-days = {1000 * false / max(days, 1):.2f} per 1,000")
    print(f"  recurring bursts: {late} incidents opened after their second day")
    print(f"  incidents per lasting step: {steps}; per gradual growth: {growth}")
    failed = sorted({k for f in figures for k, ok in f["verdicts"].items() if not ok})
    print(f"  must-holds failed on some seed: {', '.join(failed) or 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "outagewatch"))
    ap.add_argument("--data-dir", default=os.path.join(SHARED, "data", "nab"))
    ap.add_argument("--windows", help="default: combined_windows_realTweets_dev.json in --data-dir")
    ap.add_argument("--nabscore", default=os.path.join(SHARED, "tools", "nab", "nabscore.py"))
    ap.add_argument("--tune", action="append", default=[], metavar="NAME=V1,V2",
                    help="a [detect] setting to choose by leave-one-file-out (repeatable)")
    ap.add_argument("--seeds", default="1,2,3,4")
    ap.add_argument("--end-unix", type=int, default=1_795_000_000)
    ap.add_argument("--sim-arg", action="append", default=[], help="passed to simulate evaluate")
    ap.add_argument("--jobs", type=int, default=2, help="simulator runs at once")
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--skip-nab", action="store_true")
    args = ap.parse_args()
    args.windows = args.windows or os.path.join(args.data_dir, "combined_windows_realTweets_dev.json")
    if not os.path.exists(args.binary):
        raise SystemExit(f"{args.binary} not found: run cargo build --release first")
    if not args.skip_nab:
        nab(args, load_nabscore(args.nabscore))
    if not args.skip_sim:
        simulate(args)


if __name__ == "__main__":
    main()
