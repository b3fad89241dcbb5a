"""Slow, obviously correct versions of `evaluation.stats`, for the tests and the benchmark.

Plain Python loops: per threshold, per prompt, per comparison, per bootstrap replicate. The
bootstrap functions use the very same resample indices as the fast ones
(`evaluation.stats.resample_chunks`, one row per replicate), so for a given seed the results
agree to float tolerance. The percentile rule is written out here again (position
``(B - 1) * q`` in the sorted replicates, linear interpolation).
"""

from __future__ import annotations

import math

import numpy as np

from evaluation.stats import NO_INFORMATION_RHO, RHO_RANGE, ComparisonData, Sweep, resample_chunks


def _rows(n, resamples, seed):
    for chunk in resample_chunks(n, resamples, seed):
        for row in chunk:
            yield [int(i) for i in row]


def _percentile(values, q):
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    lo, hi = math.floor(position), math.ceil(position)
    a, b = ordered[lo], ordered[hi]
    if a == b:
        return a
    return a + (b - a) * (position - lo)


def _interval(values, level):
    return _percentile(values, (1 - level) / 2), _percentile(values, (1 + level) / 2)


def _by_prompt(data: ComparisonData):
    """Per prompt: the scores of its completions, and its comparisons as (score_i, score_j, w)."""
    scores = [[] for _ in range(data.n_prompts)]
    for prompt, score in zip(data.prompt_of.tolist(), data.score.tolist()):
        scores[prompt].append(score)
    comparisons = [[] for _ in range(data.n_prompts)]
    for i, j, w in zip(data.first.tolist(), data.second.tolist(), data.first_win.tolist()):
        comparisons[int(data.prompt_of[i])].append((float(data.score[i]), float(data.score[j]), w))
    return scores, comparisons


def _prompt_counts(scores, comparisons, t):
    """(accepted k, completions n, W, N) of one prompt at threshold t."""
    accepted = 0
    for s in scores:
        if s < t:
            accepted += 1
    W = N = 0.0
    for si, sj, w in comparisons:
        if si < t:
            W += w
            N += 1
        if sj < t:
            W += 1 - w
            N += 1
    return accepted, len(scores), W, N


def _prior(counts):
    """Method-of-moments Beta prior (alpha, beta) of the acceptance rate from the prompts' (k, n).

    None where nothing or everything is accepted. E[k / n] = mu; with rho = 1 / (alpha + beta + 1),
    E[sum n (k / n - mu)^2] = mu (1 - mu) ((P - 1) + rho (n_all - sum n^2 / n_all - (P - 1))).
    """
    P = len(counts)
    k_all = n_all = n_squares = 0
    for k, n in counts:
        k_all += k
        n_all += n
        n_squares += n * n
    if k_all == 0 or k_all == n_all:
        return None
    mu = k_all / n_all
    spread = 0.0
    for k, n in counts:
        spread += (k - n * mu) ** 2 / n
    excess = n_all - n_squares / n_all - (P - 1)
    if excess > 0:
        rho = (spread / (mu * (1 - mu)) - (P - 1)) / excess
    else:
        rho = NO_INFORMATION_RHO  # one prompt, or one completion a prompt: no spread to measure
    rho = min(max(rho, RHO_RANGE[0]), RHO_RANGE[1])
    strength = 1 / rho - 1
    return mu * strength, (1 - mu) * strength


def _log_beta(x, y):
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


def _failure(k, n, prior, max_attempts, nothing_accepted):
    """E[(1 - a) ** max_attempts] for a ~ Beta(alpha + k, beta + n - k), the posterior of the prompt's acceptance."""
    if prior is None:
        return 1.0 if nothing_accepted else 0.0
    alpha, beta = prior
    a, b = alpha + k, beta + n - k
    return math.exp(_log_beta(a, b + max_attempts) - _log_beta(a, b))


def _threshold_stats(scores, comparisons, t, max_attempts):
    """Per prompt (k, n, W, N), the full-sample prior, per prompt failure and win rate given success."""
    counts = [_prompt_counts(scores[p], comparisons[p], t) for p in range(len(scores))]
    prior = _prior([(c[0], c[1]) for c in counts])
    nothing = sum(c[0] for c in counts) == 0
    failure = [_failure(c[0], c[1], prior, max_attempts, nothing) for c in counts]
    total_W = sum(c[2] for c in counts)
    total_N = sum(c[3] for c in counts)
    pooled = total_W / total_N if total_N > 0 else 0.5
    win = [c[2] / c[3] if c[3] > 0 else pooled for c in counts]
    return counts, prior, failure, win


def _estimate(prompts, counts, failure):
    """The estimator on the data set made of `prompts` (prompt indices, repeats allowed), failures given."""
    total_W = total_N = 0.0
    for p in prompts:
        total_W += counts[p][2]
        total_N += counts[p][3]
    pooled = total_W / total_N if total_N > 0 else 0.5
    total = 0.0
    for p in prompts:
        W, N = counts[p][2], counts[p][3]
        m = W / N if N > 0 else pooled
        total += (1 - failure[p]) * m
    return total / len(prompts)


