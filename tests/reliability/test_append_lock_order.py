"""The append lock and the projection checkpoints are taken in one order, even by a writer that
catches a projection up inside its transaction (next task or an answer after a conflict, under
an Idempotency-Key): bench/load.py saw "deadlock detected" (HTTP 500) between two such
requests before `catch_up_to` took the append lock first."""

import threading
import time

import pytest
from django.db import transaction

from eventlog import projections
from eventlog.store import NewEvent, Stream, append
from tests.conftest import run_threads
from tests.fixture_app.events import ItemAdded, Tick
from tests.fixture_app.models import Item

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]


def test_a_catch_up_then_an_append_in_one_transaction_does_not_deadlock_another_appender():
    append([NewEvent(Stream("tick", "t"), Tick(n=1))])  # the head moves past fixture.items' checkpoint
    caught_up = threading.Event()

    def catching_up():  # what next_task does after a conflict, inside an idempotent request
        with transaction.atomic():
            projections.catch_up("fixture.items")  # locks the checkpoint until commit
            caught_up.set()
            time.sleep(0.5)  # the other writer appends meanwhile
            append([NewEvent(Stream("item", "retry"), ItemAdded(name="retry", quantity=1))])

    def appending():  # another idempotent request: append, then its inline projection
        assert caught_up.wait(10)
        time.sleep(0.1)
        with transaction.atomic():
            append([NewEvent(Stream("item", "other"), ItemAdded(name="other", quantity=1))])

    run_threads(catching_up, appending)  # re-raises "deadlock detected" if the order is crossed
    assert set(Item.objects.values_list("stream_id", flat=True)) == {"retry", "other"}
