"""The report's statistics: pure numpy/scipy, no Django. (Threshold selection's estimator is
`evaluation.preference`.)

- `beta_interval`: a rate (misses of total) with a Beta(1, 1) prior, central credible interval;
- `bootstrap_ratio`: ``sum(numerators) / sum(denominators)`` resampling rows (e.g. seconds per
  success over contractor-days; a replicate whose denominator is 0 counts as ``+inf``);
- `bootstrap_clustered_mean`: the mean of values that come in groups (ratings of one snippet,
  judgements of one prompt), resampling whole groups, so that several values of one group are not
  taken for independent evidence;
- `bootstrap_mean`: the mean of independent values;
- `classification_counts`: test-set false negatives and positives at a threshold.

Bootstrap intervals are percentile intervals (numpy's "linear" rule: position ``(B - 1) * q`` in
the sorted replicates) from replicates drawn with ``numpy.random.default_rng(seed)`` in chunks
(`resample_chunks`); the slow reference in `evaluation.reference` uses the very same indices.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import special

#: resample indices are drawn in chunks of about this many cells (rows x n), so memory stays bounded
RESAMPLE_CHUNK_CELLS = 1 << 22

# --------------------------------------------------------------------------------------------
# resampling, shared with evaluation.reference


def resample_chunks(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """The bootstrap's draws: arrays of shape (rows, n) of indices in ``0 .. n-1``, ``resamples`` rows in all.

    Row ``b`` (counting across chunks) is replicate ``b``. The chunking depends only on ``n``, so
    the same ``(n, resamples, seed)`` always gives the same indices.
    """
    if n < 1:
        raise ValueError("nothing to resample")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    rng = np.random.default_rng(seed)
    rows = max(1, RESAMPLE_CHUNK_CELLS // n)
    done = 0
    while done < resamples:
        take = min(rows, resamples - done)
        yield rng.integers(0, n, size=(take, n))
        done += take


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """All of `resample_chunks` as one (resamples, n) array."""
    return np.concatenate(list(resample_chunks(n, resamples, seed)))


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """(rows, n) indices -> (rows, n) how often each index was drawn in each row."""
    rows = indices.shape[0]
    flat = (indices + (np.arange(rows) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n)


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0 (numpy's "linear" rule), safe with ``+inf`` replicates."""
    q = np.array([(1 - level) / 2, (1 + level) / 2])
    ordered = np.sort(replicates, axis=0)
    position = (ordered.shape[0] - 1) * q
    below = np.floor(position).astype(int)
    above = np.ceil(position).astype(int)
    out = []
    for k in range(2):
        a, b = ordered[below[k]], ordered[above[k]]
        with np.errstate(invalid="ignore"):
            out.append(np.where(a == b, a, a + (b - a) * (position[k] - below[k])))
    return out[0], out[1]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError("level must lie strictly between 0 and 1")



# --------------------------------------------------------------------------------------------
# report statistics


def beta_interval(misses: int, total: int, *, level: float = 0.95) -> tuple[float, float, float]:
    """(posterior mean, lower, upper) of a rate with ``misses`` out of ``total``, Beta(1, 1) prior, central interval."""
    _check_level(level)
    misses, total = int(misses), int(total)
    if total < 0 or misses < 0 or misses > total:
        raise ValueError("need 0 <= misses <= total")
    a, b = misses + 1, total - misses + 1
    lo = float(special.betaincinv(a, b, (1 - level) / 2))
    hi = float(special.betaincinv(a, b, (1 + level) / 2))
    return a / (a + b), lo, hi


def bootstrap_ratio(numerators, denominators, *, resamples: int = 10_000, level: float = 0.95,
                    seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """sum(numerators) / sum(denominators) with a bootstrap percentile interval, resampling rows.

    Rows (e.g. contractor-days: seconds spent, successes) are drawn with replacement. A replicate
    whose denominator sums to 0 counts as ``+inf`` (e.g. no success in the resampled days: infinite
    time per success), so the upper bound may be ``inf``. All None when there are no rows or the
    denominators sum to 0.
    """
    _check_level(level)
    num = np.asarray(numerators, dtype=np.float64).ravel()
    den = np.asarray(denominators, dtype=np.float64).ravel()
    if num.shape != den.shape:
        raise ValueError("numerators and denominators need the same length")
    if num.size == 0 or den.sum() == 0:
        return None, None, None
    replicates = np.empty(resamples)
    row = 0
    for indices in resample_chunks(num.size, resamples, seed):
        top, bottom = num[indices].sum(axis=1), den[indices].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            replicates[row:row + len(indices)] = np.where(bottom == 0, np.inf, top / bottom)
        row += len(indices)
    lo, hi = percentile_interval(replicates, level)
    return float(num.sum() / den.sum()), float(lo), float(hi)


def bootstrap_mean(values, *, resamples: int = 10_000, level: float = 0.95,
                   seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """Mean with a bootstrap percentile interval (values drawn with replacement); all None when empty."""
    _check_level(level)
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return None, None, None
    replicates = np.concatenate([v[indices].mean(axis=1) for indices in resample_chunks(v.size, resamples, seed)])
    lo, hi = percentile_interval(replicates, level)
    return float(v.mean()), float(lo), float(hi)


def bootstrap_clustered_mean(values, groups, *, resamples: int = 10_000, level: float = 0.95,
                             seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """Mean of ``values`` with a bootstrap interval that resamples whole groups.

    ``groups``: the group of each value (any labels; resampled in the order of ``numpy.unique``).
    A replicate is the mean over all values of the drawn groups (a group drawn twice counts
    twice). All None when there are no values.
    """
    _check_level(level)
    v = np.asarray(values, dtype=np.float64).ravel()
    g = np.asarray(groups).ravel()
    if v.shape != g.shape:
        raise ValueError("values and groups need the same length")
    if v.size == 0:
        return None, None, None
    if np.any(np.isnan(v)):
        raise ValueError("NaN value")
    _, inverse = np.unique(g, return_inverse=True)
    G = int(inverse.max()) + 1
    per_group = np.stack([np.bincount(inverse, weights=v, minlength=G),
                          np.bincount(inverse, minlength=G).astype(np.float64)], axis=1)
    replicates = []
    for indices in resample_chunks(G, resamples, seed):
        sums = _counts(indices, G).astype(np.float64) @ per_group
        replicates.append(sums[:, 0] / sums[:, 1])
    lo, hi = percentile_interval(np.concatenate(replicates), level)
    return float(v.mean()), float(lo), float(hi)


def classification_counts(injurious, scores, threshold: float) -> dict:
    """Test-set counts at a threshold: a snippet is flagged when ``score >= threshold``.

    fn = injurious and not flagged (of ``positives``), fp = not injurious and flagged (of
    ``negatives``); fnr / fpr are None when their denominator is 0.
    """
    y = np.asarray(injurious, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError("injurious and scores need the same length")
    flagged = s >= threshold
    positives, negatives = int(y.sum()), int((~y).sum())
    fn, fp = int((y & ~flagged).sum()), int((~y & flagged).sum())
    return {"fn": fn, "positives": positives, "fp": fp, "negatives": negatives,
            "fnr": fn / positives if positives else None, "fpr": fp / negatives if negatives else None}