def _replicate(prompts, counts, failure, win, max_attempts):
    """One bootstrap replicate: the estimator on the drawn prompts with the full-sample failures, plus the
    shift of the prior refitted on the drawn prompts, evaluated on all prompts; 0 if nothing drawn is
    accepted; clipped to [0, 1]."""
    drawn = [(counts[p][0], counts[p][1]) for p in prompts]
    if sum(k for k, _ in drawn) == 0:
        return 0.0
    prior = _prior(drawn)
    shift = 0.0
    for p in range(len(counts)):
        k, n = counts[p][0], counts[p][1]
        shift += (failure[p] - _failure(k, n, prior, max_attempts, False)) * win[p]
    value = _estimate(prompts, counts, failure) + shift / len(counts)
    return min(max(value, 0.0), 1.0)


def preference_curve(data: ComparisonData, thresholds, *, max_attempts=100) -> np.ndarray:
    scores, comparisons = _by_prompt(data)
    out = []
    for t in np.atleast_1d(thresholds).tolist():
        counts, _, failure, _ = _threshold_stats(scores, comparisons, t, max_attempts)
        out.append(_estimate(range(data.n_prompts), counts, failure))
    return np.array(out)


def preference_sweep(data: ComparisonData, thresholds, *, max_attempts=100, level=0.95, resamples=1000,
                     seed=0) -> Sweep:
    scores, comparisons = _by_prompt(data)
    replicate_prompts = list(_rows(data.n_prompts, resamples, seed))
    all_scores = data.score.tolist()
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=float))
    point, lower, upper, acceptance, failures = [], [], [], [], []
    for t in thresholds.tolist():
        counts, _, failure, win = _threshold_stats(scores, comparisons, t, max_attempts)
        point.append(_estimate(range(data.n_prompts), counts, failure))
        replicates = [_replicate(prompts, counts, failure, win, max_attempts) for prompts in replicate_prompts]
        lo, hi = _interval(replicates, level)
        lower.append(lo)
        upper.append(hi)
        acceptance.append(sum(1 for s in all_scores if s < t) / len(all_scores))
        failures.append(sum(failure) / data.n_prompts)
    return Sweep(thresholds=thresholds, preference=np.array(point), lower=np.array(lower), upper=np.array(upper),
                 acceptance=np.array(acceptance), failure=np.array(failures), level=level, resamples=resamples,
                 seed=seed, max_attempts=max_attempts)


def preference_sweep_exact_refit(data: ComparisonData, thresholds, *, max_attempts=100, level=0.95,
                                 resamples=1000, seed=0):
    """(lower, upper): the bootstrap with the whole estimator, prior included, recomputed on each replicate.

    What `evaluation.stats.preference_sweep`'s prior shift approximates (too slow for real sizes:
    every prompt's failure under every replicate's prior); for the tests.
    """
    scores, comparisons = _by_prompt(data)
    replicate_prompts = list(_rows(data.n_prompts, resamples, seed))
    lower, upper = [], []
    for t in np.atleast_1d(np.asarray(thresholds, dtype=float)).tolist():
        counts = [_prompt_counts(scores[p], comparisons[p], t) for p in range(data.n_prompts)]
        replicates = []
        for prompts in replicate_prompts:
            drawn = [(counts[p][0], counts[p][1]) for p in prompts]
            prior = _prior(drawn)
            nothing = sum(k for k, _ in drawn) == 0
            failure = {p: _failure(counts[p][0], counts[p][1], prior, max_attempts, nothing) for p in set(prompts)}
            replicates.append(_estimate(prompts, counts, failure))
        lo, hi = _interval(replicates, level)
        lower.append(lo)
        upper.append(hi)
    return np.array(lower), np.array(upper)


def choose_threshold(sweep: Sweep, *, lower_bound=0.48):
    best = None
    for t, lo in zip(sweep.thresholds.tolist(), sweep.lower.tolist()):
        if lo > lower_bound and (best is None or t < best):
            best = t
    return best


def bootstrap_ratio(numerators, denominators, *, resamples=10_000, level=0.95, seed=0):
    num, den = [float(x) for x in numerators], [float(x) for x in denominators]
    if not num or sum(den) == 0:
        return None, None, None
    replicates = []
    for rows in _rows(len(num), resamples, seed):
        top = sum(num[i] for i in rows)
        bottom = sum(den[i] for i in rows)
        replicates.append(math.inf if bottom == 0 else top / bottom)
    lo, hi = _interval(replicates, level)
    return sum(num) / sum(den), lo, hi


def bootstrap_mean(values, *, resamples=10_000, level=0.95, seed=0):
    v = [float(x) for x in values]
    if not v:
        return None, None, None
    replicates = [sum(v[i] for i in rows) / len(rows) for rows in _rows(len(v), resamples, seed)]
    lo, hi = _interval(replicates, level)
    return sum(v) / len(v), lo, hi


def bootstrap_preference(wins, groups, *, resamples=10_000, level=0.95, seed=0):
    wins, groups = list(wins), list(groups)
    if not wins:
        return None, None, None
    labels = sorted(set(groups))
    members = {label: [] for label in labels}
    for w, g in zip(wins, groups):
        members[g].append(float(w))
    replicates = []
    for rows in _rows(len(labels), resamples, seed):
        drawn = [w for i in rows for w in members[labels[i]]]
        replicates.append(sum(drawn) / len(drawn))
    lo, hi = _interval(replicates, level)
    return sum(float(w) for w in wins) / len(wins), lo, hi
