"""evaluation.stats: the report's statistics.

Pure numpy/scipy, no database. The fast functions are checked against the slow loops of
evaluation.reference (same resample indices for a seed), against scipy and against hand-worked
examples; the clustered bootstrap's coverage against a simulation with a known mean.
"""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from evaluation import reference, stats
from evaluation.stats import (
    beta_interval,
    bootstrap_clustered_mean,
    bootstrap_mean,
    bootstrap_ratio,
    classification_counts,
    percentile_interval,
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
    np.testing.assert_allclose(bootstrap_clustered_mean(values > 0, groups, resamples=500, seed=2),
                               reference.bootstrap_clustered_mean(values > 0, groups, resamples=500, seed=2),
                               rtol=1e-12)


def test_bootstrap_mean_edge_cases():
    assert bootstrap_mean([]) == (None, None, None)
    assert bootstrap_mean([4.0]) == (4.0, 4.0, 4.0)


def test_bootstrap_clustered_mean_resamples_groups():
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(80), rng.integers(1, 5, 80))
    wins = rng.choice([0.0, 0.5, 1.0], groups.size, p=[0.4, 0.15, 0.45])
    first = bootstrap_clustered_mean(wins, groups, resamples=2000, seed=3)
    assert first == bootstrap_clustered_mean(wins, groups, resamples=2000, seed=3)
    assert first[1:] != bootstrap_clustered_mean(wins, groups, resamples=2000, seed=4)[1:]
    assert first[0] == pytest.approx(wins.mean()) and first[1] < first[0] < first[2]
    np.testing.assert_allclose(first, reference.bootstrap_clustered_mean(wins, groups, resamples=2000, seed=3),
                               rtol=1e-12)
    # labels of any kind; the same prompts under other names give the same interval
    names = np.array([f"prompt-{g:03d}" for g in groups])
    np.testing.assert_allclose(bootstrap_clustered_mean(wins, names, resamples=2000, seed=3), first, rtol=1e-12)


def test_bootstrap_clustered_mean_edge_cases():
    assert bootstrap_clustered_mean([], []) == (None, None, None)
    assert bootstrap_clustered_mean([1.0, 1.0], [0, 1]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_clustered_mean([float("nan")], [0])
    with pytest.raises(ValueError):
        bootstrap_clustered_mean([1.0, 2.0], [0])


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


def test_clustered_bootstrap_covers_where_ratings_of_one_snippet_are_alike():
    """Egregiousness: several ratings of one snippet share the snippet's own severity. Over 300
    simulated rating sets with a known mean, resampling snippets covers it about 95 % of the time;
    resampling ratings as if independent does not."""
    true_mean, clustered, independent = 5.0, [], []
    for r in range(300):
        rng = np.random.default_rng(r)
        severity = true_mean + rng.normal(0, 2, 40)  # 40 snippets
        per = rng.integers(1, 6, 40)
        groups = np.repeat(np.arange(40), per)
        ratings = severity[groups] + rng.normal(0, 0.5, groups.size)
        _, lo, hi = bootstrap_clustered_mean(ratings, groups, resamples=400, seed=r)
        clustered.append(lo <= true_mean <= hi)
        _, lo, hi = bootstrap_mean(ratings, resamples=400, seed=r)
        independent.append(lo <= true_mean <= hi)
    # 300 intervals: a 95 % procedure covers 285 (sd ~3.8); the mean over snippets with 1-5
    # ratings each is weighted towards well-rated snippets, but its expectation is still 5
    assert 0.91 <= np.mean(clustered) <= 0.99, np.mean(clustered)
    assert np.mean(independent) < 0.85, np.mean(independent)
