"""Threshold selection by simulated rejection sampling over the labelled quality comparisons.

Candidate thresholds are log-spaced from 1e-6 to 0.5 (the paper's thresholds were about 0.002,
the attack threshold 0.05), so the sweep resolves both ends; all are evaluated at once.
"""

from dataclasses import dataclass

import numpy as np

from evaluation import selectors, stats
from eventlog.store import head_position
from modelserve import services as registry

CANDIDATES = np.logspace(-6, np.log10(0.5), 1000)
LOWER_BOUND = 0.48
LEVEL = 0.95
RESAMPLES = 1000


@dataclass(frozen=True)
class Selection:
    version: str
    dataset_id: int
    sweep: stats.Sweep
    threshold: float | None
    lower_bound: float
    judgements: int
    log_position: int

    def at(self, threshold: float) -> tuple[float, float, float]:
        """Preference (estimate, lower, upper) at the candidate nearest below `threshold`."""
        i = max(0, int(np.searchsorted(self.sweep.thresholds, threshold, side="right")) - 1)
        return float(self.sweep.preference[i]), float(self.sweep.lower[i]), float(self.sweep.upper[i])

    @property
    def method(self) -> str:
        return (f"simulated rejection sampling on dataset {self.dataset_id} ({self.judgements} judgements, "
                f"lowest threshold with the {self.sweep.level:.0%} lower bound above {self.lower_bound:.0%}, "
                f"log position {self.log_position})")


def select_threshold(
    version: str, dataset_id: int, *, lower_bound: float = LOWER_BOUND, level: float = LEVEL,
    resamples: int = RESAMPLES, seed: int = 0, thresholds: np.ndarray = CANDIDATES,
) -> Selection:
    position = head_position()
    found = selectors.comparisons(dataset_id, version)
    sweep = stats.preference_sweep(found.data, thresholds, level=level, resamples=resamples, seed=seed)
    return Selection(version, dataset_id, sweep, stats.choose_threshold(sweep, lower_bound=lower_bound), lower_bound,
                     found.judgements, position)


def apply(selection: Selection) -> None:
    """Make the selected threshold the one the filtered generator uses with this classifier."""
    if selection.threshold is None:
        raise ValueError("no candidate threshold keeps the lower bound above the limit")
    registry.choose_threshold(version=selection.version, threshold=selection.threshold, method=selection.method)
