"""Reading the log: events after a position, of some streams or types, and the head.

    from eventlog.reading import head_position, read, read_stream

Events come back as `StoredEvent`s, their payloads upcast to the current schema version.
"""

import json
from collections.abc import Iterable, Mapping

from eventlog import sql
from eventlog.models import Event
from eventlog.registry import registry
from eventlog.store import StoredEvent, Stream

EVENT_COLUMNS = (
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


def stored_event(row: tuple) -> StoredEvent:
    """A row of EVENT_COLUMNS from the ORM or from `sql.rows` (where JSON may come back as text)."""
    position, event_id, stream_type, stream_id, version, type_name, schema_version, payload, metadata, at = row
    if isinstance(payload, str):
        payload = json.loads(payload)
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    event_type = registry.get(type_name)
    if schema_version < event_type.version:
        payload = event_type.upcast(payload, schema_version)
    return StoredEvent(
        position=position,
        event_id=sql.uuid_of(event_id),
        stream=Stream(stream_type, stream_id),
        version=version,
        type=type_name,
        schema_version=schema_version,
        payload=payload,
        metadata=metadata,
        recorded_at=sql.datetime_of(at),
    )


def read(
    *,
    after: int = 0,
    up_to: int | None = None,
    types: Iterable[str] | None = None,
    limit: int | None = None,
) -> list[StoredEvent]:
    """Events with after < position <= up_to, in position order."""
    conditions, params = ["position > %s"], [after]
    if up_to is not None:
        conditions.append("position <= %s")
        params.append(up_to)
    if types is not None:
        types = sorted(types)
        if not types:
            return []
        condition, type_params = sql.any_of("type", types)
        conditions.append(condition)
        params += type_params
    statement = f"SELECT {', '.join(EVENT_COLUMNS)} FROM eventlog_event WHERE {' AND '.join(conditions)} ORDER BY position"
    if limit is not None:
        statement += " LIMIT %s"
        params.append(limit)
    return [stored_event(row) for row in sql.rows(statement, params)]


def read_streams(after: Mapping[Stream, int], *, types: Iterable[str] | None = None) -> list[StoredEvent]:
    """The events of these streams after the given version of each, in position order."""
    if not after:
        return []
    wanted = set(types) if types is not None else None
    columns = ", ".join("e." + column for column in EVENT_COLUMNS)
    if sql.postgres():
        streams = list(after.items())
        found = sql.rows(
            f"SELECT {columns} FROM unnest(%s::text[], %s::text[], %s::int[]) AS s(stream_type, stream_id, after)"
            " JOIN eventlog_event e ON e.stream_type = s.stream_type AND e.stream_id = s.stream_id"
            " AND e.version > s.after ORDER BY e.position",
            [[s.type for s, _ in streams], [s.id for s, _ in streams], [v for _, v in streams]],
        )
    else:
        found = []
        for stream, version in after.items():
            found += sql.rows(
                f"SELECT {columns} FROM eventlog_event e WHERE e.stream_type = %s AND e.stream_id = %s"
                " AND e.version > %s",
                [stream.type, stream.id, version],
            )
        found.sort(key=lambda row: row[0])
    return [stored_event(row) for row in found if wanted is None or row[5] in wanted]


def read_stream(stream: Stream) -> list[StoredEvent]:
    qs = Event.objects.filter(stream_type=stream.type, stream_id=stream.id).order_by("version")
    return [stored_event(row) for row in qs.values_list(*EVENT_COLUMNS)]


def head_position() -> int:
    """The highest committed position: every event at or below it is committed."""
    return sql.row("SELECT max(position) FROM eventlog_event")[0] or 0
