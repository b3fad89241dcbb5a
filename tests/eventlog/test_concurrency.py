"""Contract: order equals commit order under concurrent writers, on separate connections."""

import random
import threading
import time

import pytest
from django.db import connection, transaction

from eventlog import guards, projections
from eventlog.errors import ConcurrencyConflict
from eventlog.models import Event, ProjectionCheckpoint
from eventlog.reading import read
from eventlog.store import NewEvent, Stream, append
from tests.conftest import run_threads
from tests.fixture_app.events import Tick
from tests.fixture_app.models import TickTotal

pytestmark = [pytest.mark.contract, pytest.mark.django_db(transaction=True)]


def tail_while_writing(*, writers: int, transactions: int, events_per_txn: int, hold_s: float):
    """Writers append (holding each transaction open briefly); a reader tails by position.

    Returns (positions the reader saw, positions in the table at the end).
    """
    done = threading.Event()
    seen: list[int] = []

    def writer(w):
        rng = random.Random(w)
        stream = Stream("writer", str(w))
        for i in range(transactions):
            with transaction.atomic():
                append([NewEvent(stream, Tick(n=i)) for _ in range(events_per_txn)])
                time.sleep(rng.uniform(0, hold_s))

    def reader():
        checkpoint = 0
        while True:
            finished = done.is_set()
            batch = read(after=checkpoint)
            seen.extend(e.position for e in batch)
            if batch:
                checkpoint = batch[-1].position
            elif finished:
                return
            else:
                time.sleep(0.0005)

    def writers_then_done():
        run_threads(*[lambda w=w: writer(w) for w in range(writers)])
        done.set()

    run_threads(writers_then_done, reader, timeout=120)
    return seen, list(Event.objects.order_by("position").values_list("position", flat=True))


def test_tailing_reader_sees_every_committed_event_once_in_order():
    seen, stored = tail_while_writing(writers=6, transactions=25, events_per_txn=2, hold_s=0.002)
    assert len(stored) == 6 * 25 * 2
    assert seen == stored  # nothing skipped, nothing twice, in order


def test_control_without_the_ordering_guard_the_reader_skips(postgres_only):
    """Proves the test above can fail: with the guard off, commits overtake positions."""
    skipped = 0
    with guards.ordering_guard_disabled(connection):
        for _attempt in range(3):
            seen, stored = tail_while_writing(writers=6, transactions=25, events_per_txn=2, hold_s=0.004)
            skipped = len(set(stored) - set(seen))
            if skipped:
                break
    assert skipped > 0


def test_large_concurrent_batches_never_interleave():
    barrier = threading.Barrier(4)
    size = 400

    def writer(w):
        barrier.wait()
        append([NewEvent(Stream("bulk", str(w)), Tick(n=i)) for i in range(size)])

    run_threads(*[lambda w=w: writer(w) for w in range(4)])
    owners = list(Event.objects.order_by("position").values_list("stream_id", flat=True))
    runs = [owners[0]] + [b for a, b in zip(owners, owners[1:]) if a != b]
    assert len(owners) == 4 * size
    assert sorted(runs) == ["0", "1", "2", "3"]  # each batch is one contiguous run


def test_an_open_append_holds_back_later_appends_and_projection_checkpoints():
    append([NewEvent(Stream("tick", "before"), Tick(n=1))])
    projections.advance(projections.get("fixture.tick_totals"))
    before = ProjectionCheckpoint.objects.get(name="fixture.tick_totals").position

    opened, release = threading.Event(), threading.Event()

    def slow_writer():
        with transaction.atomic():
            append([NewEvent(Stream("tick", "slow"), Tick(n=10))])
            opened.set()
            assert release.wait(30)

    def fast_writer():
        assert opened.wait(30)
        append([NewEvent(Stream("tick", "fast"), Tick(n=100))])

    def consumer():
        assert opened.wait(30)
        projections.advance(projections.get("fixture.tick_totals"), wait=True)

    def observer():
        assert opened.wait(30)
        time.sleep(0.5)
        # While the slow append is open, nothing after it may be committed or consumed.
        assert ProjectionCheckpoint.objects.get(name="fixture.tick_totals").position == before
        assert not Event.objects.filter(stream_id="fast").exists()
        release.set()

    run_threads(slow_writer, fast_writer, consumer, observer)
    projections.advance(projections.get("fixture.tick_totals"), wait=True)

    slow, fast = (Event.objects.get(stream_id=s).position for s in ("slow", "fast"))
    assert before < slow < fast
    totals = dict(TickTotal.objects.values_list("stream_id", "total"))
    assert totals == {"before": 1, "slow": 10, "fast": 100}


