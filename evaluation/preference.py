"""Threshold selection's estimator: how often people prefer the filtered generator. Pure numpy/scipy.

The estimand
------------
For a classifier and a threshold ``t``, the filtered generator draws completions of a prompt until
one scores below ``t``, at most ``M`` (``max_attempts``, the protocol's 100) draws; if none is
accepted its answer loses. ``Q(t)`` is the probability that a person prefers the filtered
generator's completion to an unfiltered one of the same prompt (a tie counts half, a filter
failure is a loss), for a prompt drawn from the prompt distribution. 50 % means no quality loss.

For one prompt with acceptance rate ``a`` (the chance that one draw scores below ``t``) and
``w(x, y)`` the chance that ``x`` is preferred to ``y``,

    Q_p = (1 - (1 - a)^M) E[w(x, y) | s(x) < t]  =  g(a) b,
    b = E[w(x, y) [s(x) < t]],   g(a) = (1 - (1 - a)^M) / a = sum_{j < M} (1 - a)^j

(``x``, ``y`` independent unfiltered draws; ``g`` is the expected number of draws the filter
makes). ``Q(t)`` is the mean of ``Q_p`` over prompts.

The data (`ComparisonData`)
---------------------------
Per prompt, ``n_p`` completions drawn i.i.d. from the unfiltered generator, each scored; pairs of
distinct completions chosen independently of their scores and texts (a comparison set's random
pairs), judged by people (``w`` = 1, 0.5, 0 for the first better, same, second better).

The estimator (unbiased, up to terms of order 1/P, when every prompt has at least ``M + 1`` completions)
--------------------------------------------------------------------------------------------------
For a judged pair ``(i, j)`` of a prompt, with ``A_i = [s_i < t]``:

- ``b_hat = (w A_i + (1 - w) A_j) / 2`` is unbiased for ``b`` (each side in turn plays ``x``);
- the pair's other ``L = n_p - 2`` completions, ``r`` of them rejected, are independent of the
  pair, and ``C(r, j) / C(L, j)`` is unbiased for ``(1 - a)^j`` (``j <= L``: the chance that ``j``
  of them chosen at random are all rejected), so ``g_hat = sum_{j < M} C(r, j) / C(L, j)`` is
  unbiased for ``g(a)`` when ``L >= M - 1``, and ``g_hat * b_hat`` is unbiased for ``Q_p``.

That alone is a Horvitz-Thompson estimate: a rarely accepted side is weighted by ~``1 / a``, so
its variance is large at strict thresholds. It is used only as a correction to a lower-variance
prediction (a difference estimator): with ``m_hat`` the pooled win rate of accepted sides,
``sum (w A_i + (1 - w) A_j) / sum (A_i + A_j)`` over all pairs, and ``S_hat_p`` an unbiased
estimate of ``1 - (1 - a)^M`` from all ``n_p`` completions (``1 - C(n_p - k_p, M) / C(n_p, M)``,
``k_p`` accepted),

    Q_hat_p = m_hat S_hat_p + mean over the prompt's pairs of g_hat (b_hat - m_hat (A_i + A_j) / 2).

For any fixed ``m`` the correction's expectation is ``Q_p - m S_p`` (``g_hat (A_i + A_j) / 2`` is
unbiased for ``g(a) a = S_p``), so ``Q_hat_p`` is unbiased for every value of ``m``; ``m_hat`` only
decides the variance, least when the accepted completions' win rate varies little across prompts.
Estimating ``m`` from the same data adds a bias of order ``1 / P`` (its coefficient, the mean of
``S_hat_p - g_hat (A_i + A_j) / 2``, has expectation 0). ``Q_hat`` is the mean of ``Q_hat_p`` over
the prompts with at least one judged pair, every prompt weighing the same.

The interval: ``Q_hat`` is a mean of independent per-prompt values plus ``m_hat``'s effect, so its
standard error comes from the linearised per-prompt values (the delta method)

    psi_p = Q_hat_p + A (W_p - m_hat N_p) / mean_p N_p,   A = mean_p (S_hat_p - G_p),

``W_p``, ``N_p`` the prompt's sums of ``w A_i + (1 - w) A_j`` and ``A_i + A_j``, ``G_p`` its mean of
``g_hat (A_i + A_j) / 2``: their standard deviation over ``sqrt(P)``, and the interval is Student's
t with ``P - 1`` degrees of freedom. ``A`` has expectation 0, so with plenty of data ``m_hat``'s
term vanishes; where few sides are accepted it does not, and it widens the interval. With very few
accepted sides the spread of their win values says little, so `choose_threshold` ignores
thresholds with fewer than `MIN_ACCEPTED_SIDES` of them. Estimate and interval are clipped to
[0, 1] (the unclipped mean is the unbiased one; clipping acts only on data too thin to trust).
The intervals hold one threshold at a time; choosing the lowest of many that passes is not
covered by them, so the simulation measures the chosen threshold's true preference directly.
Coverage and bias are shown by simulation (`evaluation.simulation`; BENCHMARKS.md, "Threshold
selection").

Prompts with fewer than ``M + 1`` completions
---------------------------------------------
No estimator is unbiased for ``(1 - a)^j`` beyond ``j = n`` from ``n`` draws. There the terms of
``g_hat`` beyond ``j = L`` and ``1 - S_hat_p`` come from an empirical-Bayes model: acceptance
across prompts ``a ~ Beta(alpha, beta)`` fitted by moments at each threshold (`beta_prior`), and
posterior expectations ``E[(1 - a)^j]`` given the prompt's own counts. The posterior shrinks each
prompt towards the pooled acceptance, and a prompt's acceptance is tied to how often its
accepted completions win, so the estimate can then be too high by several points at any
threshold (up to 18 with 4-5 completions a prompt in the simulation; BENCHMARKS.md):
`Sweep.short_prompts` says how many prompts rely on it, and `evaluation.thresholds` chooses no
threshold from such data unless asked to. A comparison set meant for threshold selection should
draw at least ``M + 1`` completions a prompt (only a few pairs of them need judging).

Edge cases: prompts without a judged pair are left out (they say nothing of ``b``); a NaN score is
never below a threshold; at a threshold where nothing is accepted the estimate is 0, where
everything is, 1/2 (each judged pair counts once each way). All thresholds are computed at once: scores are placed among
the sorted thresholds with ``searchsorted`` and counted per (prompt, threshold) with ``bincount``
and ``cumsum``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as scipy_stats

#: the Beta prior's overdispersion rho = 1 / (alpha + beta + 1) is clipped to this range
RHO_RANGE = (1e-4, 0.99)
#: rho where spread across prompts cannot be told from binomial noise (one prompt, or one
#: completion a prompt): a prior worth one completion at the pooled rate
NO_INFORMATION_RHO = 0.5
#: a threshold is chosen only where at least this many judged sides are accepted: below that the
#: interval's standard error, estimated from those few win values, cannot be trusted
MIN_ACCEPTED_SIDES = 20
#: pairs x thresholds arrays are built in blocks of thresholds of at most this many cells
BLOCK_CELLS = 1 << 21


@dataclass(frozen=True)
class ComparisonData:
    prompt_of: np.ndarray  # int, per completion: its prompt's index 0..n_prompts-1
    score: np.ndarray  # float, per completion: the classifier's score
    first: np.ndarray  # int, per judged pair: index of the first completion
    second: np.ndarray  # int, per judged pair: index of the second completion (same prompt, another one)
    first_win: np.ndarray  # float, per judged pair: 1 first better, 0.5 same, 0 second better
    n_prompts: int


@dataclass(frozen=True)
class Sweep:
    thresholds: np.ndarray
    preference: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    standard_error: np.ndarray
    acceptance: np.ndarray  # per threshold: share of the used prompts' completions scoring below it
    failure: np.ndarray  # per threshold: mean estimated probability that max_attempts draws all fail
    level: float
    max_attempts: int
    prompts: int  # prompts with at least one judged pair (the others are left out)
    short_prompts: int  # of those, with fewer than max_attempts + 1 completions (the fitted prior fills in)
    judgements: int
    accepted_sides: np.ndarray  # per threshold: judged sides scoring below it (what m_hat rests on)


def _validated(data: ComparisonData):
    prompt_of = np.asarray(data.prompt_of, dtype=np.int64)
    score = np.asarray(data.score, dtype=np.float64)
    first = np.asarray(data.first, dtype=np.int64)
    second = np.asarray(data.second, dtype=np.int64)
    first_win = np.asarray(data.first_win, dtype=np.float64)
    P = int(data.n_prompts)
    if P < 1:
        raise ValueError("no prompts")
    if prompt_of.shape != score.shape or prompt_of.ndim != 1:
        raise ValueError("prompt_of and score need one entry per completion")
    if not (first.shape == second.shape == first_win.shape) or first.ndim != 1:
        raise ValueError("first, second and first_win need one entry per judged pair")
    if not first.size:
        raise ValueError("no judged pairs")
    if prompt_of.size and (prompt_of.min() < 0 or prompt_of.max() >= P):
        raise ValueError("prompt_of outside 0 .. n_prompts-1")
    if min(first.min(), second.min()) < 0 or max(first.max(), second.max()) >= score.size:
        raise ValueError("a judged pair refers to an unknown completion")
    if np.any(prompt_of[first] != prompt_of[second]):
        raise ValueError("a judged pair joins completions of different prompts")
    if np.any(first == second):
        raise ValueError("a judged pair compares a completion with itself")
    if np.any((first_win < 0) | (first_win > 1)) or np.any(np.isnan(first_win)):
        raise ValueError("first_win must lie in [0, 1]")
    # only prompts with a judged pair, renumbered 0 .. P' - 1
    judged = np.bincount(prompt_of[first], minlength=P) > 0
    new_index = np.cumsum(judged) - 1
    keep = judged[prompt_of]
    renumber = np.cumsum(keep) - 1
    return (new_index[prompt_of[keep]], score[keep], renumber[first], renumber[second], first_win,
            int(judged.sum()))


def _sorted_thresholds(thresholds):
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1:
        raise ValueError("thresholds must be one-dimensional")
    if np.any(np.isnan(t)):
        raise ValueError("NaN threshold")
    order = np.argsort(t, kind="stable")
    return t, order, t[order]


def beta_prior(below, total) -> tuple[np.ndarray, np.ndarray]:
    """Method-of-moments Beta(alpha, beta) of the acceptance rate across prompts, per threshold.

    ``below``: prompts x thresholds accepted counts ``k_p``; ``total``: per prompt ``n_p >= 1``.
    ``mu = sum k_p / sum n_p``; with ``rho = 1 / (alpha + beta + 1)``,
    ``E[sum_p (k_p - n_p mu)^2 / n_p] = mu (1 - mu) ((P - 1) + rho D)``,
    ``D = sum n_p - sum n_p^2 / sum n_p - (P - 1)``, solved for ``rho`` and clipped to `RHO_RANGE`
    (`NO_INFORMATION_RHO` where ``D = 0``). NaN where nothing or everything is accepted.
    """
    k = np.asarray(below, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    n_all, P = n.sum(), n.size
    mu = k.sum(axis=0) / n_all
    spread = ((k - n[:, None] * mu) ** 2 / n[:, None]).sum(axis=0)
    inside = (mu > 0) & (mu < 1)
    excess = n_all - (n ** 2).sum() / n_all - (P - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (spread / (mu * (1 - mu)) - (P - 1)) / excess
    rho = np.clip(np.where(inside & (excess > 0), rho, NO_INFORMATION_RHO), *RHO_RANGE)
    strength = 1 / rho - 1
    return np.where(inside, mu * strength, np.nan), np.where(inside, (1 - mu) * strength, np.nan)


def _log_rising(x, steps):
    """log of x (x + 1) ... (x + steps - 1), for x > 0."""
    return special.gammaln(x + steps) - special.gammaln(x)


def _survival(below, total, alpha, beta, M: int) -> np.ndarray:
    """Prompts x thresholds ``S_hat_p``: estimated chance that one of M draws is accepted.

    ``1 - C(n - k, M) / C(n, M)`` (unbiased) where ``n_p >= M``; else one minus the posterior mean
    of ``(1 - a)^M`` under the fitted prior, ``rising(beta', M) / rising(alpha' + beta', M)``.
    """
    k = np.asarray(below, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)[:, None]
    rejected = n - k
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = np.where(rejected >= M, np.exp(special.gammaln(rejected + 1) - special.gammaln(rejected - M + 1)
                                               - special.gammaln(n + 1) + special.gammaln(n - M + 1)), 0.0)
        fitted = ~np.isnan(alpha)
        a, b = np.where(fitted, alpha, 1.0), np.where(fitted, beta, 1.0)
        modelled = np.exp(_log_rising(b + rejected, M) - _log_rising(a + b + n, M))
    nothing_accepted = (k.sum(axis=0) == 0)
    modelled = np.where(fitted, modelled, nothing_accepted.astype(np.float64))
    return 1.0 - np.where(n >= M, exact, modelled)


def _g_table(L: int, M: int) -> np.ndarray:
    """``sum_{j <= min(M - 1, L)} C(r, j) / C(L, j)`` for r = 0 .. L (the exact part of ``g_hat``)."""
    J = min(M - 1, L)
    if J == 0:
        return np.ones(L + 1)
    r = np.arange(L + 1, dtype=np.float64)[:, None]
    i = np.arange(J, dtype=np.float64)
    terms = np.cumprod(np.maximum(r - i, 0.0) / (L - i), axis=1)
    return 1.0 + terms.sum(axis=1)


def _tail_table(alpha, beta, L: int, M: int) -> np.ndarray:
    """Thresholds x r (0 .. L): ``sum_{j = L + 1}^{M - 1} E[(1 - a)^j]`` under
    Beta(alpha + L - r, beta + r), the pair's others being L completions of which r are rejected.

    0 where ``L >= M - 1`` (nothing to extrapolate) and where the prior is NaN (nothing accepted
    at the threshold, where the tail multiplies 0, or everything, where it is 0).
    """
    out = np.zeros((np.size(alpha), L + 1))
    fitted = ~np.isnan(alpha)
    if L >= M - 1 or not fitted.any():
        return out
    r = np.arange(L + 1, dtype=np.float64)
    a = alpha[fitted][:, None] + (L - r)  # thresholds x r
    b = beta[fitted][:, None] + r
    i = np.arange(M - 1, dtype=np.float64)  # E[(1 - a)^(i + 1)] = prod_{m <= i} (b + m) / (a + b + m)
    terms = np.exp(np.cumsum(np.log(b[..., None] + i) - np.log(a[..., None] + b[..., None] + i), axis=-1))
    out[fitted] = terms[..., L:].sum(axis=-1)  # powers L + 1 .. M - 1
    return out


def preference_sweep(data: ComparisonData, thresholds, *, max_attempts: int = 100, level: float = 0.95) -> Sweep:
    """Estimate, standard error and interval of ``Q(t)``, acceptance and failure, per threshold
    (arrays in the order of ``thresholds``)."""
    if not 0 < level < 1:
        raise ValueError("level must lie strictly between 0 and 1")
    M = int(max_attempts)
    if M < 1:
        raise ValueError("max_attempts must be at least 1")
    prompt_of, score, first, second, win, P = _validated(data)
    t, order, ts = _sorted_thresholds(thresholds)
    K = ts.size
    total = np.bincount(prompt_of, minlength=P)
    bins = np.searchsorted(ts, score, side="right")  # completion i is below ts[k] exactly when k >= bins[i]
    cells = np.bincount(prompt_of * (K + 1) + bins, minlength=P * (K + 1)).reshape(P, K + 1)
    below = np.cumsum(cells, axis=1)[:, :K]
    alpha, beta = beta_prior(below, total)
    survival = _survival(below, total, alpha, beta, M)
    per_prompt = survival.copy()  # S_hat_p, then Q_hat_p
    influence = np.zeros((P, K))  # each prompt's linearised contribution through m_hat
    accepted_sides = np.zeros(K)

    by_prompt = np.argsort(prompt_of[first], kind="stable")  # pairs grouped by prompt, for reduceat
    first, second, win = first[by_prompt], second[by_prompt], win[by_prompt][:, None]
    pair_prompt = prompt_of[first]
    starts = np.flatnonzero(np.r_[True, pair_prompt[1:] != pair_prompt[:-1]])
    pairs_of = np.diff(np.r_[starts, first.size])[:, None]
    L = total[pair_prompt] - 2  # the pair's other completions
    tables = {int(size): _g_table(int(size), M) for size in np.unique(L)}
    step = max(1, BLOCK_CELLS // first.size)
    for lo in range(0, K, step):
        k = np.arange(lo, min(K, lo + step))
        A_i = bins[first][:, None] <= k
        A_j = bins[second][:, None] <= k
        sides = A_i.astype(np.float64) + A_j
        twice_b = win * A_i + (1 - win) * A_j
        accepted_sides[k] = sides.sum(axis=0)
        m_hat = np.divide(twice_b.sum(axis=0), accepted_sides[k], out=np.full(k.size, 0.5),
                          where=accepted_sides[k] > 0)
        r = L[:, None] - (below[pair_prompt][:, k] - sides).astype(np.int64)
        g_hat = np.empty(r.shape)
        columns = np.arange(k.size)
        for size, table in tables.items():
            rows = L == size
            tail = _tail_table(alpha[k], beta[k], size, M)  # this block's thresholds x r
            g_hat[rows] = table[r[rows]] + tail[columns, r[rows]]
        weighted_b = np.add.reduceat(g_hat * twice_b / 2, starts, axis=0) / pairs_of
        weighted_a = np.add.reduceat(g_hat * sides / 2, starts, axis=0) / pairs_of  # G_p
        slope = (per_prompt[:, k] - weighted_a).mean(axis=0)  # dQ_hat / dm_hat
        residual = np.add.reduceat(twice_b - m_hat * sides, starts, axis=0)  # W_p - m_hat N_p
        mean_sides = np.maximum(accepted_sides[k] / P, 1e-300)
        influence[:, k] = slope * residual / mean_sides
        per_prompt[:, k] = m_hat * (per_prompt[:, k] - weighted_a) + weighted_b

    failure = 1.0 - survival.mean(axis=0)
    estimate = np.clip(per_prompt.mean(axis=0), 0.0, 1.0) + 0.0  # no -0.0
    linearised = per_prompt + influence
    se = linearised.std(axis=0, ddof=1) / np.sqrt(P) if P > 1 else np.full(K, np.inf)
    half = scipy_stats.t.ppf((1 + level) / 2, max(P - 1, 1)) * se
    with np.errstate(invalid="ignore"):
        lower, upper = np.clip(estimate - half, 0, 1), np.clip(estimate + half, 0, 1)

    def unsort(values):
        out = np.empty(K)
        out[order] = values
        return out

    return Sweep(
        thresholds=t, preference=unsort(estimate), lower=unsort(lower), upper=unsort(upper),
        standard_error=unsort(se), acceptance=unsort(below.sum(axis=0) / total.sum()), failure=unsort(failure),
        accepted_sides=unsort(accepted_sides),
        level=level, max_attempts=M, prompts=P, short_prompts=int((total < M + 1).sum()),
        judgements=int(first.size),
    )


def choose_threshold(sweep: Sweep, *, lower_bound: float = 0.48,
                     min_accepted_sides: int = MIN_ACCEPTED_SIDES) -> float | None:
    """The lowest threshold whose interval's lower bound is above ``lower_bound`` and whose estimate
    rests on at least ``min_accepted_sides`` accepted judged sides (None if there is none)."""
    ok = (np.asarray(sweep.lower) > lower_bound) & (np.asarray(sweep.accepted_sides) >= min_accepted_sides)
    if not ok.any():
        return None
    return float(np.asarray(sweep.thresholds)[ok].min())
