"""Contract: request-level idempotency keys."""

import pytest

from eventlog.errors import IdempotencyKeyReused
from eventlog.idempotency import run_once
from eventlog.models import Event
from eventlog.store import NewEvent, Stream, append
from tests.fixture_app.events import Tick

pytestmark = [pytest.mark.contract, pytest.mark.django_db]


def submit(n):
    def command():
        return {"position": append([NewEvent(Stream("tick", "k"), Tick(n=n))]).last_position}

    return command


def test_same_key_and_request_returns_the_first_result_without_writing():
    first, replayed = run_once(scope="s", key="k1", request={"n": 1}, command=submit(1))
    again, replayed_again = run_once(scope="s", key="k1", request={"n": 1}, command=submit(1))
    assert (replayed, replayed_again) == (False, True)
    assert again == first
    assert Event.objects.count() == 1


def test_same_key_with_a_different_request_is_refused_with_422():
    run_once(scope="s", key="k1", request={"n": 1}, command=submit(1))
    with pytest.raises(IdempotencyKeyReused) as caught:
        run_once(scope="s", key="k1", request={"n": 2}, command=submit(2))
    assert caught.value.status_code == 422
    assert Event.objects.count() == 1


def test_keys_are_scoped():
    run_once(scope="user:1", key="k", request={"n": 1}, command=submit(1))
    _, replayed = run_once(scope="user:2", key="k", request={"n": 1}, command=submit(1))
    assert not replayed
    assert Event.objects.count() == 2


def test_a_failed_command_leaves_the_key_free_for_a_retry():
    def failing():
        append([NewEvent(Stream("tick", "k"), Tick(n=1))])
        raise RuntimeError("lost")

    with pytest.raises(RuntimeError):
        run_once(scope="s", key="k2", request={"n": 1}, command=failing)
    result, replayed = run_once(scope="s", key="k2", request={"n": 1}, command=submit(1))
    assert not replayed and Event.objects.count() == 1
