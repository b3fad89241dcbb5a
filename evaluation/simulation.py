"""Synthetic worlds with a known preference curve, to measure threshold selection's bias and coverage.

A world: prompts with an effect ``u`` (a mixture of normals) on the classifier's score; each
completion has a quality ``q ~ N(0, 1)`` and a score ``expit(c + u + f(q) + sigma e)``, ``e ~ N(0, 1)``,
``f(q) = slope q + bend (q^2 - 1)``. A person comparing completions ``x`` and ``y`` sees
``1.5 (q_x - q_y)`` plus logistic noise and calls it a tie when that is within 0.6 of 0. The true
``Q(t)`` (see `evaluation.preference`) is an integral over ``u``, ``q`` and the unfiltered ``q'``,
computed by Gauss-Hermite quadrature (`World.truth`); `World.simulate_filtered` checks it by
running the filtered generator itself.

A replicate draws a data set as the project collects one (prompts, completions scored, random
pairs of distinct completions judged), runs an estimator over the world's thresholds and records
the error at thresholds accepting 5-95 % of completions, whether the interval covers the truth,
and the true preference at the threshold the estimator would choose. `run_study` repeats that;
`manage.py simulate_threshold_selection` prints it (BENCHMARKS.md holds a full-size run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

from evaluation.preference import ComparisonData, choose_threshold, preference_sweep

JUDGE_SLOPE, TIE_BAND = 1.5, 0.6
#: acceptance shares at which the mean error is reported, and those whose interval coverage is
ERROR_AT = (0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95)
COVERAGE_AT = (0.05, 0.2, 0.5, 0.8, 0.9)
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def judge_expected_win(difference):
    """A person's expected win value for a quality difference (ties count half)."""
    return 0.5 * (special.expit(JUDGE_SLOPE * difference - TIE_BAND) + special.expit(JUDGE_SLOPE * difference + TIE_BAND))


def _against_unfiltered(q):
    return judge_expected_win(np.asarray(q)[..., None] - _NODES) @ _WEIGHTS


