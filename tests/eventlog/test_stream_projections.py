"""Contract: a stream projection, applied by each writer for its own streams, and by the runner."""

import random
import threading

import pytest
from django.db import transaction

from eventlog import projections
from eventlog.models import Event, ProjectionCheckpoint
from eventlog.reading import head_position
from eventlog.store import NewEvent, Stream, append
from tests.conftest import run_threads
from tests.fixture_app.events import ItemAdded, ItemRenamed
from tests.fixture_app.models import StreamItem

pytestmark = pytest.mark.contract

NAME = "fixture.stream_items"


def expected_rows():
    """What the read model must hold: per item stream, its events' positions in version order."""
    rows = {}
    for stream_id, version, position, payload in (
        Event.objects.filter(stream_type="item").order_by("stream_id", "version")
        .values_list("stream_id", "version", "position", "payload")
    ):
        _, _, positions = rows.get(stream_id, ("", 0, []))
        rows[stream_id] = (payload["name"], version, [*positions, position])
    return {k: (name, version, ",".join(map(str, positions))) for k, (name, version, positions) in rows.items()}


def actual_rows():
    return {row.stream_id: (row.name, row.version, row.positions) for row in StreamItem.objects.all()}


def checkpoint():
    return ProjectionCheckpoint.objects.filter(name=NAME).values_list("position", flat=True).first() or 0


@pytest.mark.django_db
def test_a_writer_applies_its_own_streams_and_the_runner_moves_the_checkpoint_without_applying_again():
    stream = Stream("item", "lamp")
    append([NewEvent(stream, ItemAdded(name="lamp", quantity=1)), NewEvent(stream, ItemRenamed(name="torch"))])
    append([NewEvent(Stream("item", "desk"), ItemAdded(name="desk", quantity=1))])
    assert actual_rows() == expected_rows()
    assert actual_rows()["lamp"][:2] == ("torch", 2)
    assert checkpoint() == 0  # the writers did not queue for it

    # The runner finds everything applied: the checkpoint moves, nothing is applied twice
    # (the fixture's handler refuses an event out of its stream's order).
    projections.run_all([NAME])
    assert checkpoint() == head_position()
    assert actual_rows() == expected_rows()


@pytest.mark.django_db
def test_what_a_writer_left_unapplied_is_applied_by_the_next_writer_of_the_stream_and_by_the_runner(monkeypatch):
    # Writers that stopped between their append's commit and applying it (a crash there).
    with monkeypatch.context() as patched:
        patched.setattr(projections, "catch_up_streams", lambda *args, **kwargs: None)
        append([NewEvent(Stream("item", "a"), ItemAdded(name="a", quantity=1))])
        append([NewEvent(Stream("item", "a"), ItemRenamed(name="a2"))])
        append([NewEvent(Stream("item", "b"), ItemAdded(name="b", quantity=1))])
    assert not StreamItem.objects.exists()
    first_unapplied = Event.objects.order_by("position").first().position
    assert projections.reflected_position([NAME]) == first_unapplied - 1

    append([NewEvent(Stream("item", "a"), ItemRenamed(name="a3"))])  # reads back the two it missed
    assert actual_rows() == {"a": expected_rows()["a"]}
    assert projections.reflected_position([NAME]) == Event.objects.get(stream_id="b").position - 1

    projections.run_all([NAME])
    assert actual_rows() == expected_rows()
    assert projections.reflected_position([NAME]) == head_position()


@pytest.mark.django_db
def test_in_a_callers_transaction_the_rows_roll_back_with_it():
    append([NewEvent(Stream("item", "kept"), ItemAdded(name="kept", quantity=1))])
    with pytest.raises(RuntimeError), transaction.atomic():
        append([NewEvent(Stream("item", "kept"), ItemRenamed(name="lost"))])
        append([NewEvent(Stream("item", "gone"), ItemAdded(name="gone", quantity=1))])
        assert actual_rows()["kept"][:2] == ("lost", 2)  # current inside the transaction
        raise RuntimeError("command failed after appending")
    assert actual_rows() == expected_rows() == {"kept": actual_rows()["kept"]}
    assert actual_rows()["kept"][:2] == ("kept", 1)


@pytest.mark.django_db(transaction=True)
def test_writers_the_runner_and_a_rebuild_at_once_apply_every_event_once_in_stream_order(postgres_only, monkeypatch):
    """Writers share a few streams and create new ones while the runner sweeps and a rebuild
    replays; a slow handler widens every window. The fixture's handler fails on an event applied
    twice or out of order; the rows must equal the log."""
    monkeypatch.setenv("FIXTURE_SLOW_STREAM_HANDLER", "0.002")
    projection = projections.get(NAME)
    writing = threading.Event()
    writing.set()

    def writer(w):
        rng = random.Random(w)
        for i in range(25):
            if i % 5 == 0:
                append([NewEvent(Stream("item", f"new-{w}-{i}"), ItemAdded(name=f"w{w}", quantity=i))])
            shared = Stream("item", f"shared-{rng.randrange(3)}")
            append([NewEvent(shared, ItemRenamed(name=f"w{w}-{i}"))])

    def runner():
        while writing.is_set():
            projections.advance(projection, batch_size=7)

    def rebuilder():
        for _ in range(2):
            projections.rebuild(projection)

    for n in range(3):
        append([NewEvent(Stream("item", f"shared-{n}"), ItemAdded(name="shared", quantity=0))])

    def writers_then_stop():
        try:
            run_threads(*[lambda w=w: writer(w) for w in range(6)], rebuilder, timeout=120)
        finally:
            writing.clear()

    run_threads(writers_then_stop, runner, timeout=150)
    assert actual_rows() == expected_rows()
    assert len(expected_rows()) == 3 + 6 * 5
    projections.run_all([NAME])
    assert checkpoint() == head_position()
    assert actual_rows() == expected_rows()


@pytest.mark.django_db
def test_a_writers_event_that_does_not_follow_on_is_applied_after_the_ones_it_missed(monkeypatch):
    stream = Stream("item", "lamp")
    append([NewEvent(stream, ItemAdded(name="lamp", quantity=1))])
    with monkeypatch.context() as patched:  # a writer that stopped before applying its rename
        patched.setattr(projections, "catch_up_streams", lambda *args, **kwargs: None)
        append([NewEvent(stream, ItemRenamed(name="torch"))])
    applied_following = []
    projection = projections.get(NAME)
    original = type(projection).apply_following
    monkeypatch.setattr(
        type(projection), "apply_following",
        lambda self, event: applied_following.append(original(self, event)) or applied_following[-1],
    )

    append([NewEvent(stream, ItemRenamed(name="candle"))])

    assert applied_following == [False]  # version 3 does not follow version 1: nothing written
    assert actual_rows() == expected_rows()
    assert actual_rows()["lamp"][:2] == ("candle", 3)
    append([NewEvent(stream, ItemRenamed(name="lantern"))])
    assert applied_following == [False, True]
    assert actual_rows() == expected_rows()