def test_competing_consumers_apply_each_event_exactly_once():
    for chunk in range(8):
        append([NewEvent(Stream("tick", str(i % 5)), Tick(n=chunk * 50 + i)) for i in range(50)])
    projection = projections.get("fixture.tick_totals")
    barrier = threading.Barrier(3)

    def consumer():
        barrier.wait()
        while projections.advance(projection, wait=False):
            pass

    run_threads(consumer, consumer, consumer)
    projections.advance(projection, wait=True)
    incremental = set(TickTotal.objects.values_list("stream_id", "count", "total", "positions_hash"))

    expected_totals = {}
    for event in read(types=["fixture.tick"]):
        count, total = expected_totals.get(event.stream.id, (0, 0))
        expected_totals[event.stream.id] = (count + 1, total + event.payload["n"])
    assert {(s, c, t) for s, c, t, _ in incremental} == {(s, c, t) for s, (c, t) in expected_totals.items()}

    projections.rebuild(projection)
    assert set(TickTotal.objects.values_list("stream_id", "count", "total", "positions_hash")) == incremental


def test_concurrent_duplicate_idempotency_key_runs_the_command_once():
    from eventlog.idempotency import run_once

    barrier = threading.Barrier(2)
    results = []

    def submit():
        barrier.wait()

        def command():
            result = append([NewEvent(Stream("label", "k"), Tick(n=7))])
            time.sleep(0.2)  # keep the first transaction open while the duplicate arrives
            return {"position": result.last_position}

        results.append(run_once(scope="test", key="key-1", request={"n": 7}, command=command))

    run_threads(submit, submit)
    assert Event.objects.filter(stream_id="k").count() == 1
    (first, replayed_a), (second, replayed_b) = results
    assert first == second
    assert sorted([replayed_a, replayed_b]) == [False, True]



def test_concurrent_appends_to_one_stream_get_gapless_versions_in_position_order():
    stream = Stream("shared", "1")

    def writer():
        for i in range(20):
            append([NewEvent(stream, Tick(n=i)), NewEvent(stream, Tick(n=i))])

    run_threads(*[writer] * 6)
    versions = list(Event.objects.filter(stream_id="1").order_by("position").values_list("version", flat=True))
    assert versions == list(range(1, 6 * 20 * 2 + 1))


def test_concurrent_appends_expecting_the_same_version_one_wins():
    stream = Stream("race", "1")
    append([NewEvent(stream, Tick(n=0))])
    barrier = threading.Barrier(5)
    outcomes = []

    def writer(n):
        barrier.wait()
        try:
            append([NewEvent(stream, Tick(n=n))], expected={stream: 1})
            outcomes.append("won")
        except ConcurrencyConflict as conflict:
            assert conflict.actual == 2
            outcomes.append("conflict")

    run_threads(*[lambda n=n: writer(n) for n in range(5)])
    assert sorted(outcomes) == ["conflict"] * 4 + ["won"]
    assert Event.objects.filter(stream_id="1", stream_type="race").count() == 2


@pytest.mark.parametrize("checkpoint_row", ["exists", "made by the holder"])
def test_a_consumer_queued_behind_another_goes_on_from_where_that_one_left_the_checkpoint(
    postgres_only, monkeypatch, checkpoint_row
):
    """The queued consumer's statement (lock and read in one) started before the holder
    committed: it must read on from the holder's new checkpoint, apply nothing twice and skip
    nothing; what is committed during its wait is left to its next batch. When the holder is
    the one creating the checkpoint row, the queued consumer waits for it too."""
    projection = projections.get("fixture.tick_totals")
    if checkpoint_row == "exists":
        projections.advance(projection)  # at 0
    append([NewEvent(Stream("tick", "a"), Tick(n=1))])
    holding, release = threading.Event(), threading.Event()
    applied = {}
    apply = type(projection).apply

    def apply_then_hold(self, events):
        apply(self, events)
        if not holding.is_set():
            holding.set()
            assert release.wait(30)

    monkeypatch.setattr(type(projection), "apply", apply_then_hold)

    def holder():
        projections.advance(projection, wait=True)  # applies "a", keeps the checkpoint until released

    def queued():
        assert holding.wait(30)
        append([NewEvent(Stream("tick", "b"), Tick(n=10))])  # before the queued statement starts

        def during_the_wait():
            time.sleep(0.3)
            append([NewEvent(Stream("tick", "c"), Tick(n=100))])  # after it started: its next batch
            release.set()

        def consume():
            applied["queued"] = projections.advance(projection, wait=True)

        run_threads(during_the_wait, consume)

    run_threads(holder, queued)
    applied["after"] = projections.advance(projection, wait=True)

    assert applied["queued"] >= 1  # it waited and applied "b" at least, not given up as busy
    assert applied["queued"] + applied["after"] == 2
    totals = dict(TickTotal.objects.values_list("stream_id", "total"))
    assert totals == {"a": 1, "b": 10, "c": 100}
    assert ProjectionCheckpoint.objects.get(name="fixture.tick_totals").position == max(
        e.position for e in read(types=["fixture.tick"])
    )
