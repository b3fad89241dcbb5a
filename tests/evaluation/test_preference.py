"""evaluation.preference (threshold selection's estimator) and evaluation.simulation (its study).

Pure numpy/scipy, no database. The estimator is checked by hand, against the loops of
evaluation.reference, and, what matters, against synthetic worlds whose true preference curve is
known: its mean error and its interval's coverage over repeated data sets.
"""

import numpy as np
import pytest

from evaluation import preference, reference, simulation
from evaluation.preference import ComparisonData, choose_threshold, preference_sweep


def two_prompts():
    """Prompt 0: six completions, two accepted at 0.1; prompt 1: six, four accepted."""
    score = np.array([0.3, 0.05, 0.02, 0.2, 0.4, 0.6,  0.05, 0.06, 0.7, 0.07, 0.3, 0.01])
    return ComparisonData(
        prompt_of=np.repeat([0, 1], 6), score=score,
        first=np.array([5, 9, 11]), second=np.array([3, 7, 7]), first_win=np.array([0.0, 0.5, 0.0]), n_prompts=2,
    )


def test_hand_example_with_enough_completions():
    """M = 3, six completions a prompt (>= M + 1: nothing extrapolated).

    Accepted sides: pair (9, 7) both, pair (11, 7) both; pooled win rate m = (0.5 + 0.5 + 0 + 1) / 4.
    S_0 = 1 - C(4, 3) / C(6, 3) = 0.8, S_1 = 1 (two rejected cannot fill three draws). Each
    correction is g (b - m a) with b = a / 2: zero. Q = m (0.8 + 1) / 2 = 0.45.
    """
    sweep = preference_sweep(two_prompts(), [0.1], max_attempts=3)
    assert sweep.preference[0] == pytest.approx(0.45)
    assert sweep.failure[0] == pytest.approx(0.1) and sweep.acceptance[0] == pytest.approx(6 / 12)
    assert sweep.prompts == 2 and sweep.short_prompts == 0 and sweep.judgements == 3


def test_hand_example_correction():
    """Accepted sides whose wins differ from the pooled rate; M = 2, four completions a prompt.

    At 0.35 prompt 0 accepts completion 0 only, prompt 1 completion 4 only. Pair (0, 1): 0 accepted
    and wins; pair (2, 3): neither accepted; pair (4, 5): 4 accepted and loses. m = (1 + 0) / 2.
    Both prompts: S = 1 - C(3, 2) / C(4, 2) = 1/2. Pair (0, 1): its others (2, 3) both rejected,
    g = 1 + C(2, 1) / C(2, 1) = 2, correction 2 (1 - m) / 2 = 1/2; pair (2, 3): 0; prompt 0's mean
    correction 1/4, Q_0 = m S + 1/4 = 1/2. Pair (4, 5): g = 2, correction 2 (0 - m) / 2 = -1/2,
    Q_1 = 1/4 - 1/2 (a single prompt's value may fall outside [0, 1]; the mean is what is unbiased).
    """
    data = ComparisonData(
        prompt_of=np.repeat([0, 1], 4), score=np.array([0.01, 0.9, 0.8, 0.7, 0.3, 0.9, 0.8, 0.7]),
        first=np.array([0, 2, 4]), second=np.array([1, 3, 5]), first_win=np.array([1.0, 0.5, 0.0]), n_prompts=2,
    )
    q0, q1 = 0.5, 0.25 - 0.5
    sweep = preference_sweep(data, [0.35], max_attempts=2)
    assert sweep.preference[0] == pytest.approx((q0 + q1) / 2)
    # m_hat's share of the error (delta method): A = mean(S_p - G_p) = mean(1/2 - 1/2, 1/2 - 1) = -1/4,
    # G_0 = (2 * 1/2 + 0) / 2, G_1 = 2 * 1/2; W_0 - m N_0 = 1 - 1/2, W_1 - m N_1 = 0 - 1/2; mean N_p = 1
    psi0, psi1 = q0 - 0.25 * 0.5, q1 - 0.25 * -0.5
    assert sweep.standard_error[0] == pytest.approx(abs(psi0 - psi1) / 2)  # sd of two values / sqrt(2)
    assert sweep.accepted_sides[0] == 2


