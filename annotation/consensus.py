"""The labelling rule, as a pure function of the labels collected so far.

- Once `required` labels are in, a strict majority settles the snippet (two that agree, by
  default). "Unsure" is an answer of its own.
- Without a strict majority, one tie-break label is opened for a further, distinct
  labeller, if the dataset allows it; the final label is then the strict majority of all.
- Still no strict majority (e.g. injurious / not injurious / unsure): NO_MAJORITY.
- Disagreement in a dataset without tie-breaks: DISPUTED, no final label.
"""

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    status: str  # "open", "settled", "no_majority" or "disputed"
    final_label: str  # "" unless settled
    required: int  # labels wanted in all, a tie-break included
    tie_break_opened: bool


def decide(labels: list[str], *, base_required: int, tie_break: bool, tie_break_opened: bool) -> Outcome:
    required = base_required + (1 if tie_break_opened else 0)
    if len(labels) < base_required:
        return Outcome("open", "", required, tie_break_opened)
    label, count = Counter(labels).most_common(1)[0]
    if count * 2 > len(labels):
        # Settled, even if a tie-break was opened and a correction has since removed the
        # disagreement.
        return Outcome("settled", label, required, tie_break_opened)
    if len(labels) < required:
        return Outcome("open", "", required, tie_break_opened)
    if tie_break and not tie_break_opened:
        return Outcome("open", "", base_required + 1, True)
    return Outcome("no_majority" if tie_break else "disputed", "", required, tie_break_opened)
