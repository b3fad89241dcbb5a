"""Threshold selection by simulated rejection sampling over the labelled quality comparisons.

Candidate thresholds are log-spaced from 1e-6 to 0.5 (the paper's thresholds were about 0.002,
the attack threshold 0.05), so the sweep resolves both ends; all are evaluated at once by
`evaluation.preference` (its docstring defines the estimand and the estimator).
"""

from dataclasses import dataclass

import numpy as np

from annotation.models import Dataset
from evaluation import preference, selectors
from evaluation.errors import EvaluationError
from eventlog.reading import head_position
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
    extrapolated: bool = False  # chosen although some prompts have too few completions (allowed by the caller)
    withheld: float | None = None  # what would be chosen from extrapolated estimates, had the caller allowed it

    def at(self, threshold: float) -> tuple[float, float, float]:
        """Preference (estimate, lower, upper) at the candidate nearest below `threshold`."""
        i = max(0, int(np.searchsorted(self.sweep.thresholds, threshold, side="right")) - 1)
        return float(self.sweep.preference[i]), float(self.sweep.lower[i]), float(self.sweep.upper[i])

    @property
    def method(self) -> str:
        extrapolated = ", extrapolated: prompts with too few completions" if self.extrapolated else ""
        return (f"simulated rejection sampling on dataset {self.dataset_id} ({self.judgements} judgements of "
                f"{self.sweep.prompts} prompts, lowest threshold with the {self.sweep.level:.0%} lower bound above "
                f"{self.lower_bound:.0%}, log position {self.log_position}{extrapolated})")

    @property
    def short_prompts_note(self) -> str:
        """Why the estimate may lean on a model, or an empty string."""
        short, M = self.sweep.short_prompts, self.sweep.max_attempts
        if not short:
            return ""
        return (f"{short} of {self.sweep.prompts} prompts have fewer than {M + 1} scored completions: for them the "
                f"chance that {M} draws all fail is extrapolated from a fitted prior, and the estimate can be too high "
                f"by several points at any threshold (up to 18 in simulations with 4-5 completions a prompt). A "
                f"comparison set for threshold selection should draw at least {M + 1} completions a prompt (only a "
                "few pairs of them need judging).")


def select_threshold(
    version: str, dataset_id: int, *, lower_bound: float = LOWER_BOUND, level: float = LEVEL,
    thresholds: np.ndarray | None = None, allow_extrapolation: bool = False,
) -> Selection:
    """The sweep, and the chosen threshold: none where some prompts have fewer than
    ``max_attempts + 1`` completions, unless ``allow_extrapolation``."""
    position = head_position()
    found = selectors.comparisons(dataset_id, version)
    sweep = preference.preference_sweep(found.data, CANDIDATES if thresholds is None else thresholds, level=level)
    chosen = preference.choose_threshold(sweep, lower_bound=lower_bound)
    extrapolated = bool(sweep.short_prompts) and chosen is not None
    if extrapolated and not allow_extrapolation:
        return Selection(version, dataset_id, sweep, None, lower_bound, found.judgements, position, withheld=chosen)
    return Selection(version, dataset_id, sweep, chosen, lower_bound, found.judgements, position,
                     extrapolated=extrapolated)


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
        "dataset_name": Dataset.objects.filter(pk=selection.dataset_id).values_list("name", flat=True).first(),
        "withheld": selection.withheld,
        "extrapolated": selection.extrapolated,
        "at_chosen_rates": _rates(sweep, chosen), "min_accepted_sides": preference.MIN_ACCEPTED_SIDES,
        "sweep": {name: [float(v) for v in getattr(sweep, name)]
                  for name in ("thresholds", "preference", "lower", "upper", "acceptance", "failure", "accepted_sides")},
    }


def _rates(sweep: preference.Sweep, threshold: float | None) -> dict | None:
    """Acceptance and failure at a candidate threshold."""
    if threshold is None:
        return None
    i = int(np.flatnonzero(np.asarray(sweep.thresholds) == threshold)[0])
    return {"acceptance": float(sweep.acceptance[i]), "failure": float(sweep.failure[i]),
            "accepted_sides": int(sweep.accepted_sides[i])}


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
