"""The one write path for facts (`append`) and the readers of the log.

    from eventlog.store import NewEvent, Stream, append

    stream = Stream("snippet", str(snippet.pk))
    append([NewEvent(stream, LabelSubmitted(...))], expected={stream: 3})

A batch is atomic: it is written whole or not at all. Appends run inside the caller's
transaction when there is one; append last in a transaction and commit promptly, because on
PostgreSQL the append lock is held until the outermost commit.
"""

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from operator import or_
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from eventlog import context, guards
from eventlog.errors import ConcurrencyConflict, EventIdConflict
from eventlog.models import Event
from eventlog.registry import Payload, registry

NO_STREAM = 0  # expected version of a stream that must not exist yet


@dataclass(frozen=True, order=True)
class Stream:
    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}/{self.id}"


@dataclass(frozen=True)
class NewEvent:
    stream: Stream
    payload: Payload
    event_id: uuid.UUID | None = None  # give one to make a retried append harmless


@dataclass(frozen=True)
class StoredEvent:
    position: int
    event_id: uuid.UUID
    stream: Stream
    version: int
    type: str
    schema_version: int  # as written; `payload` is already upcast to the current schema
    payload: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime

    @property
    def data(self) -> Payload:
        return registry.get(self.type).schema.model_validate(self.payload)


@dataclass(frozen=True)
class AppendResult:
    positions: list[int]
    versions: dict[Stream, int]  # each stream's version after the batch
    replayed: bool = False  # True: the batch was already stored, nothing new written

    @property
    def last_position(self) -> int:
        return self.positions[-1]


def append(
    events: Sequence[NewEvent],
    *,
    expected: Mapping[Stream, int] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> AppendResult:
    """Append a batch atomically.

    `expected` maps a stream to the version it must be at (NO_STREAM for a new one); streams
    not named accept any version. A mismatch raises ConcurrencyConflict and writes nothing.
    """
    if not events:
        raise ValueError("append needs at least one event")
    expected = dict(expected or {})
    rows_data = [_serialise(event) for event in events]
    meta = context.for_append(dict(metadata) if metadata else None)

    with transaction.atomic():
        with connection.cursor() as cursor:
            guards.take_append_lock(cursor)
        replay = _already_stored(events, rows_data)
        if replay is not None:
            return replay
        current = _current_versions({event.stream for event in events})
        for stream, version in expected.items():
            if current.get(stream, NO_STREAM) != version:
                raise ConcurrencyConflict(str(stream), version, current.get(stream, NO_STREAM))

        recorded_at = timezone.now()
        rows = []
        for event, (type_name, schema_version, payload) in zip(events, rows_data):
            current[event.stream] = current.get(event.stream, NO_STREAM) + 1
            rows.append(
                Event(
                    event_id=event.event_id or uuid.uuid4(),
                    stream_type=event.stream.type,
                    stream_id=event.stream.id,
                    version=current[event.stream],
                    type=type_name,
                    schema_version=schema_version,
                    payload=payload,
                    metadata=meta,
                    recorded_at=recorded_at,
                )
            )
        Event.objects.bulk_create(rows)
        result = AppendResult(
            positions=[row.position for row in rows],
            versions={event.stream: current[event.stream] for event in events},
        )
        from eventlog import projections

        projections.run_inline({type_name for type_name, _, _ in rows_data})
    return result


def _serialise(event: NewEvent) -> tuple[str, int, dict[str, Any]]:
    event_type = registry.for_payload(event.payload)
    # Re-validate: a payload built with model_construct() skips validation.
    payload = event.payload.model_dump(mode="json")
    event_type.validate(payload)
    return event_type.name, event_type.version, payload


def _already_stored(events: Sequence[NewEvent], rows_data) -> AppendResult | None:
    ids = [event.event_id for event in events if event.event_id is not None]
    if not ids:
        return None
    stored = {row.event_id: row for row in Event.objects.filter(event_id__in=ids)}
    if not stored:
        return None
    if len(stored) != len(events):
        raise EventIdConflict("part of this batch is already stored: a retry must resend the whole batch")
    for event, (type_name, _, payload) in zip(events, rows_data):
        row = stored[event.event_id]
        same = (row.type, row.stream_type, row.stream_id, row.payload) == (
            type_name,
            event.stream.type,
            event.stream.id,
            payload,
        )
        if not same:
            raise EventIdConflict(f"event id {event.event_id} is already used by a different event")
    rows = [stored[event.event_id] for event in events]
    return AppendResult(
        positions=[row.position for row in rows],
        versions={Stream(row.stream_type, row.stream_id): row.version for row in rows},
        replayed=True,
    )


def _current_versions(streams: set[Stream]) -> dict[Stream, int]:
    condition = reduce(or_, (Q(stream_type=s.type, stream_id=s.id) for s in streams))
    rows = (
        Event.objects.filter(condition)
        .order_by()
        .values_list("stream_type", "stream_id")
        .annotate(version=Max("version"))
    )
    return {Stream(stream_type, stream_id): version for stream_type, stream_id, version in rows}


# -- reading ---------------------------------------------------------------------------

_COLUMNS = (
    "position",
    "event_id",
    "stream_type",
    "stream_id",
    "version",
    "type",
    "schema_version",
    "payload",
    "metadata",
    "recorded_at",
)


def _to_stored(row: tuple) -> StoredEvent:
    position, event_id, stream_type, stream_id, version, type_name, schema_version, payload, metadata, at = row
    event_type = registry.get(type_name)
    if schema_version < event_type.version:
        payload = event_type.upcast(payload, schema_version)
    return StoredEvent(
        position=position,
        event_id=event_id,
        stream=Stream(stream_type, stream_id),
        version=version,
        type=type_name,
        schema_version=schema_version,
        payload=payload,
        metadata=metadata,
        recorded_at=at,
    )


def read(
    *,
    after: int = 0,
    up_to: int | None = None,
    types: Iterable[str] | None = None,
    limit: int | None = None,
) -> list[StoredEvent]:
    """Events with after < position <= up_to, in position order."""
    qs = Event.objects.filter(position__gt=after)
    if up_to is not None:
        qs = qs.filter(position__lte=up_to)
    if types is not None:
        qs = qs.filter(type__in=list(types))
    qs = qs.order_by("position").values_list(*_COLUMNS)
    if limit is not None:
        qs = qs[:limit]
    return [_to_stored(row) for row in qs]


def read_stream(stream: Stream) -> list[StoredEvent]:
    qs = Event.objects.filter(stream_type=stream.type, stream_id=stream.id).order_by("version")
    return [_to_stored(row) for row in qs.values_list(*_COLUMNS)]


def iterate(*, after: int = 0, types: Iterable[str] | None = None, page: int = 2000) -> Iterator[StoredEvent]:
    """Every event after `after`, read in keyset pages (constant memory)."""
    while True:
        batch = read(after=after, types=types, limit=page)
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1].position


def head_position() -> int:
    """The highest committed position: every event at or below it is committed."""
    return Event.objects.aggregate(head=Max("position"))["head"] or 0
