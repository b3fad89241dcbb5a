"""Contract: the hot paths' fixed statements read and write what the ORM does, on both backends."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from eventlog import sql
from eventlog.models import Event, ProjectionCheckpoint
from eventlog.reading import read
from eventlog.store import NewEvent, Stream, append
from tests.fixture_app.events import ItemAdded, Tick

pytestmark = [pytest.mark.contract, pytest.mark.django_db]


def _fields(instance):
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_an_instance_built_from_a_fixed_select_equals_the_orm_s():
    [position] = append([NewEvent(Stream("item", "a"), ItemAdded(name="lamp", quantity=3))],
                        metadata={"actor": "user:7"}).positions

    values = sql.row(f"SELECT {sql.columns(Event, 'e')} FROM eventlog_event e WHERE e.position = %s", [position])
    built = sql.instance(Event, values)

    assert _fields(built) == _fields(Event.objects.get(position=position))
    assert isinstance(built.event_id, uuid.UUID) and built.recorded_at.tzinfo is not None
    assert built.payload == {"name": "lamp", "quantity": 3}
    assert built._state.adding is False


def test_uuid_and_datetime_parameters_match_the_stored_values():
    later = timezone.now() + timedelta(minutes=5)
    [first, _] = append([NewEvent(Stream("t", "1"), Tick(n=1)), NewEvent(Stream("t", "2"), Tick(n=2))]).positions
    event = Event.objects.get(position=first)

    by_id = sql.rows("SELECT position FROM eventlog_event WHERE event_id = %s", [event.event_id])
    before_later = sql.rows("SELECT position FROM eventlog_event WHERE recorded_at < %s ORDER BY position", [later])
    after_later = sql.rows("SELECT position FROM eventlog_event WHERE recorded_at > %s", [later])

    assert by_id == [(first,)]
    assert [p for (p,) in before_later] == [first, first + 1]
    assert after_later == []


def test_execute_counts_the_rows_it_changed():
    ProjectionCheckpoint.objects.create(name="a", position=3)
    ProjectionCheckpoint.objects.create(name="b", position=3)

    changed = sql.execute("UPDATE eventlog_projectioncheckpoint SET position = %s WHERE position = %s", [4, 3])

    assert changed == 2
    assert sql.execute("UPDATE eventlog_projectioncheckpoint SET position = 9 WHERE name = %s", ["none"]) == 0


def test_read_by_types_and_bounds():
    positions = append([
        NewEvent(Stream("t", "1"), Tick(n=1)),
        NewEvent(Stream("item", "x"), ItemAdded(name="x", quantity=1)),
        NewEvent(Stream("t", "1"), Tick(n=2)),
    ]).positions

    ticks = read(types=["fixture.tick"])
    assert [e.payload["n"] for e in ticks] == [1, 2]
    assert [e.position for e in read(after=positions[0], up_to=positions[1])] == [positions[1]]
    assert read(types=[]) == []
    assert [e.position for e in read(limit=2)] == positions[:2]


@pytest.mark.django_db(transaction=True)
def test_fixed_statements_go_on_after_the_connection_is_closed_and_reopened():
    from django.db import connection

    append([NewEvent(Stream("t", "1"), Tick(n=1))])
    assert sql.row("SELECT count(*) FROM eventlog_event") == (1,)

    connection.close()
    append([NewEvent(Stream("t", "1"), Tick(n=2))])

    assert sql.row("SELECT count(*) FROM eventlog_event") == (2,)
    assert [e.version for e in read()] == [1, 2]
