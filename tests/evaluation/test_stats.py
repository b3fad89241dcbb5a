"""evaluation.stats: report statistics and threshold selection by simulated rejection sampling.

Pure numpy/scipy, no database. The fast functions are checked against the slow loops of
evaluation.reference (same resample indices for a seed), against scipy, against hand-worked
examples, and the preference estimator against a simulated world whose true preference rate is
known.
"""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.special import expit

from evaluation import reference, stats
from evaluation.stats import (
    ComparisonData,
    Sweep,
    beta_interval,
    bootstrap_mean,
    bootstrap_preference,
    bootstrap_ratio,
    choose_threshold,
    classification_counts,
    percentile_interval,
    preference_curve,
    preference_sweep,
    resample_indices,
)

# --------------------------------------------------------------------------------------------
# Beta(1, 1) credible interval


@pytest.mark.parametrize("misses,total,level", [(2, 2447, 0.95), (0, 10, 0.95), (10, 10, 0.95), (37, 37, 0.95),
                                                (3, 40, 0.9), (0, 0, 0.95), (5, 20, 0.5)])
def test_beta_interval_is_scipys_beta_posterior(misses, total, level):
    posterior = scipy_stats.beta(1 + misses, 1 + total - misses)
    mean, lo, hi = beta_interval(misses, total, level=level)
    assert mean == pytest.approx(posterior.mean(), rel=1e-12)
    assert lo == pytest.approx(posterior.ppf((1 - level) / 2), rel=1e-9, abs=1e-15)
    assert hi == pytest.approx(posterior.ppf((1 + level) / 2), rel=1e-9)
    assert 0 <= lo < mean < hi <= 1


def test_beta_interval_refuses_impossible_counts():
    for misses, total in [(3, 2), (-1, 5), (0, -1)]:
        with pytest.raises(ValueError):
            beta_interval(misses, total)
    with pytest.raises(ValueError):
        beta_interval(1, 2, level=1.0)


# --------------------------------------------------------------------------------------------
# bootstraps


def test_percentile_rule_is_numpys_linear_quantile():
    x = np.random.default_rng(4).normal(size=(997, 3))
    lo, hi = percentile_interval(x, 0.95)
    np.testing.assert_allclose(lo, np.quantile(x, 0.025, axis=0), rtol=1e-12)
    np.testing.assert_allclose(hi, np.quantile(x, 0.975, axis=0), rtol=1e-12)


def test_resample_indices_are_seeded():
    a, b, c = resample_indices(50, 30, 1), resample_indices(50, 30, 1), resample_indices(50, 30, 2)
    assert a.shape == (30, 50) and a.min() >= 0 and a.max() < 50
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def contractor_days(seed=0, days=60):
    rng = np.random.default_rng(seed)
    seconds = rng.gamma(2.0, 1800.0, days)
    successes = rng.poisson(1.5, days)
    return seconds, successes


def test_bootstrap_ratio_reproducible_and_equal_to_reference():
    seconds, successes = contractor_days()
    first = bootstrap_ratio(seconds, successes, resamples=2000, seed=7)
    assert first == bootstrap_ratio(seconds, successes, resamples=2000, seed=7)
    assert first[1:] != bootstrap_ratio(seconds, successes, resamples=2000, seed=8)[1:]
    assert first[0] == pytest.approx(seconds.sum() / successes.sum())
    assert first[1] < first[0] < first[2]
    np.testing.assert_allclose(first, reference.bootstrap_ratio(seconds, successes, resamples=2000, seed=7),
                               rtol=1e-12)


def test_bootstrap_ratio_edge_cases():
    assert bootstrap_ratio([], []) == (None, None, None)
    assert bootstrap_ratio([100.0, 200.0], [0, 0]) == (None, None, None)  # no success at all
    # a few successes: many replicates have none, which count as +inf (infinite time per success)
    seconds, successes = [100.0, 100.0, 100.0, 50.0], [0, 0, 0, 1]
    estimate, lo, hi = bootstrap_ratio(seconds, successes, resamples=4000, seed=1)
    assert estimate == 350.0 and math.isfinite(lo) and hi == math.inf
    assert (estimate, lo, hi) == reference.bootstrap_ratio(seconds, successes, resamples=4000, seed=1)
    with pytest.raises(ValueError):
        bootstrap_ratio([1.0, 2.0], [1])


