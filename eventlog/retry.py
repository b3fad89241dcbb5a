"""Retrying a command whose append met a concurrent writer of the same stream."""

from collections.abc import Callable
from typing import TypeVar

from eventlog.errors import ConcurrencyConflict

T = TypeVar("T")


def retry_on_conflict(attempt: Callable[[], T], *, tries: int, too_busy: Callable[[], Exception],
                      after_conflict: Callable[[], None] | None = None) -> T:
    """Run `attempt` (it reads the state it decides on, then appends at the versions it read)
    until it gets through without a `ConcurrencyConflict`, at most `tries` times. Between tries
    `after_conflict` runs (to bring what the attempt reads up to date); after the last, the
    error `too_busy()` makes is raised."""
    for _ in range(tries):
        try:
            return attempt()
        except ConcurrencyConflict:
            if after_conflict is not None:
                after_conflict()
    raise too_busy()
