"""Errors of the event log. Each carries the HTTP status an API should answer with."""

from config.errors import Refused


class EventLogError(Refused):
    status_code = 400


class UnknownEventType(EventLogError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown event type {name!r}: declare it with @event_type in an app's events.py")
        self.name = name


class InvalidPayload(EventLogError):
    def __init__(self, type_name: str, problems: list[str]) -> None:
        super().__init__(f"invalid payload for {type_name}: " + "; ".join(problems))
        self.type_name = type_name
        self.problems = problems


class ConcurrencyConflict(EventLogError):
    """A stream was not at the expected version; nothing of the batch was written."""

    status_code = 409

    def __init__(self, stream: str, expected, actual: int) -> None:
        super().__init__(f"stream {stream} is at version {actual}, expected {expected}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


class EventIdConflict(EventLogError):
    """An event id was reused for a different event, or a retried batch was only partly stored."""

    status_code = 409


class IdempotencyKeyReused(EventLogError):
    """The same idempotency key came with a different request."""

    status_code = 422

    def __init__(self, scope: str, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used in {scope} for a different request")
        self.scope = scope
        self.key = key