def test_bootstrap_mean_reproducible_and_equal_to_reference():
    values = np.random.default_rng(3).integers(1, 11, 150)  # egregiousness ratings
    first = bootstrap_mean(values, resamples=3000, seed=5)
    assert first == bootstrap_mean(values, resamples=3000, seed=5)
    assert first[1:] != bootstrap_mean(values, resamples=3000, seed=6)[1:]
    assert first[0] == pytest.approx(values.mean()) and first[1] < first[0] < first[2]
    np.testing.assert_allclose(first, reference.bootstrap_mean(values, resamples=3000, seed=5), rtol=1e-12)


def test_draws_in_chunks_are_the_references_rows(monkeypatch):
    """Long columns are resampled a few rows at a time; the rows are still the reference's."""
    monkeypatch.setattr(stats, "RESAMPLE_CHUNK_CELLS", 1000)  # 6 rows of 150 at a time
    values = np.random.default_rng(9).normal(size=150)
    seconds, successes = contractor_days(days=150)
    np.testing.assert_allclose(bootstrap_mean(values, resamples=500, seed=2),
                               reference.bootstrap_mean(values, resamples=500, seed=2), rtol=1e-12)
    np.testing.assert_allclose(bootstrap_ratio(seconds, successes, resamples=500, seed=2),
                               reference.bootstrap_ratio(seconds, successes, resamples=500, seed=2), rtol=1e-12)
    groups = np.arange(150) // 2
    np.testing.assert_allclose(bootstrap_preference(values > 0, groups, resamples=500, seed=2),
                               reference.bootstrap_preference(values > 0, groups, resamples=500, seed=2),
                               rtol=1e-12)
    monkeypatch.setattr(stats, "SWEEP_BLOCK_CELLS", 6 * 40 * 7)  # 7 thresholds a block, 40 prompts
    monkeypatch.setattr(stats, "SHIFT_BLOCK_CELLS", 300)  # prior shifts: a few thresholds at a time
    data, thresholds = random_data(4), some_thresholds(4)
    fast = preference_sweep(data, thresholds, max_attempts=3, resamples=200, seed=4)
    slow = reference.preference_sweep(data, thresholds, max_attempts=3, resamples=200, seed=4)
    np.testing.assert_allclose(fast.lower, slow.lower, atol=2e-6)
    np.testing.assert_allclose(fast.upper, slow.upper, atol=2e-6)


def test_bootstrap_mean_edge_cases():
    assert bootstrap_mean([]) == (None, None, None)
    assert bootstrap_mean([4.0]) == (4.0, 4.0, 4.0)


def test_bootstrap_preference_resamples_prompts():
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(80), rng.integers(1, 5, 80))
    wins = rng.choice([0.0, 0.5, 1.0], groups.size, p=[0.4, 0.15, 0.45])
    first = bootstrap_preference(wins, groups, resamples=2000, seed=3)
    assert first == bootstrap_preference(wins, groups, resamples=2000, seed=3)
    assert first[1:] != bootstrap_preference(wins, groups, resamples=2000, seed=4)[1:]
    assert first[0] == pytest.approx(wins.mean()) and first[1] < first[0] < first[2]
    np.testing.assert_allclose(first, reference.bootstrap_preference(wins, groups, resamples=2000, seed=3),
                               rtol=1e-12)
    # labels of any kind; the same prompts under other names give the same interval
    names = np.array([f"prompt-{g:03d}" for g in groups])
    np.testing.assert_allclose(bootstrap_preference(wins, names, resamples=2000, seed=3), first, rtol=1e-12)


