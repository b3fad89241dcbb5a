"""Contract: appending, versions, validation, upcasting, event-id idempotency."""

import uuid

import pydantic
import pytest

from eventlog import context
from eventlog.errors import ConcurrencyConflict, EventIdConflict, InvalidPayload, UnknownEventType
from eventlog.models import Event
from eventlog.reading import read, read_stream
from eventlog.registry import Payload, event_type, registry
from eventlog.store import NO_STREAM, NewEvent, Stream, append
from tests.fixture_app.events import ItemAdded, ItemRenamed, Tick

pytestmark = [pytest.mark.contract, pytest.mark.django_db]

ITEM = Stream("item", "a")
OTHER = Stream("item", "b")


def test_append_assigns_positions_versions_and_metadata():
    with context.bind(actor="user:1", request_id="req-1"):
        first = append([NewEvent(ITEM, ItemAdded(name="lamp", quantity=2))], expected={ITEM: NO_STREAM})
        second = append([NewEvent(ITEM, ItemRenamed(name="torch")), NewEvent(OTHER, Tick(n=1))])

    assert first.versions == {ITEM: 1}
    assert second.versions == {ITEM: 2, OTHER: 1}
    assert first.positions[0] < second.positions[0] < second.positions[1]
    events = read_stream(ITEM)
    assert [(e.version, e.type) for e in events] == [(1, "fixture.item_added"), (2, "fixture.item_renamed")]
    assert events[0].payload == {"name": "lamp", "quantity": 2}
    assert events[0].metadata == {"actor": "user:1", "request_id": "req-1", "correlation_id": "req-1"}
    assert events[0].schema_version == 2
    assert events[0].recorded_at is not None
    assert isinstance(events[0].event_id, uuid.UUID)


def test_a_batch_takes_positions_in_its_own_order_across_streams():
    batch = [NewEvent(stream, Tick(n=n)) for n, stream in enumerate([ITEM, OTHER, ITEM, OTHER, ITEM])]
    result = append(batch)

    stored = read(after=result.positions[0] - 1)
    assert [e.position for e in stored] == result.positions
    assert [(e.stream, e.payload["n"], e.version) for e in stored] == [
        (ITEM, 0, 1), (OTHER, 1, 1), (ITEM, 2, 2), (OTHER, 3, 2), (ITEM, 4, 3)
    ]
    assert result.versions == {ITEM: 3, OTHER: 2}


def test_stream_ids_are_stored_as_given_whatever_their_characters():
    odd = Stream('it"em', 'a\\b "c" \u00e9\u6f22 \U0001f600 ,]}')
    append([NewEvent(odd, Tick(n=1)), NewEvent(odd, Tick(n=2))], metadata={"note": 'say "hi" \u00e9'})
    append([NewEvent(odd, Tick(n=3))], expected={odd: 2})

    events = read_stream(odd)
    assert [(e.stream, e.version, e.payload["n"]) for e in events] == [(odd, 1, 1), (odd, 2, 2), (odd, 3, 3)]
    assert events[0].metadata["note"] == 'say "hi" \u00e9'


@pytest.mark.parametrize("stream_id", ["\ud83d\ude00", "\ud83d"])
def test_a_stream_id_that_is_not_text_is_refused_not_altered(stream_id):
    # Surrogate code points cannot be stored as text; a pair must not come back joined into
    # another character under a stream id the caller never gave.
    with pytest.raises(UnicodeEncodeError):
        append([NewEvent(Stream("item", stream_id), Tick(n=1))])
    assert Event.objects.count() == 0


def test_expected_version_conflict_rejects_the_whole_batch():
    append([NewEvent(ITEM, ItemAdded(name="lamp", quantity=1))])
    before = Event.objects.count()

    with pytest.raises(ConcurrencyConflict) as caught:
        append(
            [NewEvent(OTHER, ItemAdded(name="fine", quantity=1)), NewEvent(ITEM, ItemRenamed(name="late"))],
            expected={OTHER: NO_STREAM, ITEM: NO_STREAM},
        )

    assert caught.value.actual == 1
    assert Event.objects.count() == before
    assert read_stream(OTHER) == []


def test_expected_version_matching_appends():
    append([NewEvent(ITEM, ItemAdded(name="lamp", quantity=1))])
    result = append([NewEvent(ITEM, ItemRenamed(name="torch"))], expected={ITEM: 1})
    assert result.versions[ITEM] == 2


def test_unknown_type_is_refused_and_nothing_written():
    with pytest.raises(UnknownEventType, match="unknown event type 'fixture.nope'"):
        registry.payload("fixture.nope", {"name": "x"})

    class NotDeclared(ItemRenamed.__base__):
        name: str

    with pytest.raises(UnknownEventType):
        append([NewEvent(ITEM, NotDeclared(name="x"))])
    assert Event.objects.count() == 0


