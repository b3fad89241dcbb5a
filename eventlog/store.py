"""The one write path for facts (`append`) and the readers of the log.

    from eventlog.store import NewEvent, Stream, append

    stream = Stream("snippet", str(snippet.pk))
    append([NewEvent(stream, LabelSubmitted(...))], expected={stream: 3})

A batch is atomic: it is written whole or not at all. Appends run inside the caller's
transaction when there is one; append last in a transaction and commit promptly, because on
PostgreSQL the append lock is held until the outermost commit.
"""

import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from uuid_utils.compat import uuid7

from eventlog import context, durability, guards, inline_projections
from eventlog.errors import ConcurrencyConflict, EventIdConflict
from eventlog.models import Event
from eventlog.registry import Payload, registry

NO_STREAM = 0  # expected version of a stream that must not exist yet
_EVENT_ID_CONSTRAINT = "event_id_unique"


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
    Called outside a transaction, the batch is one autocommitted INSERT (on PostgreSQL) and the
    inline projections it feeds are brought up to date before `append` returns. Inside a
    transaction, a refused append (conflict, invalid event id)
    leaves the transaction to be rolled back, as any failed statement does.
    """
    if not events:
        raise ValueError("append needs at least one event")
    batch = _Batch(
        rows=[_row(event) for event in events],
        metadata=context.for_append(dict(metadata) if metadata else None),
        recorded_at=timezone.now(),
    )
    _assign_expected_versions(batch.rows, events, dict(expected or {}))
    hook = inline_projections.installed()
    inline = hook.for_types({row.type for row in batch.rows}) if hook else []
    db = connections[DEFAULT_DB_ALIAS]  # once: each attribute of the `connection` proxy is a lookup
    postgres = db.vendor == "postgresql"
    in_callers_transaction = db.in_atomic_block  # as append was called (append may open its own)
    # Inside a caller's transaction the inline projections are applied in it (they must be
    # current for the rest of that transaction). Otherwise the append commits first and they
    # are applied right after, in their own transaction: the append lock is then held only for
    # the INSERT, never for the projections' work.
    inline_inside = bool(inline) and in_callers_transaction
    one_statement = postgres and not inline_inside and len(batch.rows) <= _MAX_ROWS_PER_STATEMENT
    retry_aware = any(event.event_id is not None for event in events)
    # Its own transaction: under contention it may commit before its flush (see "durability").
    may_commit_before_flush = one_statement and not in_callers_transaction
    flushed_at_commit = True

    with nullcontext() if one_statement else transaction.atomic():
        try:
            with transaction.atomic() if retry_aware and db.in_atomic_block else nullcontext():
                if postgres:
                    stored, flushed_at_commit = _insert_postgres_chunks(db, batch, may_commit_before_flush)
                else:
                    stored = _insert_sqlite(batch)
        except (_DuplicateEventId, ConcurrencyConflict) as refused:
            # A retry of a stored batch: its ids are taken, and its expected versions stale.
            replay = _stored_batch(events, batch.rows) if retry_aware else None
            if replay is not None:
                durability.make_durable()  # the first try may have stopped between its commit and flush
                return replay
            if isinstance(refused, _DuplicateEventId):
                raise EventIdConflict("an event id of this batch is already stored") from None
            raise
        # The batch's events as read back, built once and only if a projection asks for them.
        batch_events = functools.cache(lambda: _batch_events(batch, stored))
        last_position = max(position for position, _ in stored)
        if inline_inside:
            for projection in inline:
                hook.apply(projection, batch_events, last_position)
    on_disk = flushed_at_commit
    try:
        if not inline_inside:
            for projection in inline:
                on_disk = hook.apply(projection, batch_events, last_position) or on_disk
    finally:
        if not on_disk:
            durability.make_durable()
    return AppendResult(
        positions=[position for position, _ in stored],
        versions={event.stream: version for event, (_, version) in zip(events, stored)},
    )


_MAX_ROWS_PER_STATEMENT = 5000

class _DuplicateEventId(Exception):
    pass


@dataclass(slots=True)
class _Row:
    event_id: uuid.UUID
    stream_type: str
    stream_id: str
    version: int | None  # None: the next version of the stream
    type: str
    schema_version: int
    payload_json: str


@dataclass(slots=True)
class _Batch:
    rows: list[_Row]
    metadata: dict[str, Any]
    recorded_at: datetime


def _batch_events(batch: "_Batch", stored: list[tuple[int, int]]) -> list[StoredEvent]:
    """The batch's events as they now are in the log (what a reader would get)."""
    return [
        StoredEvent(
            position=position,
            event_id=row.event_id,
            stream=Stream(row.stream_type, row.stream_id),
            version=version,
            type=row.type,
            schema_version=row.schema_version,
            payload=json.loads(row.payload_json),
            metadata=batch.metadata,
            recorded_at=batch.recorded_at,
        )
        for row, (position, version) in zip(batch.rows, stored, strict=True)
    ]