@dataclass(frozen=True)
class World:
    name: str
    description: str
    prompt_mixture: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 1.2),)  # (weight, mean, sd) of u
    offset: float = -3.0
    slope: float = -1.2
    bend: float = 0.0
    noise: float = 0.8
    prompts: int = 400
    completions: tuple[int, int] = (101, 130)  # per prompt, drawn uniformly
    pairs: tuple[int, int] = (4, 4)  # judged pairs per prompt, drawn uniformly
    max_attempts: int = 100
    lower_bound: float = 0.48
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def _f(self, q):
        return self.slope * q + self.bend * (q ** 2 - 1)

    def _prompt_nodes(self):
        u, w = [], []
        for weight, mean, sd in self.prompt_mixture:
            u.append(mean + sd * _NODES)
            w.append(weight * _WEIGHTS)
        return np.concatenate(u), np.concatenate(w) / sum(m[0] for m in self.prompt_mixture)

    def _acceptance_and_b(self, thresholds):
        """Per threshold x prompt node: acceptance a(u) and b(u) = E[w(x, y) [s(x) < t]]."""
        u, _ = self._prompt_nodes()
        logit = special.logit(np.clip(np.asarray(thresholds, dtype=np.float64), 1e-300, 1 - 1e-16))
        # P(accept | u, q) on the q nodes: thresholds x u x q
        z = (logit[:, None, None] - self.offset - u[None, :, None] - self._f(_NODES)[None, None, :]) / self.noise
        accept = special.ndtr(z)
        a = accept @ _WEIGHTS
        b = accept @ (_WEIGHTS * _against_unfiltered(_NODES))
        return a, b

    def truth(self, thresholds) -> np.ndarray:
        """The true Q(t) per threshold."""
        _, weights = self._prompt_nodes()
        a, b = self._acceptance_and_b(thresholds)
        M = self.max_attempts
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(a > 1e-12, -np.expm1(M * np.log1p(-np.minimum(a, 1 - 1e-16))) / a, M)
        return (g * b) @ weights

    def true_failure(self, thresholds) -> np.ndarray:
        """The probability that max_attempts draws all fail, per threshold."""
        _, weights = self._prompt_nodes()
        a, _ = self._acceptance_and_b(thresholds)
        return ((1 - a) ** self.max_attempts) @ weights

    def acceptance(self, thresholds) -> np.ndarray:
        _, weights = self._prompt_nodes()
        return self._acceptance_and_b(thresholds)[0] @ weights

    def threshold_accepting(self, share: float) -> float:
        """The threshold below which this share of unfiltered completions scores."""
        key = ("accepting", share)
        if key not in self._cache:
            root = optimize.brentq(lambda x: self.acceptance([special.expit(x)])[0] - share, -60, 60, xtol=1e-12)
            self._cache[key] = float(special.expit(root))
        return self._cache[key]

    def candidates(self, count: int = 150) -> np.ndarray:
        """Thresholds from 0.5 % to 99.5 % accepted, evenly spaced on the logit scale."""
        lo, hi = special.logit([self.threshold_accepting(0.005), self.threshold_accepting(0.995)])
        return special.expit(np.linspace(lo, hi, count))

    # ---------------------------------------------------------------------------------------

    def _draw_prompts(self, rng, n):
        weights = np.array([m[0] for m in self.prompt_mixture])
        component = rng.choice(len(weights), size=n, p=weights / weights.sum())
        mean = np.array([m[1] for m in self.prompt_mixture])[component]
        sd = np.array([m[2] for m in self.prompt_mixture])[component]
        return mean + sd * rng.standard_normal(n)

    def _scores(self, rng, u, quality):
        logit = self.offset + u + self._f(quality) + self.noise * rng.standard_normal(quality.shape)
        return special.expit(logit)

    def dataset(self, rng) -> ComparisonData:
        """What the project collects: completions of the unfiltered generator, scored; random pairs judged."""
        P = self.prompts
        per = rng.integers(self.completions[0], self.completions[1] + 1, P)
        u = self._draw_prompts(rng, P)
        prompt_of = np.repeat(np.arange(P), per)
        quality = rng.standard_normal(prompt_of.size)
        score = self._scores(rng, u[prompt_of], quality)
        offset = np.r_[0, np.cumsum(per)[:-1]]
        judged = rng.integers(self.pairs[0], self.pairs[1] + 1, P)
        pair_prompt = np.repeat(np.arange(P), judged)
        n = per[pair_prompt]
        i = rng.integers(0, n)
        j = (i + rng.integers(1, n)) % n  # another completion of the same prompt
        first, second = offset[pair_prompt] + i, offset[pair_prompt] + j
        seen = JUDGE_SLOPE * (quality[first] - quality[second]) + rng.logistic(0.0, 1.0, first.size)
        win = np.where(np.abs(seen) < TIE_BAND, 0.5, (seen > 0).astype(float))
        return ComparisonData(prompt_of, score, first, second, win, P)

    def simulate_filtered(self, thresholds, prompts: int, rng) -> np.ndarray:
        """The filtered generator run directly: new prompts, up to max_attempts draws, the first
        accepted judged (in expectation) against an unfiltered draw; a failure is a loss."""
        u = self._draw_prompts(rng, prompts)
        quality = rng.standard_normal((prompts, self.max_attempts))
        score = self._scores(rng, u[:, None], quality)
        out = []
        for t in thresholds:
            accepted = score < t
            chosen = quality[np.arange(prompts), accepted.argmax(axis=1)]
            out.append(np.where(accepted.any(axis=1), _against_unfiltered(chosen), 0.0).mean())
        return np.array(out)


def worlds(*, completions: tuple[int, int] = (101, 130)) -> list[World]:
    """The study's worlds (each with ``completions`` scored completions a prompt)."""
    return [
        World("quality rises and falls",
              "the best and the worst completions both score high: filtering keeps the middle",
              slope=-0.6, bend=0.9, completions=completions),
        World("acceptance differs 100x",
              "prompts' acceptance rates differ by two orders of magnitude",
              prompt_mixture=((1.0, 0.0, 2.5),), completions=completions),
        World("filter fails often",
              "a third of the prompts almost always draw flagged completions: the 100-try rule fires",
              prompt_mixture=((2.0, -0.5, 0.8), (1.0, 4.0, 0.6)), completions=completions),
        World("few judgements",
              "one to five judged pairs a prompt",
              pairs=(1, 5), completions=completions),
    ]


