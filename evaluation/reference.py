"""Slow, obviously correct versions of `evaluation.preference` and `evaluation.stats`, for the tests
and the benchmarks.

Plain Python loops: per threshold, per prompt, per judged pair, per bootstrap replicate, with
`math.comb` and `math.lgamma`. The bootstrap functions use the very same resample indices as the
fast ones (`evaluation.stats.resample_chunks`), so for a given seed the results agree to float
tolerance. The percentile rule is written out here again.
"""

from __future__ import annotations

import math
import statistics

from scipy import stats as scipy_stats

from evaluation.preference import NO_INFORMATION_RHO, RHO_RANGE, ComparisonData
from evaluation.stats import resample_chunks


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


def _prior(counts):
    """Method-of-moments Beta prior (alpha, beta) from the prompts' (k, n); None where nothing or
    everything is accepted."""
    P = len(counts)
    k_all = sum(k for k, _ in counts)
    n_all = sum(n for _, n in counts)
    if k_all == 0 or k_all == n_all:
        return None
    mu = k_all / n_all
    spread = sum((k - n * mu) ** 2 / n for k, n in counts)
    excess = n_all - sum(n * n for _, n in counts) / n_all - (P - 1)
    rho = (spread / (mu * (1 - mu)) - (P - 1)) / excess if excess > 0 else NO_INFORMATION_RHO
    rho = min(max(rho, RHO_RANGE[0]), RHO_RANGE[1])
    return mu * (1 / rho - 1), (1 - mu) * (1 / rho - 1)


def _posterior_power(prior, accepted, rejected, j):
    """E[(1 - a)^j] for a ~ Beta(alpha + accepted, beta + rejected)."""
    alpha, beta = prior
    a, b = alpha + accepted, beta + rejected
    return math.exp(math.lgamma(b + j) - math.lgamma(b) + math.lgamma(a + b) - math.lgamma(a + b + j))


def _survival(k, n, prior, M, nothing_accepted):
    if n >= M:
        return 1 - math.comb(n - k, M) / math.comb(n, M)
    if prior is None:
        return 0.0 if nothing_accepted else 1.0
    return 1 - _posterior_power(prior, k, n - k, M)


def _g_hat(r, L, prior, M):
    """sum_{j < M} of C(r, j) / C(L, j) where j <= L, the posterior E[(1 - a)^j] beyond."""
    total = 0.0
    for j in range(M):
        if j <= L:
            total += math.comb(r, j) / math.comb(L, j)
        elif prior is not None:
            total += _posterior_power(prior, L - r, r, j)
    return total


def preference_sweep(data: ComparisonData, thresholds, *, max_attempts=100, level=0.95):
    """(estimate, lower, upper) lists, one entry per threshold."""
    M = max_attempts
    prompts = sorted({int(data.prompt_of[i]) for i in data.first.tolist()})
    scores = {p: [] for p in prompts}
    for p, s in zip(data.prompt_of.tolist(), data.score.tolist()):
        if p in scores:
            scores[p].append(s)
    pairs = {p: [] for p in prompts}
    for i, j, w in zip(data.first.tolist(), data.second.tolist(), data.first_win.tolist()):
        pairs[int(data.prompt_of[i])].append((float(data.score[i]), float(data.score[j]), w))
    out = ([], [], [])
    for t in thresholds:
        counts = [(sum(s < t for s in scores[p]), len(scores[p])) for p in prompts]
        prior = _prior(counts)
        nothing = sum(k for k, _ in counts) == 0
        W = N = 0.0
        for p in prompts:
            for si, sj, w in pairs[p]:
                W += w * float(si < t) + (1 - w) * float(sj < t)
                N += float(si < t) + float(sj < t)
        m = W / N if N else 0.5
        values, survival, G, W_p, N_p = [], [], [], [], []
        for p, (k, n) in zip(prompts, counts):
            weighted_b = weighted_a = Wp = Np = 0.0
            for si, sj, w in pairs[p]:
                ai, aj = float(si < t), float(sj < t)
                L = n - 2
                r = L - (k - ai - aj)
                g = _g_hat(int(r), L, prior, M)
                weighted_b += g * (w * ai + (1 - w) * aj) / 2
                weighted_a += g * (ai + aj) / 2
                Wp += w * ai + (1 - w) * aj
                Np += ai + aj
            S = _survival(k, n, prior, M, nothing)
            survival.append(S)
            G.append(weighted_a / len(pairs[p]))
            W_p.append(Wp)
            N_p.append(Np)
            values.append(m * (S - G[-1]) + weighted_b / len(pairs[p]))
        estimate = min(max(sum(values) / len(values), 0.0), 1.0)
        slope = sum(S - g for S, g in zip(survival, G)) / len(values)
        mean_sides = max(sum(N_p) / len(values), 1e-300)
        linearised = [v + slope * (Wp - m * Np) / mean_sides for v, Wp, Np in zip(values, W_p, N_p)]
        half = scipy_stats.t.ppf((1 + level) / 2, len(values) - 1) * statistics.stdev(linearised) / math.sqrt(
            len(values))
        out[0].append(estimate)
        out[1].append(min(max(estimate - half, 0.0), 1.0))
        out[2].append(min(max(estimate + half, 0.0), 1.0))
    return out


def choose_threshold(thresholds, lower, *, lower_bound=0.48):
    best = None
    for t, lo in zip(thresholds, lower):
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


def bootstrap_clustered_mean(values, groups, *, resamples=10_000, level=0.95, seed=0):
    wins, groups = list(values), list(groups)
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