@pytest.mark.parametrize("name", ["sample", "Fixture.tick", 'fixture.ti"ck', "fixture.", "fixture.tick-2"])
def test_an_event_type_is_named_app_dot_event(name):
    with pytest.raises(ValueError, match="app.event_name"):
        event_type(name)(type("Odd", (Payload,), {"__annotations__": {"n": int}}))
    assert name not in registry.names()


def test_invalid_payload_is_refused_with_a_clear_error_and_nothing_written():
    with pytest.raises(InvalidPayload) as caught:
        registry.payload("fixture.item_added", {"name": "lamp", "quantity": "many", "colour": "red"})
    message = str(caught.value)
    assert "quantity" in message and "colour" in message

    with pytest.raises(TypeError, match="must be validated"):
        ItemAdded.model_construct(name="lamp", quantity="many")
    with pytest.raises(pydantic.ValidationError):
        ItemAdded(name="lamp", quantity=1).model_copy(update={"quantity": "many"})
    assert Event.objects.count() == 0


def test_old_schema_versions_are_upcast_on_read():
    Event.objects.create(
        stream_type="item",
        stream_id="old",
        version=1,
        type="fixture.item_added",
        schema_version=1,
        payload={"name": "v1 lamp"},
        recorded_at="2026-01-01T00:00:00Z",
    )
    [event] = read_stream(Stream("item", "old"))
    assert event.schema_version == 1
    assert event.payload == {"name": "v1 lamp", "quantity": 1}
    assert event.data == ItemAdded(name="v1 lamp", quantity=1)


def test_retry_with_same_event_ids_writes_nothing_new():
    ids = [uuid.uuid4(), uuid.uuid4()]
    batch = [
        NewEvent(ITEM, ItemAdded(name="lamp", quantity=1), event_id=ids[0]),
        NewEvent(ITEM, ItemRenamed(name="torch"), event_id=ids[1]),
    ]
    first = append(batch, expected={ITEM: NO_STREAM})
    # The retry carries the same stale expected version: it must still be recognised.
    retry = append(batch, expected={ITEM: NO_STREAM})

    assert retry.replayed and not first.replayed
    assert retry.positions == first.positions
    assert Event.objects.count() == 2


def test_event_id_reused_for_a_different_event_is_refused():
    event_id = uuid.uuid4()
    append([NewEvent(ITEM, Tick(n=1), event_id=event_id)])
    with pytest.raises(EventIdConflict):
        append([NewEvent(ITEM, Tick(n=2), event_id=event_id)])
    with pytest.raises(EventIdConflict, match="part of this batch"):
        append([NewEvent(ITEM, Tick(n=1), event_id=event_id), NewEvent(ITEM, Tick(n=3), event_id=uuid.uuid4())])
    assert Event.objects.count() == 1


def test_database_refuses_duplicate_stream_versions():
    from django.db import DatabaseError, transaction

    append([NewEvent(ITEM, Tick(n=1))])
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.create(
            stream_type="item", stream_id="a", version=1, type="fixture.tick", schema_version=1,
            payload={"n": 2}, recorded_at="2026-01-01T00:00:00Z",
        )


def test_read_filters_by_type_and_range():
    append([NewEvent(ITEM, Tick(n=i)) for i in range(5)] + [NewEvent(OTHER, ItemAdded(name="x", quantity=1))])
    ticks = read(types=["fixture.tick"])
    assert [e.payload["n"] for e in ticks] == [0, 1, 2, 3, 4]
    middle = read(after=ticks[0].position, up_to=ticks[2].position)
    assert [e.payload["n"] for e in middle] == [1, 2]
    assert [e.payload["n"] for e in read(after=ticks[1].position, limit=2)] == [2, 3]



def test_a_batch_larger_than_one_statement_is_still_atomic_and_numbered(monkeypatch):
    from eventlog import store

    monkeypatch.setattr(store, "_MAX_ROWS_PER_STATEMENT", 7)
    result = append([NewEvent(ITEM, Tick(n=i)) for i in range(20)])
    assert [e.version for e in read_stream(ITEM)] == list(range(1, 21))
    assert result.positions == sorted(result.positions) and len(result.positions) == 20

    with pytest.raises(ConcurrencyConflict):
        append([NewEvent(OTHER, Tick(n=i)) for i in range(15)] + [NewEvent(ITEM, Tick(n=0))],
               expected={ITEM: 5})
    assert read_stream(OTHER) == []