def _row(event: NewEvent) -> _Row:
    event_type = registry.for_payload(event.payload)
    payload_json = event.payload.model_dump_json()
    return _Row(
        # Time-ordered ids keep the unique index append-mostly (random ids would touch a
        # random index page per event).
        event_id=event.event_id or uuid7(),
        stream_type=event.stream.type,
        stream_id=event.stream.id,
        version=None,
        type=event_type.name,
        schema_version=event_type.version,
        payload_json=payload_json,
    )


def _assign_expected_versions(rows: list[_Row], events: Sequence[NewEvent], expected: dict[Stream, int]) -> None:
    """Rows of streams with an expected version carry the version they must get."""
    for row, event in zip(rows, events):
        if event.stream in expected:
            expected[event.stream] += 1
            row.version = expected[event.stream]


# The client numbers the batch: its distinct streams ([type, id] in a JSON array), and each event
# as [event_id, stream number, rank within its stream, expected version or null, type, schema
# version, payload] in another. The database adds each stream's head, read once per stream.
# `commit_mode`: whether to commit before the flush (see "durability"), decided after the
# statement trigger has taken the append lock. Positions are drawn in batch order (the ORDER BY
# feeds the insert); RETURNING gives them with the versions, whether the statement waited for the
# lock, and whether it will commit before its flush.
_INSERT_POSTGRES = f"""
    INSERT INTO eventlog_event
        (event_id, stream_type, stream_id, version, type, schema_version, payload, metadata, recorded_at)
    SELECT e.event_id, s.stream_type, s.stream_id,
           CASE WHEN e.version IS NULL OR e.version = s.head + e.rank THEN s.head + e.rank
                ELSE eventlog_version_conflict(s.stream_type, s.stream_id, s.head + e.rank - 1, e.version - 1)
           END,
           e.type, e.schema_version, e.payload, %t::jsonb, %b::timestamptz
    FROM (SELECT CASE WHEN %b AND (%b OR current_setting('{guards.WAITED_SETTING}', true) = 'on')
                      THEN set_config('synchronous_commit', 'off', true) END) AS commit_mode, (
        SELECT stream_type, stream_id, stream_no, eventlog_stream_head(stream_type, stream_id) AS head
        FROM (SELECT x->>0 AS stream_type, x->>1 AS stream_id, stream_no
              FROM jsonb_array_elements(%t::jsonb) WITH ORDINALITY AS streams(x, stream_no)) AS named
    ) AS s
    JOIN (
        SELECT (x->>0)::uuid AS event_id, (x->>1)::int AS stream_no, (x->>2)::int AS rank,
               (x->>3)::int AS version, x->>4 AS type, (x->>5)::int AS schema_version, x->6 AS payload, ord
        FROM jsonb_array_elements(%t::jsonb) WITH ORDINALITY AS rows(x, ord)
    ) AS e ON e.stream_no = s.stream_no
    ORDER BY e.ord
    RETURNING position, version,
        current_setting('{guards.WAITED_SETTING}', true) = 'on', current_setting('synchronous_commit') = 'off'
"""


def _insert_postgres_chunks(
    db: BaseDatabaseWrapper, batch: _Batch, may_commit_before_flush: bool
) -> tuple[list[tuple[int, int]], bool]:
    """Large batches (imports) go in several statements of one transaction.

    Returns the positions and versions, and whether the commit waits for the disk: False only
    if the batch is one autocommitted statement (`may_commit_before_flush`) that committed
    without waiting, because appends contend for the lock (see "durability").
    """
    stored, flushed_at_commit = [], True
    for start in range(0, len(batch.rows), _MAX_ROWS_PER_STATEMENT):
        chunk = _Batch(batch.rows[start : start + _MAX_ROWS_PER_STATEMENT], batch.metadata, batch.recorded_at)
        rows, flushed_at_commit = _insert_postgres(db, chunk, may_commit_before_flush)
        stored += rows
    return stored, flushed_at_commit


