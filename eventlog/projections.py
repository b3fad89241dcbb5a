"""Read models fed by the event log.

A projection declares the event types it reads and how to apply them:

    @register
    class ConsensusProjection(Projection):
        name = "annotation.consensus"
        event_types = frozenset({"annotation.label_submitted"})
        inline = True  # current when append() returns (see `store.append`)

        def apply(self, events): ...
        def reset(self): ConsensusLabel.objects.all().delete()

Rules every projection follows:
  * handlers are deterministic: they use the event's data and `recorded_at`, never now();
  * the checkpoint is committed in the same transaction as the read-model writes and only
    moves forward, so each event is applied exactly once;
  * at most one consumer advances a projection at a time (a row lock on its checkpoint;
    others skip it). On SQLite, IMMEDIATE transactions serialise consumers.

A `StreamProjection` keeps its read model per stream, so that writers of different streams
do not queue on one checkpoint: see its docstring.
"""

import logging
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import cache
from typing import ClassVar

from django.db import OperationalError, connection, transaction

from eventlog import checkpoints, inline_projections, reading, sql, store
from eventlog.models import Event, ProjectionCheckpoint
from eventlog.store import Stream

logger = logging.getLogger(__name__)


class Projection:
    name: ClassVar[str]
    event_types: ClassVar[frozenset[str] | None] = None  # None: every type
    inline: ClassVar[bool] = False
    batch_size: ClassVar[int] = 2000

    def apply(self, events: Sequence[store.StoredEvent]) -> None:
        for event in events:
            self.handle(event)

    def handle(self, event: store.StoredEvent) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Delete every row of the read model."""
        raise NotImplementedError


class StreamProjection(Projection):
    """A read model kept per stream: an event changes only its own stream's rows, and those
    rows record the version of the last event applied to them (`applied_versions`).

    Inline, a writer brings only the streams it appended to up to date, right after its append
    (in the caller's transaction when there is one): writers of different streams never wait
    for each other, and none waits for the checkpoint. The checkpoint is moved by the runner
    (and by `catch_up` and `rebuild`), which applies only what no writer has. Whoever applies
    an event first locks its stream's rows and reads their version (one statement: a locking
    read returns the latest committed rows; for a writer's single event, `apply_following`'s
    first statement does both); a stream that has no rows yet is created under an advisory
    lock on the stream instead. So each event is applied once, in its stream's order.

    A handler may read other streams' rows only for what was in the read model before its
    event was appended (what the command read to decide it), never for later events.
    """

    inline = True

    def applied_versions(self, streams: Collection[Stream], *, lock: bool) -> dict[Stream, int]:
        """The version of the last event applied to each stream's rows; streams without rows
        are left out. lock: lock the rows found until the transaction ends (SELECT ... ORDER BY
        a key ... FOR UPDATE, so that rows are locked in one order)."""
        raise NotImplementedError

    def apply_following(self, event: store.StoredEvent) -> bool:
        """Optional, for a writer's single event: apply it if it directly follows the version
        its stream's rows reflect, checked by the statement that locks them (an UPDATE ...
        WHERE version = event.version - 1), and return True; return False, having written
        nothing, if it does not follow or the stream has no rows. Saves the locking read.
        Called outside a transaction when the writer has none: write in one statement, or
        open one (`transaction.atomic(savepoint=False)`)."""
        return False


_registry: dict[str, Projection] = {}


def register(cls: type[Projection]) -> type[Projection]:
    if cls.name in _registry and type(_registry[cls.name]) is not cls:
        raise ValueError(f"projection {cls.name!r} is registered twice")
    _registry[cls.name] = cls()
    return cls


def get(name: str) -> Projection:
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(f"unknown projection {name!r}; known: {sorted(_registry)}") from None


def all_projections() -> list[Projection]:
    return [_registry[name] for name in sorted(_registry)]


def _step(projection: Projection, *, wait: bool, batch_size: int, target: int | None = None) -> tuple[int, bool]:
    """Apply one batch in one transaction. Returns (events applied, caught up); (0, False)
    when another consumer holds the projection (wait=False).

    No upper bound is needed on the read: positions follow commit order, so once an event
    is visible every event before it is committed (or rolled back) and visible too. A writer
    waiting for its own events (`target`) stops as soon as the checkpoint covers them.
    """
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(savepoint=not own_transaction):
        found = checkpoints.locked_position_and_events(
            projection, wait=wait, batch_size=batch_size, relax_durability=own_transaction
        )
        if found is None:
            return 0, False
        position, events = found
        if (target is not None and position >= target) or not events:
            return 0, True
        if isinstance(projection, StreamProjection):
            _apply_unapplied(projection, events)
        else:
            projection.apply(events)
        checkpoints.move(projection.name, position, events[-1].position)
        return len(events), len(events) < batch_size


def advance(
    projection: Projection, *, wait: bool = False, batch_size: int | None = None, target: int | None = None
) -> int:
    """Apply every committed event the projection has not seen. Returns how many were applied.

    With wait=False a projection held by another consumer is skipped; wait=True queues.
    """
    applied = 0
    while True:
        count, caught_up = _step(
            projection, wait=wait, batch_size=batch_size or projection.batch_size, target=target
        )
        applied += count
        if caught_up or count == 0:
            return applied


def catch_up_to(projection: Projection, position: int) -> None:
    """Return once the projection has applied every event up to `position`.

    Whoever holds the projection applies everything committed so far, so a writer first
    checks whether an earlier holder's batch already covered its events, and only queues for
    the lock when it did not.
    """
    covered = sql.row(
        "SELECT 1 FROM eventlog_projectioncheckpoint WHERE name = %s AND position >= %s", [projection.name, position]
    )
    if covered is None:
        _append_lock_before_checkpoint()
        advance(projection, wait=True, target=position)


def _append_lock_before_checkpoint() -> None:
    """Inside a caller's transaction the checkpoint lock (or a stream projection's row and
    stream locks) is held until commit, and the caller usually appends next (a retry after a
    conflict). Every appender takes the append lock first and those second; taking them the
    other way round here deadlocked two such transactions under load (an idempotent request
    retrying after a conflict, against another idempotent request's append). So take the
    append lock first here too."""
    if connection.in_atomic_block and sql.postgres():
        sql.execute("SELECT eventlog_take_append_lock()")


def catch_up(*names: str) -> None:
    """Bring these projections up to the head: after a conflict, the events others committed."""
    head = reading.head_position()
    for name in names:
        catch_up_to(get(name), head)


def run_all(names: Iterable[str] | None = None) -> dict[str, int]:
    selected = [get(n) for n in names] if names else all_projections()
    return {p.name: advance(p) for p in selected}


def inline_for(appended_types: set[str]) -> list[Projection]:
    """Inline projections reading any of these types: `append` advances them in its transaction."""
    return [
        p
        for p in _registry.values()
        if p.inline and (p.event_types is None or p.event_types & appended_types)
    ]


def rebuild(projection: Projection) -> int:
    """Empty the read model and replay the log from zero, atomically.

    One transaction: on PostgreSQL readers keep seeing the old read model until the rebuilt
    one commits, and no consumer can interleave.
    """
    with transaction.atomic():
        position = checkpoints.locked_position(projection.name, wait=True)
        if isinstance(projection, StreamProjection) and sql.postgres():
            _lock_streams(projection, None)  # streams without rows wait too, for the rebuilt ones
        projection.reset()
        checkpoints.move(projection.name, position, 0)
        return advance(projection, wait=True)


def reflected_position(names: Iterable[str]) -> int:
    """The highest position P such that these projections' read models reflect every event up
    to P: the head, unless one of them has not applied an event of its types yet."""
    head = reading.head_position()
    reflected = head
    for projection in (get(name) for name in names):
        checkpoint = ProjectionCheckpoint.objects.filter(name=projection.name).values_list("position", flat=True)
        after = checkpoint.first() or 0
        if isinstance(projection, StreamProjection):
            # Past its checkpoint, writers have applied their own events: the first one not applied.
            pending = reading.read(after=after, up_to=head, types=projection.event_types)
            pending = _unapplied(pending, projection.applied_versions({e.stream for e in pending}, lock=False))
            first = pending[0].position if pending else None
        else:
            pending = Event.objects.filter(position__gt=after, position__lte=head)
            if projection.event_types is not None:
                pending = pending.filter(type__in=projection.event_types)
            first = pending.order_by("position").values_list("position", flat=True).first()
        if first is not None:
            reflected = min(reflected, first - 1)
    return reflected


# -- stream projections --------------------------------------------------------------------

STREAM_LOCKS = 512  # advisory locks per stream projection, for streams without rows; by hash
_DEADLOCK_SQLSTATE = "40P01"


def _applied_and_locked(projection: StreamProjection, streams: Collection[Stream]) -> dict[Stream, int]:
    """Lock these streams until the transaction ends; the version each stream's rows reflect.

    Rows that exist are locked by the locking read. A stream without rows is locked by its
    advisory lock and read again in a later statement: in READ COMMITTED only a statement that
    starts after the lock is granted sees rows the previous holder created."""
    applied = projection.applied_versions(streams, lock=True)
    missing = [s for s in streams if s not in applied]
    if missing and sql.postgres():
        _lock_streams(projection, missing)
        applied |= projection.applied_versions(missing, lock=True)
    return applied


def _lock_streams(projection: StreamProjection, streams: Collection[Stream] | None) -> None:
    """Hold these streams' advisory locks (None: every stream), in ascending order, until the
    transaction ends. PostgreSQL only: SQLite's single writer is lock enough."""
    if streams is None:
        buckets = list(range(STREAM_LOCKS))
    else:
        buckets = sorted({zlib.crc32(f"{s.type}/{s.id}".encode()) % STREAM_LOCKS for s in streams})
    sql.rows("SELECT pg_advisory_xact_lock(%s, bucket) FROM unnest(%s::int[]) AS bucket",
             [_lock_space(projection.name), buckets])


@cache
def _lock_space(name: str) -> int:
    """The first key of a projection's stream locks (a signed 32-bit integer). The two-key lock
    space is distinct from the one-key space of the append lock."""
    return zlib.crc32(name.encode()) - 2**31


def _apply_unapplied(projection: StreamProjection, events: Sequence[store.StoredEvent]) -> None:
    """Apply those of these events (in position order, none missing before them in their
    streams) that their streams' rows do not reflect yet."""
    # Most are usually applied already, by their writers: skip those without locking (an
    # applied version only grows, so what is seen applied stays applied).
    events = _unapplied(events, projection.applied_versions({e.stream for e in events}, lock=False))
    if events:
        applied = _applied_and_locked(projection, {e.stream for e in events})
        projection.apply(_unapplied(events, applied))


def _unapplied(events: Sequence[store.StoredEvent], applied: Mapping[Stream, int]) -> list[store.StoredEvent]:
    return [e for e in events if e.version > applied.get(e.stream, 0)]


def catch_up_streams(
    projection: StreamProjection,
    streams: Collection[Stream],
    *,
    known: Sequence[store.StoredEvent] = (),
) -> bool:
    """Apply every committed event of these streams that the projection has not applied yet:
    a writer's own streams after its append (`known`: the events it appended, not read back
    when they follow on from what is applied), or streams found stale after a conflict.

    Returns True when it applied the writer's single event by `apply_following` outside a
    transaction: that wrote and committed, waiting for the disk, after the append's commit, so
    the append is on disk too (the WAL is flushed in order).
    """
    if not streams:
        return False
    own_transaction = not connection.in_atomic_block
    _append_lock_before_checkpoint()  # inside a caller's transaction only
    for attempt in range(3):
        try:
            if len(known) == 1 and streams == {known[0].stream} and projection.apply_following(known[0]):
                return own_transaction
            with transaction.atomic():
                applied = _applied_and_locked(projection, streams)
                projection.apply(_events_after(projection, streams, applied, known))
            return False
        except OperationalError as exc:
            # A caller's transaction that appended twice may hold one of these locks and wait
            # for another: the database breaks the cycle, and this side can simply try again.
            cause = exc.__cause__
            if not own_transaction or attempt == 2 or getattr(cause, "sqlstate", None) != _DEADLOCK_SQLSTATE:
                raise


def _events_after(
    projection: StreamProjection,
    streams: Collection[Stream],
    applied: Mapping[Stream, int],
    known: Sequence[store.StoredEvent],
) -> list[store.StoredEvent]:
    """The events of these streams after their applied versions, in position order."""
    mine: dict[Stream, list[store.StoredEvent]] = {}
    for event in known:
        mine.setdefault(event.stream, []).append(event)
    events, to_read = [], {}
    for stream in streams:
        after = applied.get(stream, 0)
        appended = mine.get(stream)
        if appended and appended[0].version <= after + 1:
            # The writer's own events (consecutive versions) follow on from what is applied.
            events += [e for e in appended if e.version > after]
        else:
            to_read[stream] = after
    events += reading.read_streams(to_read, types=projection.event_types)
    return sorted(events, key=lambda e: e.position)


class _Inline:
    """How `store.append` brings an inline projection up to the batch it wrote: a stream
    projection only the streams the batch wrote to (True if that put the batch on disk); any
    other up to the batch's last position, in the caller's transaction when there is one."""

    def for_types(self, types: set[str]) -> list[Projection]:
        return inline_for(types)

    def apply(self, projection: Projection, events: Callable[[], Sequence[store.StoredEvent]],
              last_position: int) -> bool:
        if isinstance(projection, StreamProjection):
            own = [e for e in events() if projection.event_types is None or e.type in projection.event_types]
            return catch_up_streams(projection, {e.stream for e in own}, known=own)
        if connection.in_atomic_block:
            advance(projection, wait=True)
        else:
            catch_up_to(projection, last_position)
        return False


inline_projections.install(_Inline())
