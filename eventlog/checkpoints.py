"""A projection's checkpoint: the position its read model reflects, locked by the consumer that
moves it (one consumer at a time), read together with the next batch of events after it."""

from functools import cache

from django.utils import timezone

from eventlog import reading, sql
from eventlog.models import ProjectionCheckpoint
from eventlog.store import StoredEvent


def locked_position(name: str, *, wait: bool) -> int | None:
    """The checkpoint's position, its row locked; None if another consumer holds it (wait=False)."""
    statement = "SELECT position FROM eventlog_projectioncheckpoint WHERE name = %s"
    if sql.postgres():
        statement += " FOR UPDATE" if wait else " FOR UPDATE SKIP LOCKED"
    found = _locking(name, lambda: sql.rows(statement, [name]))
    return found[0][0] if found else None


def _locking(name: str, query):
    """Run a query that locks the checkpoint row; if it found none because the row is missing,
    create it (or wait for the consumer creating it) and run the query again."""
    found = query()
    if not found and not ProjectionCheckpoint.objects.filter(name=name).exists():
        ProjectionCheckpoint.objects.get_or_create(name=name)
        found = query()
    return found


def locked_position_and_events(
    projection, *, wait: bool, batch_size: int, relax_durability: bool
) -> tuple[int, list[StoredEvent]] | None:
    """The checkpoint locked and the next batch of events after it; None if another consumer
    holds it (wait=False). On PostgreSQL in one round trip, which also shortens the time the
    lock is held.

    relax_durability: this transaction need not wait for its WAL to reach disk at commit. A
    read model is derived data: if a crash loses its last commits, it loses the matching
    checkpoint with them (same transaction) and re-applies those events on restart. An append
    is acknowledged only once on disk. Only for a projection step in a transaction of its own
    (never inside an append's or a caller's).

    The events are read in the statement's snapshot, which may predate the lock's wait: events
    committed during the wait are then left to the next batch. None is skipped, because
    positions follow commit order: every event the snapshot misses is after every one it sees.
    """
    if not sql.postgres():
        position = locked_position(projection.name, wait=wait)
        if position is None:
            return None
        return position, reading.read(after=position, types=projection.event_types, limit=batch_size)
    types = sorted(projection.event_types) if projection.event_types is not None else None
    statement = _lock_and_read_statement(wait, relax_durability, len(types) if types is not None else None)
    params = [projection.name, *(types or []), batch_size]
    found = _locking(projection.name, lambda: sql.rows(statement, params))
    if not found:
        return None
    events = [reading.stored_event(row[1:]) for row in found if row[1] is not None]
    return found[0][0], events


@cache
def _lock_and_read_statement(wait: bool, relax_durability: bool, type_count: int | None) -> str:
    relax = ", set_config('synchronous_commit', 'off', true)" if relax_durability else ""
    types = f" AND type IN ({', '.join(['%s'] * type_count)})" if type_count is not None else ""
    return (
        f"SELECT checkpoint.position, {', '.join('e.' + column for column in reading.EVENT_COLUMNS)}"
        f" FROM (SELECT position{relax} FROM eventlog_projectioncheckpoint WHERE name = %s"
        f" FOR UPDATE{'' if wait else ' SKIP LOCKED'}) AS checkpoint"
        f" LEFT JOIN LATERAL (SELECT {', '.join(reading.EVENT_COLUMNS)} FROM eventlog_event"
        f" WHERE position > checkpoint.position{types} ORDER BY position LIMIT %s) AS e ON true"
    )


def move(name: str, old: int, new: int) -> None:
    moved = sql.execute(
        "UPDATE eventlog_projectioncheckpoint SET position = %s, updated_at = %s WHERE name = %s AND position = %s",
        [new, timezone.now(), name, old],
    )
    if moved != 1:
        raise RuntimeError(f"checkpoint of {name} moved under its consumer")