def _insert_postgres(
    db: BaseDatabaseWrapper, batch: _Batch, may_commit_before_flush: bool
) -> tuple[list[tuple[int, int]], bool]:
    """One INSERT: the append lock is taken (statement trigger) before any row is read, so
    the stream heads, the numbering and the positions are all decided under the lock.

    The statement text is the same for every batch (not a VALUES list), and it runs on a
    plain psycopg cursor: server-side parameters, prepared after a few uses. The streams, the
    events (built from their already serialised payloads) and the metadata go as JSON text:
    psycopg's encoding of arrays and JSON objects, in Python, was the largest part of the
    client's work. Django's client-side cursor would quote every value into the SQL text.
    """
    import psycopg

    rows = batch.rows
    stream_numbers: dict[tuple[str, str], int] = {}
    ranks: dict[tuple[str, str], int] = {}
    stream_no, rank = [], []
    for row in rows:
        key = (row.stream_type, row.stream_id)
        stream_no.append(stream_numbers.setdefault(key, len(stream_numbers) + 1))
        ranks[key] = ranks.get(key, 0) + 1
        rank.append(ranks[key])
    params = [
        json.dumps(batch.metadata),
        batch.recorded_at,
        may_commit_before_flush,
        durability.contention.recent(),
        # Unescaped: psycopg refuses surrogate code points, which jsonb would join into another character.
        json.dumps(list(stream_numbers), ensure_ascii=False),
        "["
        + ",".join(
            f'["{row.event_id}",{no},{rk},{"null" if row.version is None else row.version},'
            f'"{row.type}",{row.schema_version},{row.payload_json}]'
            for row, no, rk in zip(rows, stream_no, rank)
        )
        + "]",
    ]
    db.ensure_connection()
    try:
        with psycopg.Cursor(db.connection) as cursor:
            cursor.execute(_INSERT_POSTGRES, params)
            returned = sorted(cursor.fetchall())
        _, _, waited, asynchronous_commit = returned[0]
        if waited:
            durability.contention.saw_wait()
        stored = [(position, version) for position, version, _, _ in returned]
        return stored, not (may_commit_before_flush and asynchronous_commit)
    except psycopg.Error as exc:
        if exc.sqlstate == guards.VERSION_CONFLICT_SQLSTATE:
            detail = json.loads(exc.diag.message_detail)
            stream = Stream(detail["stream_type"], detail["stream_id"])
            raise ConcurrencyConflict(str(stream), detail["expected"], detail["actual"]) from None
        if exc.sqlstate == "23505" and exc.diag.constraint_name == _EVENT_ID_CONSTRAINT:
            raise _DuplicateEventId from None
        raise DatabaseError(str(exc)) from exc


def _insert_sqlite(batch: _Batch) -> list[tuple[int, int]]:
    """SQLite has one writer, holding the lock since BEGIN IMMEDIATE: read, check, insert."""
    current = _current_versions({Stream(row.stream_type, row.stream_id) for row in batch.rows})
    objects = []
    for row in batch.rows:
        stream = Stream(row.stream_type, row.stream_id)
        actual = current.get(stream, NO_STREAM)
        if row.version is not None and row.version != actual + 1:
            raise ConcurrencyConflict(str(stream), row.version - 1, actual)
        current[stream] = row.version = actual + 1
        objects.append(
            Event(
                event_id=row.event_id,
                stream_type=row.stream_type,
                stream_id=row.stream_id,
                version=row.version,
                type=row.type,
                schema_version=row.schema_version,
                payload=json.loads(row.payload_json),
                metadata=batch.metadata,
                recorded_at=batch.recorded_at,
            )
        )
    try:
        with transaction.atomic():
            Event.objects.bulk_create(objects)
    except IntegrityError as exc:
        if "event_id" in str(exc):
            raise _DuplicateEventId from None
        raise
    return [(obj.position, obj.version) for obj in objects]


def _stored_batch(events: Sequence[NewEvent], rows: list[_Row]) -> AppendResult | None:
    """The earlier result if this very batch is already stored; None if none of it is."""
    stored = {row.event_id: row for row in Event.objects.filter(event_id__in=[row.event_id for row in rows])}
    if not stored:
        return None
    if len(stored) != len(rows):
        raise EventIdConflict("part of this batch is already stored: a retry must resend the whole batch")
    for row in rows:
        earlier = stored[row.event_id]
        if (earlier.type, earlier.stream_type, earlier.stream_id, earlier.payload) != (
            row.type,
            row.stream_type,
            row.stream_id,
            json.loads(row.payload_json),
        ):
            raise EventIdConflict(f"event id {row.event_id} is already used by a different event")
    earlier_rows = [stored[row.event_id] for row in rows]
    return AppendResult(
        positions=[row.position for row in earlier_rows],
        versions={event.stream: row.version for event, row in zip(events, earlier_rows)},
        replayed=True,
    )


def _current_versions(streams: set[Stream]) -> dict[Stream, int]:
    versions = {}
    for stream in streams:
        latest = (
            Event.objects.filter(stream_type=stream.type, stream_id=stream.id)
            .order_by("-version")
            .values_list("version", flat=True)
            .first()
        )
        if latest is not None:
            versions[stream] = latest
    return versions