def test_edges_nothing_or_everything_accepted():
    data = two_prompts()
    sweep = preference_sweep(data, [0.0, 1.0], max_attempts=100)
    assert sweep.preference.tolist() == [0.0, 0.5]
    assert sweep.failure.tolist() == [1.0, 0.0]


def test_prompts_without_a_judged_pair_are_left_out():
    data = two_prompts()
    more = ComparisonData(
        prompt_of=np.r_[data.prompt_of, [2, 2, 2]], score=np.r_[data.score, [0.01, 0.02, 0.9]],
        first=data.first, second=data.second, first_win=data.first_win, n_prompts=3,
    )
    a, b = preference_sweep(data, [0.1, 0.5], max_attempts=3), preference_sweep(more, [0.1, 0.5], max_attempts=3)
    np.testing.assert_array_equal(a.preference, b.preference)
    assert b.prompts == 2


@pytest.mark.parametrize("completions,max_attempts,block", [
    ((3, 8), 5, None), ((101, 104), 100, None), ((4, 30), 100, 7), ((2, 2), 1, None), ((5, 12), 100, 40),
])
def test_equals_the_reference_loops(completions, max_attempts, block, monkeypatch):
    """Exact counts (>= M + 1 completions), the fitted prior's tail (fewer), thresholds in blocks."""
    if block:
        monkeypatch.setattr(preference, "BLOCK_CELLS", block * 20)
    world = simulation.World("t", "", prompts=25, completions=completions, pairs=(1, 3), max_attempts=max_attempts)
    data = world.dataset(np.random.default_rng(3))
    thresholds = np.r_[np.quantile(data.score, [0.02, 0.1, 0.3, 0.5, 0.9]), -1.0, 2.0]
    fast = preference_sweep(data, thresholds, max_attempts=max_attempts)
    slow = reference.preference_sweep(data, thresholds, max_attempts=max_attempts)
    np.testing.assert_allclose(fast.preference, slow[0], atol=1e-12)
    np.testing.assert_allclose(fast.lower, slow[1], atol=1e-12)
    np.testing.assert_allclose(fast.upper, slow[2], atol=1e-12)
    assert choose_threshold(fast, lower_bound=0.3, min_accepted_sides=0) == reference.choose_threshold(
        thresholds, slow[1], lower_bound=0.3)


def test_a_threshold_resting_on_few_accepted_sides_is_not_chosen():
    """One accepted side: its win value is the pooled rate, every prompt's value the same, and the
    interval would be a point; such a threshold is not chosen (nor any below 20 accepted sides)."""
    world = simulation.World("t", "", prompts=60, completions=(101, 101), pairs=(4, 4))
    data = world.dataset(np.random.default_rng(0))
    order = np.sort(np.r_[data.score[data.first], data.score[data.second]])
    thresholds = np.r_[order[0] + 1e-12, order[25] + 1e-12]  # 1 and 26 accepted sides
    sweep = preference_sweep(data, thresholds)
    assert sweep.accepted_sides.tolist() == [1, 26]
    chosen = choose_threshold(sweep, lower_bound=-1.0)
    assert chosen == thresholds[1] and choose_threshold(sweep, lower_bound=-1.0, min_accepted_sides=1) == thresholds[0]


def test_thresholds_in_any_order_nan_scores_never_accepted():
    data = two_prompts()
    score = data.score.copy()
    score[3] = np.nan
    data = ComparisonData(data.prompt_of, score, data.first, data.second, data.first_win, 2)
    forward = preference_sweep(data, [0.05, 0.1, 0.5], max_attempts=3)
    backward = preference_sweep(data, [0.5, 0.1, 0.05], max_attempts=3)
    np.testing.assert_array_equal(forward.preference, backward.preference[::-1])
    assert preference_sweep(data, [np.inf], max_attempts=3).acceptance[0] == pytest.approx(11 / 12)