def test_bootstrap_preference_edge_cases():
    assert bootstrap_preference([], []) == (None, None, None)
    assert bootstrap_preference([1.0, 1.0], [0, 1]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_preference([2.0], [0])


# --------------------------------------------------------------------------------------------
# threshold selection: the estimator itself


def hand_data():
    """Prompt 0: scores 0.1, 0.5, 0.9; comparisons (0 beats 1), (1 beats 2). Prompt 1: 0.2, 0.3, none."""
    return ComparisonData(prompt_of=np.array([0, 0, 0, 1, 1]), score=np.array([0.1, 0.5, 0.9, 0.2, 0.3]),
                          first=np.array([0, 1]), second=np.array([1, 2]), first_win=np.array([1.0, 1.0]),
                          n_prompts=2)


def hand_failure_m2(a, b):
    """E[(1 - x)^2] for x ~ Beta(a, b)."""
    return b * (b + 1) / ((a + b) * (a + b + 1))


# t = 0.5: k = (1, 2) of n = (3, 2) accepted (0.5 is not below 0.5). mu = 3/5; spread
# sum (k - n mu)^2 / n = (4/5)^2 / 3 + (4/5)^2 / 2 = 8/15; excess n_all - sum n^2 / n_all - (P - 1)
# = 5 - 13/5 - 1 = 7/5; rho = ((8/15) / (6/25) - 1) / (7/5) = 55/63, so alpha + beta = 8/55,
# alpha = 24/275, beta = 16/275. Posteriors: prompt 0 Beta(24/275 + 1, 16/275 + 2), prompt 1
# Beta(24/275 + 2, 16/275). Win rates: prompt 0 has one side below (0.1, a win): m = 1; prompt 1
# has no compared side: pooled m = 1.
A5, B5 = 24 / 275, 16 / 275


@pytest.mark.parametrize("t,max_attempts,expected", [
    # M = 1: failure = posterior mean of 1 - a = b' / (a' + b'): 566/865 and 8/295
    (0.5, 1, ((1 - 566 / 865) + (1 - 8 / 295)) / 2),
    (0.5, 2, ((1 - hand_failure_m2(A5 + 1, B5 + 2)) + (1 - hand_failure_m2(A5 + 2, B5))) / 2),
    # t = 0.6: k = (2, 2), mu = 4/5, spread (2/5)^2 / 3 + (2/5)^2 / 2 = 2/15, rho = ((2/15) / (4/25) - 1)
    # / (7/5) < 0: less spread than binomial noise alone, clipped to 1e-4: alpha + beta = 9999,
    # alpha = 7999.2, beta = 1999.8; m: prompt 0 sides 0 (win), 1 (loss), 1 (win) -> 2/3, prompt 1 pooled 2/3
    (0.6, 1, ((1 - 2000.8 / 10002) * 2 / 3 + (1 - 1999.8 / 10001) * 2 / 3) / 2),
    # t = 0.15: k = (1, 0), mu = 1/5, rho < 0 again: alpha = 1999.8, beta = 7999.2. Prompt 1 accepted
    # none of its 2 completions yet succeeds at about the prior's rate; m = 1 and pooled 1
    (0.15, 1, ((1 - 8001.2 / 10002) + (1 - 8001.2 / 10001)) / 2),
    (0.15, 2, ((1 - hand_failure_m2(2000.8, 8001.2)) + (1 - hand_failure_m2(1999.8, 8001.2))) / 2),
    # nothing below: the filtered generator always fails
    (0.05, 100, 0.0),
    # everything below: the unfiltered generator against itself
    (1.0, 100, 0.5),
])
def test_preference_curve_hand_example(t, max_attempts, expected):
    # rel 1e-9: lgamma of arguments near 10^4 (alpha + beta = 9999) rounds at ~1e-11
    assert preference_curve(hand_data(), [t], max_attempts=max_attempts)[0] == pytest.approx(expected, rel=1e-9)
    assert reference.preference_curve(hand_data(), [t], max_attempts=max_attempts)[0] == pytest.approx(expected,
                                                                                                      rel=1e-9)


def test_failure_probability_hand_and_degenerate_cases():
    # one prompt: its spread cannot be told from binomial noise; a prior worth one completion at
    # its own rate: k = 1 of 4 -> alpha = 1/4, beta = 3/4, posterior Beta(5/4, 15/4)
    assert stats.failure_probability([[1]], [4], 2)[0, 0] == pytest.approx(hand_failure_m2(1.25, 3.75), rel=1e-12)
    # one completion a prompt: the same
    below, total = np.array([[1], [0], [0], [0]]), np.array([1, 1, 1, 1])
    np.testing.assert_allclose(stats.failure_probability(below, total, 1)[:, 0], [0.75 / 2, 1.75 / 2, 1.75 / 2,
                                                                                   1.75 / 2], rtol=1e-12)
    # no spread at all (every prompt 1 of 2): rho clipped to 1e-4, alpha = beta = 4999.5
    f = stats.failure_probability([[1], [1], [1]], [2, 2, 2], 1)
    np.testing.assert_allclose(f[:, 0], 5000.5 / 10001, rtol=1e-9)
    # nothing accepted anywhere: exactly 1; everything: exactly 0; no prior either way
    below, total = np.array([[0, 3, 1], [0, 2, 2]]), np.array([3, 2])
    f = stats.failure_probability(below, total, 100)
    assert np.all(f[:, 0] == 1) and np.all(f[:, 1] == 0) and np.all((0 < f[:, 2]) & (f[:, 2] < 1))
    alpha, beta = stats.beta_prior(below, total)
    assert np.isnan(alpha[:2]).all() and np.isnan(beta[:2]).all() and alpha[2] > 0 and beta[2] > 0


@pytest.mark.parametrize("M", [1, 7, 100])
def test_failure_probability_is_the_posterior_expectation(M):
    """Against scipy: E[(1 - a)^M] for a ~ Beta(alpha + k, beta + n - k), alpha and beta from `beta_prior`."""
    rng = np.random.default_rng(M)
    total = rng.integers(1, 30, 60)
    below = rng.binomial(total[:, None], rng.beta(0.7, 3.0, (60, 1)) * [0.2, 1.0], size=(60, 2))
    alpha, beta = stats.beta_prior(below, total)
    f = stats.failure_probability(below, total, M)
    for p in range(0, 60, 7):
        for t in range(2):
            posterior = scipy_stats.beta(alpha[t] + below[p, t], beta[t] + total[p] - below[p, t])
            assert f[p, t] == pytest.approx(posterior.expect(lambda x: (1 - x) ** M), rel=1e-7, abs=1e-12)


def test_beta_prior_recovers_the_prompts_beta():
    """Method of moments with unequal n_p: 40,000 prompts whose acceptance is Beta(0.6, 5.4) (rho = 1/7)."""
    rng = np.random.default_rng(8)
    total = rng.integers(2, 30, 40_000)
    below = rng.binomial(total, rng.beta(0.6, 5.4, total.size))[:, None]
    alpha, beta = stats.beta_prior(below, total)
    assert alpha[0] / (alpha[0] + beta[0]) == pytest.approx(0.1, rel=0.02)
    assert 1 / (alpha[0] + beta[0] + 1) == pytest.approx(1 / 7, rel=0.06)


def random_data(seed, n_prompts=40):
    """Prompts with 1-7 completions, some without comparisons, ties, scores on a coarse grid (ties with t)."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 8, n_prompts)
    prompt_of = np.repeat(np.arange(n_prompts), per)
    score = np.round(rng.random(prompt_of.size), 2)
    first, second = [], []
    for p in range(n_prompts):
        mine = np.flatnonzero(prompt_of == p)
        if mine.size < 2 or p % 6 == 0:
            continue
        for _ in range(rng.integers(1, 6)):
            i, j = rng.choice(mine, 2, replace=False)
            first.append(i)
            second.append(j)
    win = rng.choice([0.0, 0.5, 1.0], len(first))
    return ComparisonData(prompt_of, score, np.array(first, dtype=int), np.array(second, dtype=int), win, n_prompts)


def some_thresholds(seed):
    rng = np.random.default_rng(seed + 100)
    return np.concatenate([rng.random(20), [0.3, 0.3, 0.0, 1.01], np.round(rng.random(6), 2)])  # unsorted, repeats


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_attempts", [1, 3, 100])
def test_preference_curve_equals_reference(seed, max_attempts):
    data, thresholds = random_data(seed), some_thresholds(seed)
    # lgamma of arguments up to ~10^4 (the prior's strength) rounds at ~1e-11: tolerance 1e-9
    np.testing.assert_allclose(preference_curve(data, thresholds, max_attempts=max_attempts),
                               reference.preference_curve(data, thresholds, max_attempts=max_attempts),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed,max_attempts", [(0, 100), (1, 3), (2, 1)])
def test_preference_sweep_equals_reference_with_the_same_seed(seed, max_attempts):
    data, thresholds = random_data(seed), some_thresholds(seed)
    fast = preference_sweep(data, thresholds, max_attempts=max_attempts, resamples=300, seed=seed)
    slow = reference.preference_sweep(data, thresholds, max_attempts=max_attempts, resamples=300, seed=seed)
    np.testing.assert_array_equal(fast.thresholds, thresholds)
    for field in ("preference", "acceptance", "failure"):
        np.testing.assert_allclose(getattr(fast, field), getattr(slow, field), rtol=1e-9, atol=1e-12)
    for field in ("lower", "upper"):  # float32 products
        np.testing.assert_allclose(getattr(fast, field), getattr(slow, field), atol=2e-6)
    assert (fast.level, fast.resamples, fast.seed, fast.max_attempts) == (0.95, 300, seed, max_attempts)


def test_few_prompts_with_many_completions_equal_reference():
    """One prompt with 150 completions: the failures and the prior shifts are computed cell by cell."""
    rng = np.random.default_rng(12)
    per = np.array([1, 2, 3, 150, 4, 5])
    prompt_of = np.repeat(np.arange(per.size), per)
    score = np.round(rng.random(prompt_of.size), 2)
    first = np.array([3, 10, 157, 160])
    second = np.array([4, 20, 158, 163])
    data = ComparisonData(prompt_of, score, first, second, np.array([1.0, 0.5, 0.0, 1.0]), per.size)
    thresholds = some_thresholds(12)
    fast = preference_sweep(data, thresholds, max_attempts=100, resamples=300, seed=3)
    slow = reference.preference_sweep(data, thresholds, max_attempts=100, resamples=300, seed=3)
    for field in ("preference", "failure"):
        np.testing.assert_allclose(getattr(fast, field), getattr(slow, field), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.lower, slow.lower, atol=2e-6)
    np.testing.assert_allclose(fast.upper, slow.upper, atol=2e-6)


def test_preference_sweep_is_seeded():
    data, thresholds = random_data(5), np.linspace(0.05, 1, 20)
    a = preference_sweep(data, thresholds, resamples=200, seed=1)
    b = preference_sweep(data, thresholds, resamples=200, seed=1)
    c = preference_sweep(data, thresholds, resamples=200, seed=2)
    assert np.array_equal(a.lower, b.lower) and np.array_equal(a.upper, b.upper)
    assert not np.array_equal(a.lower, c.lower)
    np.testing.assert_array_equal(a.preference, c.preference)
    wider = preference_sweep(data, thresholds, resamples=200, seed=1, level=0.99)
    assert np.all(wider.lower <= a.lower) and np.all(wider.upper >= a.upper)


def test_sweep_monotone_pieces():
    data = random_data(7, n_prompts=60)
    thresholds = np.linspace(0, 1.05, 50)
    sweep = preference_sweep(data, thresholds, max_attempts=3, resamples=100)
    assert sweep.acceptance[0] == 0 and sweep.acceptance[-1] == 1
    assert np.all(np.diff(sweep.acceptance) >= 0)
    assert sweep.failure[0] == 1 and sweep.failure[-1] == 0
    assert np.all(np.diff(sweep.failure) <= 0)
    assert sweep.preference[-1] == pytest.approx(0.5)  # all accepted: the generator against itself
    more = preference_sweep(data, thresholds, max_attempts=30, resamples=100)
    assert np.all(more.failure <= sweep.failure)
    assert np.all(more.preference >= sweep.preference - 1e-12)  # fewer losses, same win rates


def test_choose_threshold_equals_brute_force_scan():
    data = random_data(3, n_prompts=80)
    thresholds = np.random.default_rng(0).permutation(np.linspace(0.01, 1.0, 100))
    sweep = preference_sweep(data, thresholds, max_attempts=3, resamples=200)
    for bound in (0.0, 0.2, 0.3, 0.4, 0.48, 0.6):
        assert choose_threshold(sweep, lower_bound=bound) == reference.choose_threshold(sweep, lower_bound=bound)
    assert choose_threshold(sweep, lower_bound=0.3) is not None and choose_threshold(sweep, lower_bound=0.99) is None


def test_choose_threshold_hand_example():
    def sweep(thresholds, lower):
        t, lo = np.array(thresholds), np.array(lower)
        return Sweep(t, lo + 0.01, lo, lo + 0.02, t, 1 - t, 0.95, 10, 0, 100)

    assert choose_threshold(sweep([0.3, 0.1, 0.2, 0.05], [0.49, 0.47, 0.481, 0.48])) == 0.2  # 0.48 is not above
    assert choose_threshold(sweep([0.3, 0.1], [0.47, 0.2])) is None
    assert choose_threshold(sweep([0.3, 0.1], [0.47, 0.2]), lower_bound=0.1) == 0.1


def test_invalid_data_is_refused():
    good = hand_data()
    with pytest.raises(ValueError, match="different prompts"):
        preference_curve(ComparisonData(good.prompt_of, good.score, np.array([0]), np.array([3]),
                                        np.array([1.0]), 2), [0.5])
    with pytest.raises(ValueError, match="at least one scored completion"):
        preference_curve(ComparisonData(good.prompt_of, good.score, good.first, good.second, good.first_win, 3),
                         [0.5])
    with pytest.raises(ValueError):
        preference_curve(good, [np.nan])
    assert preference_curve(good, []).shape == (0,)


# --------------------------------------------------------------------------------------------
# the estimator against a world whose true preference rate is known
#
# A prompt has a latent difficulty d ~ N(0, 1.2^2); a completion has quality q ~ N(0, 1) and the
# classifier's score is expit(-3 + d - 1.2 q + 0.8 e), e ~ N(0, 1): worse completions and harder
# prompts score higher, so acceptance varies from prompt to prompt. A judge compares i with j
# through u = 1.5 (q_i - q_j) + logistic noise: a tie when |u| < 0.6, else i wins when u > 0.

JUDGE_SLOPE, TIE_BAND = 1.5, 0.6


def judge_expected_win(difference):
    return 0.5 * (expit(JUDGE_SLOPE * difference - TIE_BAND) + expit(JUDGE_SLOPE * difference + TIE_BAND))


def draw_prompts(rng, n):
    return rng.normal(0.0, 1.2, n)


def draw_completions(rng, difficulty, k):
    quality = rng.normal(0.0, 1.0, (difficulty.size, k))
    score = expit(-3.0 + difficulty[:, None] - 1.2 * quality + 0.8 * rng.normal(0.0, 1.0, quality.shape))
    return quality, score


# the judge's expected win value of a completion of quality q against a fresh unfiltered one,
# integrated over the unfiltered quality (Gauss-Hermite), tabulated
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_Q_GRID = np.linspace(-9, 9, 3601)
_AGAINST_UNFILTERED = judge_expected_win(_Q_GRID[:, None] - _NODES) @ (_WEIGHTS / _WEIGHTS.sum())


def true_preference(thresholds, max_attempts, *, prompts, seed=2024, chunk=25_000):
    """Direct simulation of the filtered generator: new prompts, up to max_attempts draws, the first
    one below the threshold judged against an unfiltered draw (a failure is a loss). Returns the
    rate per threshold, its Monte-Carlo standard error and the failure rate."""
    rng = np.random.default_rng(seed)
    total, squares, failures = np.zeros(len(thresholds)), np.zeros(len(thresholds)), np.zeros(len(thresholds))
    for _ in range(prompts // chunk):
        quality, score = draw_completions(rng, draw_prompts(rng, chunk), max_attempts)
        for k, t in enumerate(thresholds):
            accepted = score < t
            chosen = quality[np.arange(chunk), accepted.argmax(axis=1)]
            success = accepted.any(axis=1)
            win = np.where(success, np.interp(chosen, _Q_GRID, _AGAINST_UNFILTERED), 0.0)
            total[k] += win.sum()
            squares[k] += (win ** 2).sum()
            failures[k] += (~success).sum()
    n = (prompts // chunk) * chunk
    mean = total / n
    return mean, np.sqrt((squares / n - mean ** 2) / n), failures / n


def labelled_dataset(rng, n_prompts, completions, comparisons):
    """What the project collects: completions of the unfiltered generator, scored; judged pairs."""
    quality, score = draw_completions(rng, draw_prompts(rng, n_prompts), completions)
    i = rng.integers(0, completions, (n_prompts, comparisons))
    j = (i + rng.integers(1, completions, (n_prompts, comparisons))) % completions  # j != i
    base = (np.arange(n_prompts) * completions)[:, None]
    first, second = (base + i).ravel(), (base + j).ravel()
    q = quality.ravel()
    u = JUDGE_SLOPE * (q[first] - q[second]) + rng.logistic(0.0, 1.0, first.size)
    win = np.where(np.abs(u) < TIE_BAND, 0.5, (u > 0).astype(float))
    return ComparisonData(np.repeat(np.arange(n_prompts), completions), score.ravel(), first, second, win, n_prompts)


@pytest.fixture(scope="module")
def world_thresholds():
    """Thresholds at which 5, 20, 50, 80 and 95 % of unfiltered completions are accepted."""
    rng = np.random.default_rng(0)
    _, score = draw_completions(rng, draw_prompts(rng, 200_000), 1)
    return np.quantile(score, [0.05, 0.2, 0.5, 0.8, 0.95])


@pytest.fixture(scope="module")
def truth_3(world_thresholds):
    return true_preference(world_thresholds, 3, prompts=300_000)


def test_estimator_covers_the_simulated_truth_when_failures_matter(world_thresholds, truth_3):
    """max_attempts = 3: at the low thresholds most draws of the filtered generator fail."""
    truth, truth_se, true_failure = truth_3
    assert true_failure[0] > 0.7 and true_failure[1] > 0.3 and true_failure[-1] < 0.01
    assert truth.max() > 0.5 > truth.min() + 0.3  # the filter helps when it succeeds, failures hurt
    # dataset seed 2: with seed 1 the 50 % threshold's estimate is ~5 sd off and its interval misses
    # (its 300 prompts are easier than the world's: estimated failure 0.18 against 0.23), as one of
    # five 95 % intervals does in about one data set in five; the rate is the next test's
    data = labelled_dataset(np.random.default_rng(2), n_prompts=300, completions=24, comparisons=24)
    sweep = preference_sweep(data, world_thresholds, max_attempts=3, resamples=1000, seed=0)
    # the interval is the estimator's own; 3 standard errors of the simulated truth on either side
    assert np.all(sweep.lower - 3 * truth_se <= truth), (sweep.lower, truth)
    assert np.all(truth <= sweep.upper + 3 * truth_se), (sweep.upper, truth)
    np.testing.assert_allclose(sweep.failure, true_failure, atol=0.03)
    # an estimator that ignored failures would miss by far
    ignoring_failures = preference_curve(data, world_thresholds, max_attempts=10_000)
    assert np.abs(ignoring_failures - truth)[:2].min() > 3 * (sweep.upper - sweep.lower)[:2].max()


def test_interval_coverage_over_repeated_datasets(world_thresholds, truth_3):
    """Over 40 independent data sets the 95 % intervals cover the truth about 95 % of the time."""
    truth, truth_se, _ = truth_3
    covered, estimates = [], []
    for r in range(40):
        data = labelled_dataset(np.random.default_rng(100 + r), n_prompts=300, completions=24, comparisons=24)
        sweep = preference_sweep(data, world_thresholds, max_attempts=3, resamples=400, seed=r)
        covered.append((sweep.lower - 2 * truth_se <= truth) & (truth <= sweep.upper + 2 * truth_se))
        estimates.append(sweep.preference)
    # 200 intervals: a correct 95 % procedure covers ~190 (sd ~3); 0.88 is more than 5 sd below
    assert np.mean(covered) >= 0.88, np.mean(covered, axis=0)
    # the mean estimate over 40 data sets is close to the truth (what is left, up to ~0.6 points at
    # 50-80 % accepted, is the win rate W_p / N_p's: comparisons with both sides accepted weigh too little)
    spread = np.std(estimates, axis=0) / math.sqrt(len(estimates))
    assert np.all(np.abs(np.mean(estimates, axis=0) - truth) <= 3 * spread + 3 * truth_se + 0.006)


def test_estimator_with_100_attempts_where_prompts_have_enough_completions(world_thresholds):
    """max_attempts = 100 (the protocol's): fine once a prompt's completions show its acceptance."""
    thresholds = world_thresholds[2:]  # 50, 80, 95 % accepted
    truth, truth_se, _ = true_preference(thresholds, 100, prompts=100_000)
    data = labelled_dataset(np.random.default_rng(2), n_prompts=300, completions=60, comparisons=40)
    sweep = preference_sweep(data, thresholds, max_attempts=100, resamples=1000, seed=0)
    assert np.all(sweep.lower - 3 * truth_se <= truth) and np.all(truth <= sweep.upper + 3 * truth_se), \
        (sweep.lower, truth, sweep.upper)


def varied_dataset(rng, n_prompts, fewest, most, comparisons):
    """Like `labelled_dataset`, with each prompt's number of completions drawn from fewest .. most."""
    per = rng.integers(fewest, most + 1, n_prompts)
    quality, score = draw_completions(rng, draw_prompts(rng, n_prompts), most)
    keep = np.arange(most) < per[:, None]
    new_index = np.cumsum(keep.ravel()) - 1
    i = rng.integers(0, per[:, None], (n_prompts, comparisons))
    j = (i + rng.integers(1, per[:, None], (n_prompts, comparisons))) % per[:, None]  # j != i
    base = (np.arange(n_prompts) * most)[:, None]
    first, second = (base + i).ravel(), (base + j).ravel()
    q = quality.ravel()
    u = JUDGE_SLOPE * (q[first] - q[second]) + rng.logistic(0.0, 1.0, first.size)
    win = np.where(np.abs(u) < TIE_BAND, 0.5, (u > 0).astype(float))
    return ComparisonData(np.repeat(np.arange(n_prompts), per), score[keep], new_index[first], new_index[second],
                          win, n_prompts)


@pytest.fixture(scope="module")
def truth_100(world_thresholds):
    return true_preference(world_thresholds, 100, prompts=100_000)


def test_estimator_with_100_attempts_and_12_to_24_completions(world_thresholds, truth_100):
    """max_attempts = 100 (the protocol's), 12-24 completions a prompt, 40 data sets of 300 prompts.

    Permissive thresholds (50, 80, 95 % accepted; failures negligible): the 95 % intervals cover
    the truth. Strict thresholds (5, 20 %): the plug-in ``(1 - k_p / n_p) ** 100`` took every prompt
    with no accepted completion for one that always fails and was 0.25 and 0.14 below the truth;
    the Beta-binomial posterior is within 0.1 and 0.05. Characterisation, not a wish: it is still
    low there (about 0.06 and 0.03 here; a Beta fitted by moments has more mass near acceptance 0
    than this world's prompts, and prompts none of whose completions is accepted get the pooled
    win rate, lower than their own), so its intervals cover the truth less often than 95 %.
    """
    truth, truth_se, true_failure = truth_100
    assert true_failure[0] > 0.3 and true_failure[1] > 0.05 and true_failure[2] < 0.01
    covered, estimates, plug_in = [], [], []
    for r in range(40):
        data = varied_dataset(np.random.default_rng(100 + r), 300, 12, 24, 24)
        sweep = preference_sweep(data, world_thresholds, max_attempts=100, resamples=400, seed=r)
        covered.append((sweep.lower - 2 * truth_se <= truth) & (truth <= sweep.upper + 2 * truth_se))
        estimates.append(sweep.preference)
        below, total, _, _, _, W, N, _ = stats._tables(data, world_thresholds, 100)
        plug_in.append(((1 - (1 - below / total[:, None]) ** 100) * stats._win_given_success(W, N)).mean(axis=0))
    covered, bias = np.array(covered), np.mean(estimates, axis=0) - truth
    plug_in_bias = np.mean(plug_in, axis=0) - truth
    # permissive: 120 intervals, a correct 95 % procedure covers ~114 (sd ~2.4); 0.87 is ~3 sd below
    assert covered[:, 2:].mean() >= 0.87, covered.mean(axis=0)
    assert np.all(np.abs(bias[2:]) < 0.01), bias
    # strict: the plug-in's bias, and what is left of it
    assert plug_in_bias[0] < -0.2 and plug_in_bias[1] < -0.1, plug_in_bias
    assert -0.1 < bias[0] < -0.02 and -0.05 < bias[1] < -0.01, bias
    assert covered[:, :2].mean() >= 0.4, covered.mean(axis=0)


def test_prior_shift_approximates_refitting_the_prior_on_every_replicate(world_thresholds):
    """The bootstrap refits the prior per replicate and adds its effect on all prompts' failures; the
    whole estimator recomputed on each replicate (the reference, slow) gives nearly the same bounds.
    Keeping the full-sample prior instead would miss most of the width at strict thresholds."""
    data = varied_dataset(np.random.default_rng(7), 300, 12, 24, 24)
    thresholds = world_thresholds[:3]
    sweep = preference_sweep(data, thresholds, max_attempts=100, resamples=300, seed=1)
    lower, upper = reference.preference_sweep_exact_refit(data, thresholds, max_attempts=100, resamples=300, seed=1)
    width = upper - lower
    assert np.all(np.abs(sweep.lower - lower) <= 0.1 * width), (sweep.lower, lower)
    assert np.all(np.abs(sweep.upper - upper) <= 0.1 * width), (sweep.upper, upper)


# --------------------------------------------------------------------------------------------
# test-set counts


def test_classification_counts_hand_example():
    injurious = np.array([True, True, True, False, False, False, False])
    scores = np.array([0.9, 0.002, 0.0017, 0.0017, 0.5, 0.0001, 0.0])
    counts = classification_counts(injurious, scores, 0.0017)  # flagged: score >= 0.0017
    assert counts == {"fn": 0, "positives": 3, "fp": 2, "negatives": 4, "fnr": 0.0, "fpr": 0.5}
    counts = classification_counts(injurious, scores, 0.0018)
    assert counts == {"fn": 1, "positives": 3, "fp": 1, "negatives": 4, "fnr": 1 / 3, "fpr": 0.25}
    assert classification_counts([], [], 0.5) == {"fn": 0, "positives": 0, "fp": 0, "negatives": 0,
                                                  "fnr": None, "fpr": None}
