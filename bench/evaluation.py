"""Threshold selection: the estimator of `evaluation.preference` against the previous one, side by side.

    .venv/bin/python bench/evaluation.py                                   # study + speed
    .venv/bin/python bench/evaluation.py --designs short --replicates 300 --old-replicates 200 --skip-speed

1. The simulation study (`evaluation.simulation`): for each world, `--replicates` data sets (400
   prompts, 101-130 scored completions each, judged pairs as the world says) estimated by the
   current estimator, and the first `--old-replicates` of the same data sets by the previous one
   (`--baseline-rev`'s `evaluation/stats.py`, read from git: an empirical-Bayes failure
   probability and a bootstrap over prompts with `--old-resamples` resamples). Printed per
   world: mean error in points at thresholds accepting 5-95 %, interval coverage at 5, 20, 50,
   80, 90 %, and how often the chosen threshold's true preference is at least 47 %. Then the
   same with 12-24 completions a prompt (`--designs short`), where the current estimator
   extrapolates (and the product chooses no threshold unless asked to).
2. Speed (`--skip-speed` to leave out): both estimators on 5,000 prompts x 20 completions, 10
   judged pairs a prompt, 1,000 thresholds; the ratio of their times.
"""

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation import simulation  # noqa: E402
from evaluation.preference import preference_sweep  # noqa: E402


def load_old(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:evaluation/stats.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_stats.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_stats", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_stats"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def old_estimator(old, resamples):
    def estimate(data, thresholds, max_attempts):
        converted = old.ComparisonData(data.prompt_of, data.score, data.first, data.second, data.first_win,
                                       data.n_prompts)
        sweep = old.preference_sweep(converted, thresholds, max_attempts=max_attempts, resamples=resamples, seed=0)
        return sweep.preference, sweep.lower, sweep.upper
    return estimate


def study(args, old, completions, label):
    print(f"\n== {label}: {completions[0]}-{completions[1]} scored completions a prompt ==")
    for world in simulation.worlds(completions=completions):
        began = time.perf_counter()
        new = simulation.run_study(world, args.replicates, seed=args.seed)
        new_s = time.perf_counter() - began
        began = time.perf_counter()
        before = simulation.run_study(world, args.old_replicates, seed=args.seed,
                                      estimator=old_estimator(old, args.old_resamples))
        old_s = time.perf_counter() - began
        print(f"\n{world.name}: {world.description}")
        print(f" current estimator, {new.replicates} replicates ({new_s / new.replicates * 1000:.0f} ms each):")
        print("\n".join(new.lines()))
        print(f" previous estimator, {before.replicates} replicates, {args.old_resamples} bootstrap resamples "
              f"({old_s / before.replicates * 1000:.0f} ms each):")
        print("\n".join(before.lines()))


def timed(fn, repeat=3):
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def speed(old):
    """Both estimators over 1,000 thresholds, median of 3: the shape of the previous benchmark (5,000
    prompts x 20 completions, extrapolated by the current one) and the recommended design."""
    print("\n== speed: 1,000 thresholds, M = 100, median of 3 runs ==")
    for prompts, completions, pairs in ((5000, 20, 10), (1000, 110, 10)):
        world = simulation.World("speed", "", prompts=prompts, completions=(completions, completions), pairs=(pairs, pairs))
        data = world.dataset(np.random.default_rng(0))
        thresholds = np.geomspace(1e-4, 0.5, 1000)
        converted = old.ComparisonData(data.prompt_of, data.score, data.first, data.second, data.first_win,
                                       data.n_prompts)
        new_s = timed(lambda: preference_sweep(data, thresholds))  # noqa: B023 - called at once
        old_s = timed(lambda: old.preference_sweep(converted, thresholds, resamples=1000, seed=0))  # noqa: B023
        print(f"{prompts:,} prompts x {completions} completions, {prompts * pairs:,} judged pairs: "
              f"current {new_s:.2f} s, previous (1,000 resamples) {old_s:.2f} s; current / previous "
              f"{new_s / old_s:.2f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--old-replicates", type=int, default=500)
    parser.add_argument("--old-resamples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-rev", default="15f5572")
    parser.add_argument("--designs", nargs="*", choices=["recommended", "short"], default=["recommended", "short"],
                        help="which simulation studies to run (none: only the speed comparison)")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    old = load_old(args.baseline_rev)
    if "recommended" in args.designs:
        study(args, old, (101, 130), "the recommended design")
    if "short" in args.designs:
        study(args, old, (12, 24), "short prompts")
    if not args.skip_speed:
        speed(old)


if __name__ == "__main__":
    main()