Estimator = Callable[[ComparisonData, np.ndarray, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def product_estimator(data: ComparisonData, thresholds: np.ndarray, max_attempts: int):
    sweep = preference_sweep(data, thresholds, max_attempts=max_attempts)
    return sweep.preference, sweep.lower, sweep.upper


@dataclass(frozen=True)
class StudyResult:
    world: World
    replicates: int
    error_at: np.ndarray  # acceptance shares
    truth: np.ndarray  # Q at those
    mean_error: np.ndarray  # estimate - truth, averaged over replicates
    error_se: np.ndarray  # its Monte-Carlo standard error
    coverage_at: np.ndarray
    coverage: np.ndarray  # share of replicates whose interval covers the truth
    true_failure: np.ndarray  # at coverage_at
    chosen_ok: float  # share of replicates whose chosen threshold's true Q >= lower bound - 0.01 (none chosen: ok)
    none_chosen: float
    chosen_truth_low: float  # lowest true Q at a chosen threshold

    def lines(self) -> list[str]:
        pts = lambda v: " ".join(f"{100 * x:+6.2f}" for x in v)  # noqa: E731
        return [
            f"  accepted      {' '.join(f'{s:>6.0%}' for s in self.error_at)}",
            f"  true Q        {' '.join(f'{x:6.3f}' for x in self.truth)}",
            f"  error (pts)   {pts(self.mean_error)}",
            f"  +- MC se      {' '.join(f'{100 * x:6.2f}' for x in self.error_se)}",
            f"  coverage at {', '.join(f'{s:.0%}' for s in self.coverage_at)} accepted: "
            f"{', '.join(f'{c:.1%}' for c in self.coverage)}"
            f"  (true failure {', '.join(f'{f:.2f}' for f in self.true_failure)})",
            f"  chosen threshold's true Q >= {self.world.lower_bound - 0.01:.2f}: {self.chosen_ok:.1%} "
            f"(none chosen {self.none_chosen:.1%}, lowest {self.chosen_truth_low:.3f})",
        ]


def run_study(world: World, replicates: int, *, seed: int = 0, estimator: Estimator = product_estimator,
              candidates: int = 150) -> StudyResult:
    error_t = np.array([world.threshold_accepting(s) for s in ERROR_AT])
    cover_t = np.array([world.threshold_accepting(s) for s in COVERAGE_AT])
    grid = world.candidates(candidates)
    thresholds = np.concatenate([error_t, cover_t, grid])
    truth = world.truth(thresholds)
    E, C = len(error_t), len(cover_t)
    errors, covered, chosen = [], [], []
    for r in range(replicates):
        data = world.dataset(np.random.default_rng([seed, r]))
        estimate, lower, upper = estimator(data, thresholds, world.max_attempts)
        errors.append(estimate[:E] - truth[:E])
        covered.append((lower[E:E + C] <= truth[E:E + C]) & (truth[E:E + C] <= upper[E:E + C]))
        sides = np.concatenate([data.score[data.first], data.score[data.second]])
        accepted_sides = np.searchsorted(np.sort(sides), grid, side="left")  # judged sides scoring below each
        pick = choose_threshold(_Bounds(grid, lower[E + C:], accepted_sides), lower_bound=world.lower_bound)
        chosen.append(np.nan if pick is None else float(truth[E + C:][np.searchsorted(grid, pick)]))
    errors, chosen = np.array(errors), np.array(chosen)
    picked = chosen[~np.isnan(chosen)]
    return StudyResult(
        world=world, replicates=replicates, error_at=np.array(ERROR_AT), truth=truth[:E],
        mean_error=errors.mean(axis=0), error_se=errors.std(axis=0, ddof=1) / np.sqrt(replicates),
        coverage_at=np.array(COVERAGE_AT), coverage=np.mean(covered, axis=0), true_failure=world.true_failure(cover_t),
        chosen_ok=float(np.mean(np.isnan(chosen) | (chosen >= world.lower_bound - 0.01))),
        none_chosen=float(np.mean(np.isnan(chosen))), chosen_truth_low=float(picked.min()) if picked.size else np.nan,
    )


@dataclass(frozen=True)
class _Bounds:
    """What `choose_threshold` reads of a sweep, for any estimator."""
    thresholds: np.ndarray
    lower: np.ndarray
    accepted_sides: np.ndarray
