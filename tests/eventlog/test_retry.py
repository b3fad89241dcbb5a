"""retry_on_conflict: a command tried again after a concurrent writer, a bounded number of times."""

import pytest

from eventlog.errors import ConcurrencyConflict
from eventlog.retry import retry_on_conflict


class Busy(Exception):
    pass


def conflicts(times: int, then="done"):
    calls = []

    def attempt():
        calls.append(len(calls))
        if len(calls) <= times:
            raise ConcurrencyConflict("item/1", 3, 4)
        return then

    return attempt, calls


def test_tries_again_after_each_conflict_and_returns_what_got_through():
    attempt, calls = conflicts(2)
    caught_up = []
    assert retry_on_conflict(attempt, tries=3, too_busy=Busy, after_conflict=lambda: caught_up.append(1)) == "done"
    assert len(calls) == 3 and len(caught_up) == 2


def test_gives_up_with_the_callers_error_after_the_last_try():
    attempt, calls = conflicts(5)
    with pytest.raises(Busy):
        retry_on_conflict(attempt, tries=3, too_busy=lambda: Busy("too busy"))
    assert len(calls) == 3


def test_any_other_error_is_not_retried():
    calls = []

    def attempt():
        calls.append(1)
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        retry_on_conflict(attempt, tries=3, too_busy=Busy)
    assert calls == [1]
