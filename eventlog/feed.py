"""The event feed: the log after a position, in pages, for consumers that mirror it.

Order equals commit order (see `store`), so a consumer that asks for the events after the
last position it has, and goes on from the `next_after` it is given, never misses or repeats
one, whatever is appended meanwhile. With a type filter, a page that found fewer matches than
its limit has still read the log up to the head: `next_after` moves past the events it skipped.
"""

from dataclasses import dataclass

from eventlog import durability, reading, store

MAX_PAGE = 5000


@dataclass(frozen=True)
class Page:
    events: list[store.StoredEvent]
    next_after: int
    head: int

    @property
    def has_more(self) -> bool:
        return self.next_after < self.head


def page(*, after: int = 0, types: list[str] | None = None, limit: int = 1000) -> Page:
    if after < 0 or not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"after must be >= 0 and limit between 1 and {MAX_PAGE}")
    head = reading.head_position()
    events = reading.read(after=after, up_to=head, types=types or None, limit=limit)
    next_after = events[-1].position if len(events) == limit else max(head, after)
    if events:
        durability.make_durable()  # a consumer never receives an event a crash could take back
    return Page(events, next_after, head)


def as_json(event: store.StoredEvent) -> dict:
    return {
        "position": event.position,
        "event_id": str(event.event_id),
        "stream": str(event.stream),
        "version": event.version,
        "type": event.type,
        "schema_version": event.schema_version,
        "payload": event.payload,
        "metadata": event.metadata,
        "recorded_at": event.recorded_at.isoformat(),
    }
