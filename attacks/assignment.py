"""Which classifier a contractor attacks on a given day of an experiment.

A pure function of the experiment's seed, the contractor and the date: reproducible by anyone
with the experiment's settings, fixed for the day, and uniform over the classifiers across
contractor-days. The service records each draw as an event when the contractor starts work.
"""

import hashlib
from datetime import date


def classifier_for_day(classifiers: list[str], *, seed: int, user_id: int, day: date) -> str:
    if not classifiers:
        raise ValueError("an experiment needs classifiers")
    choices = sorted(set(classifiers))  # the order the PM listed them in does not matter
    digest = hashlib.sha256(f"{seed}:{user_id}:{day.isoformat()}".encode()).digest()
    return choices[int.from_bytes(digest[:8], "big") % len(choices)]
