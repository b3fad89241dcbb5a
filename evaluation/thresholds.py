"""Threshold selection by simulated rejection sampling over the labelled quality comparisons.

Candidate thresholds are log-spaced from 1e-6 to 0.5 (the paper's thresholds were about 0.002,
the attack threshold 0.05), so the sweep resolves both ends; all are evaluated at once by
`evaluation.preference` (its docstring defines the estimand and the estimator).
"""

from dataclasses import dataclass

import numpy as np

from evaluation import preference, selectors
from evaluation.errors import EvaluationError
from eventlog.store import head_position
from modelserve import registry

CANDIDATES = np.logspace(-6, np.log10(0.5), 1000)
LOWER_BOUND = 0.48
LEVEL = 0.95


@dataclass(frozen=True)
class Selection:
    version: str
    dataset_id: int
    sweep: preference.Sweep
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
        return (f"simulated rejection sampling on dataset {self.dataset_id} ({self.judgements} judgements of "
                f"{self.sweep.prompts} prompts, lowest threshold with the {self.sweep.level:.0%} lower bound above "
                f"{self.lower_bound:.0%}, log position {self.log_position})")

    @property
    def short_prompts_note(self) -> str:
        """Why the estimate may lean on a model, or an empty string."""
        short, M = self.sweep.short_prompts, self.sweep.max_attempts
        if not short:
            return ""
        return (f"{short} of {self.sweep.prompts} prompts have fewer than {M + 1} scored completions: for them the "
                f"chance that {M} draws all fail is extrapolated from a fitted prior, which can bias the estimate at "
                f"strict thresholds. A comparison set for threshold selection should draw at least {M + 1} "
                "completions a prompt (only a few pairs of them need judging).")


def select_threshold(
    version: str, dataset_id: int, *, lower_bound: float = LOWER_BOUND, level: float = LEVEL,
    thresholds: np.ndarray = CANDIDATES,
) -> Selection:
    position = head_position()
    found = selectors.comparisons(dataset_id, version)
    sweep = preference.preference_sweep(found.data, thresholds, level=level)
    return Selection(version, dataset_id, sweep, preference.choose_threshold(sweep, lower_bound=lower_bound), lower_bound,
                     found.judgements, position)


def as_result(selection: Selection) -> dict:
    """The selection as JSON-ready data (what a threshold-selection job keeps)."""
    sweep = selection.sweep
    chosen = selection.threshold
    return {
        "version": selection.version, "dataset_id": selection.dataset_id, "threshold": chosen,
        "at_chosen": list(selection.at(chosen)) if chosen is not None else None,
        "lower_bound": selection.lower_bound, "level": sweep.level, "judgements": selection.judgements,
        "prompts": sweep.prompts, "short_prompts": sweep.short_prompts, "short_prompts_note": selection.short_prompts_note,
        "method": selection.method, "log_position": selection.log_position,
        "sweep": {name: [float(v) for v in getattr(sweep, name)]
                  for name in ("thresholds", "preference", "lower", "upper", "acceptance", "failure")},
    }


def apply_result(result: dict) -> None:
    """Make a computed selection's threshold the one the filtered generator uses with its classifier."""
    if result["threshold"] is None:
        raise EvaluationError("no candidate threshold keeps the lower bound above the limit")
    registry.choose_threshold(version=result["version"], threshold=result["threshold"], method=result["method"])


def apply(selection: Selection) -> None:
    """Make the selected threshold the one the filtered generator uses with this classifier."""
    if selection.threshold is None:
        raise ValueError("no candidate threshold keeps the lower bound above the limit")
    registry.choose_threshold(version=selection.version, threshold=selection.threshold, method=selection.method)
