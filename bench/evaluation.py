"""Threshold selection statistics: vectorised `evaluation.stats` vs the naive loops of `evaluation.reference`.

    .venv/bin/python bench/evaluation.py
    .venv/bin/python bench/evaluation.py --prompts 500 --naive-curve 5 --naive-sweep 1   # a quick look

Synthetic quality data of the protocol's shape: 5,000 prompts x 20 scored completions (100,000),
10 judged pairs a prompt (50,000 comparisons), 1,000 candidate thresholds (log-spaced 1e-4 .. 0.5),
max_attempts 100.

- point estimates for all thresholds: `preference_curve` (goal < 1 s);
- the full selection: `preference_sweep` with 1,000 bootstrap resamples and 95 % intervals, then
  `choose_threshold` (goal < 10 s);
- baseline, same run: the reference's plain loops per threshold, per prompt (and, for the sweep,
  per replicate). The point loop runs all thresholds (`--naive-curve N`: an evenly spaced subset,
  extrapolated); the bootstrap loop, about 10 s a threshold (each replicate refits the prior and
  recomputes all 5,000 prompts' failures under it) and so about three hours for all, runs
  `--naive-sweep` (2) thresholds from the middle of the range and is extrapolated linearly (its
  cost is the same for every threshold). Its results are checked against ours (same resample
  indices for the seed).

The estimator (`evaluation.stats` docstring): per threshold an empirical-Bayes Beta-binomial
failure probability per prompt, and a bootstrap that refits the prior on every replicate.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import reference  # noqa: E402
from evaluation.stats import ComparisonData, choose_threshold, preference_curve, preference_sweep  # noqa: E402

GOALS = {"curve_s": 1.0, "selection_s": 10.0}


def make_data(prompts, completions, comparisons, seed=0):
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1.2, prompts)
    quality = rng.normal(0, 1, (prompts, completions))
    score = expit(-6 + difficulty[:, None] - 1.2 * quality + 0.8 * rng.normal(0, 1, quality.shape))
    i = rng.integers(0, completions, (prompts, comparisons))
    j = (i + rng.integers(1, completions, (prompts, comparisons))) % completions
    base = (np.arange(prompts) * completions)[:, None]
    first, second = (base + i).ravel(), (base + j).ravel()
    q = quality.ravel()
    u = 1.5 * (q[first] - q[second]) + rng.logistic(0, 1, first.size)
    win = np.where(np.abs(u) < 0.6, 0.5, (u > 0).astype(float))
    return ComparisonData(np.repeat(np.arange(prompts), completions), score.ravel(), first, second, win, prompts)


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=5000)
    parser.add_argument("--completions", type=int, default=20)
    parser.add_argument("--comparisons", type=int, default=10)
    parser.add_argument("--thresholds", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--naive-curve", type=int, default=0, help="thresholds the naive point loop runs (0: all)")
    parser.add_argument("--naive-sweep", type=int, default=2, help="thresholds the naive bootstrap loop runs")
    args = parser.parse_args()

    data = make_data(args.prompts, args.completions, args.comparisons)
    thresholds = np.geomspace(1e-4, 0.5, args.thresholds)
    K = thresholds.size
    print(f"{data.score.size:,} scored completions, {args.prompts:,} prompts, {data.first.size:,} comparisons, "
          f"{K:,} thresholds, {args.resamples:,} resamples, max_attempts 100")

    curve_s, curve = timed(lambda: preference_curve(data, thresholds), 5)

    def selection():
        sweep = preference_sweep(data, thresholds, resamples=args.resamples, seed=0)
        return sweep, choose_threshold(sweep)

    selection_s, (sweep, chosen) = timed(selection, 3)
    assert np.array_equal(sweep.preference, curve)

    subset = np.unique(np.linspace(0, K - 1, args.naive_curve or K).round().astype(int))
    began = time.perf_counter()
    naive_curve = reference.preference_curve(data, thresholds[subset])
    naive_curve_s = (time.perf_counter() - began) * K / subset.size
    curve_error = np.abs(naive_curve - curve[subset]).max()

    subset_sweep = np.unique(np.linspace(K // 3, 2 * K // 3, args.naive_sweep).round().astype(int))
    began = time.perf_counter()
    naive_sweep = reference.preference_sweep(data, thresholds[subset_sweep], resamples=args.resamples, seed=0)
    naive_sweep_s = (time.perf_counter() - began) * K / subset_sweep.size
    sweep_error = max(np.abs(naive_sweep.lower - sweep.lower[subset_sweep]).max(),
                      np.abs(naive_sweep.upper - sweep.upper[subset_sweep]).max())

    how = "all run" if subset.size == K else f"extrapolated from {subset.size} thresholds"
    print(f"point estimates, all thresholds: ours {curve_s:.3f} s, naive loop {naive_curve_s:.1f} s "
          f"({how}; {naive_curve_s / curve_s:.0f}x)   "
          f"goal < {GOALS['curve_s']:.0f} s; max |difference| {curve_error:.1e}")
    print(f"selection with 95 % intervals: ours {selection_s:.2f} s, naive loop ~{naive_sweep_s:,.0f} s "
          f"(extrapolated from {subset_sweep.size} thresholds x {args.resamples} replicates; "
          f"{naive_sweep_s / selection_s:,.0f}x)   goal < {GOALS['selection_s']:.0f} s; "
          f"max |difference| of bounds {sweep_error:.1e}")
    if chosen is None:
        print("chosen threshold: none (no lower bound above 0.48)")
    else:
        k = int(np.flatnonzero(sweep.thresholds == chosen)[0])
        print(f"chosen threshold {chosen:.5f}: preference {sweep.preference[k]:.3f} "
              f"[{sweep.lower[k]:.3f}, {sweep.upper[k]:.3f}], acceptance {sweep.acceptance[k]:.2f}, "
              f"failure {sweep.failure[k]:.3f}")


if __name__ == "__main__":
    main()