@pytest.mark.parametrize("change,message", [
    (dict(first=np.array([5]), second=np.array([5]), first_win=np.array([1.0])), "itself"),
    (dict(first=np.array([0]), second=np.array([7]), first_win=np.array([1.0])), "different prompts"),
    (dict(first=np.array([0]), second=np.array([1]), first_win=np.array([1.5])), "first_win"),
    (dict(first=np.array([], dtype=int), second=np.array([], dtype=int), first_win=np.array([])), "no judged"),
    (dict(first=np.array([0]), second=np.array([99]), first_win=np.array([1.0])), "unknown completion"),
])
def test_invalid_data_is_refused(change, message):
    data = two_prompts()
    fields = dict(prompt_of=data.prompt_of, score=data.score, n_prompts=2) | change
    with pytest.raises(ValueError, match=message):
        preference_sweep(ComparisonData(**fields), [0.1])
    with pytest.raises(ValueError):
        preference_sweep(data, [0.1], level=1.0)
    with pytest.raises(ValueError):
        preference_sweep(data, [np.nan])


# --------------------------------------------------------------------------------------------
# the simulation study


@pytest.mark.parametrize("world", simulation.worlds(), ids=lambda w: w.name)
def test_world_truth_is_the_filtered_generator_run_directly(world):
    """The quadrature truth equals running rejection sampling on 60,000 new prompts."""
    thresholds = [world.threshold_accepting(s) for s in (0.05, 0.2, 0.5, 0.9)]
    np.testing.assert_allclose(world.acceptance(thresholds), [0.05, 0.2, 0.5, 0.9], atol=1e-9)
    direct = world.simulate_filtered(thresholds, 60_000, np.random.default_rng(5))
    np.testing.assert_allclose(world.truth(thresholds), direct, atol=0.006)  # ~4 MC standard errors


@pytest.mark.parametrize("world", simulation.worlds(), ids=lambda w: w.name)
def test_estimator_is_unbiased_and_its_intervals_cover(world):
    """150 replicate data sets of the world (400 prompts, 101-130 completions each): the mean error
    is within Monte-Carlo noise of 0 at every threshold accepting 5-95 %, the 95 % intervals cover
    the truth 92-98 % of the time (750 intervals; sd ~0.8 %), and the chosen threshold's true
    preference is at least 47 % in 95 % of replicates. The full-size study is in BENCHMARKS.md."""
    result = simulation.run_study(world, 150, seed=11)
    assert np.all(np.abs(result.mean_error) <= 3.5 * result.error_se + 1e-3), (result.mean_error, result.error_se)
    assert 0.92 <= result.coverage.mean() <= 0.98, result.coverage
    assert result.coverage.min() >= 0.87, result.coverage
    assert result.chosen_ok >= 0.95 and result.none_chosen < 0.05, (result.chosen_ok, result.none_chosen)


def test_the_study_detects_a_biased_estimator():
    """The same study run on an estimator that ignores filter failures (the win rate of accepted
    sides alone, with a generous interval) fails it."""
    world = simulation.worlds()[2]  # the filter fails often

    def ignoring_failures(data, thresholds, max_attempts):
        accepted_first = data.score[data.first][:, None] < thresholds
        accepted_second = data.score[data.second][:, None] < thresholds
        wins = (data.first_win[:, None] * accepted_first + (1 - data.first_win[:, None]) * accepted_second).sum(0)
        sides = (accepted_first.astype(float) + accepted_second).sum(0)
        rate = np.divide(wins, sides, out=np.full(sides.shape, 0.5), where=sides > 0)
        return rate, rate - 0.03, rate + 0.03

    result = simulation.run_study(world, 40, seed=1, estimator=ignoring_failures)
    assert result.mean_error[0] > 0.1 and result.coverage[0] < 0.5
