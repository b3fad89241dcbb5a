"""Event types, declared once in code with their payload schema.

Each app declares its types in its `events.py`:

    @event_type("annotation.label_submitted", version=2, upcasters={1: add_default_reason})
    class LabelSubmitted(Payload):
        snippet_id: int
        label: Literal["injurious", "not_injurious", "unsure"]

`version` is the current schema version; `upcasters[n]` turns a version-n payload into a
version-(n+1) payload, so events written under old schemas are read in the current shape.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic

from eventlog.errors import InvalidPayload, UnknownEventType

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class Payload(pydantic.BaseModel):
    """Base class of event payloads: immutable, no unknown fields, JSON-serialisable.

    Every instance is validated: the pydantic shortcuts that skip validation are refused,
    so `append` can trust a payload without validating it again.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def model_construct(cls, *args, **kwargs):
        raise TypeError("event payloads must be validated: call the class, not model_construct()")

    def model_copy(self, *, update=None, deep=False):
        if update:
            return type(self).model_validate({**self.model_dump(), **update})
        return super().model_copy(deep=deep)


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    schema: type[Payload]
    upcasters: dict[int, Upcaster] = field(default_factory=dict)

    def validate(self, data: dict[str, Any]) -> Payload:
        try:
            return self.schema.model_validate(data)
        except pydantic.ValidationError as exc:
            raise InvalidPayload(self.name, _describe(exc)) from exc

    def upcast(self, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        for version in range(from_version, self.version):
            data = self.upcasters[version](data)
        return data


def _describe(exc: pydantic.ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in err['loc']) or '(payload)'}: {err['msg']}" for err in exc.errors()]


# "app.event_name": lower case, digits and underscores (the append writes names into JSON as is).
_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


class EventRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, EventType] = {}
        self._by_schema: dict[type[Payload], EventType] = {}

    def register(self, event_type: EventType) -> None:
        if not _NAME.fullmatch(event_type.name):
            raise ValueError(f"event type name {event_type.name!r} is not of the form app.event_name")
        existing = self._by_name.get(event_type.name)
        if existing is not None and existing.schema is not event_type.schema:
            raise ValueError(f"event type {event_type.name!r} is declared twice")
        missing = [v for v in range(1, event_type.version) if v not in event_type.upcasters]
        if missing:
            raise ValueError(f"event type {event_type.name!r} lacks upcasters from versions {missing}")
        self._by_name[event_type.name] = event_type
        self._by_schema[event_type.schema] = event_type

    def get(self, name: str) -> EventType:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownEventType(name) from None

    def for_payload(self, payload: Payload) -> EventType:
        try:
            return self._by_schema[type(payload)]
        except KeyError:
            raise UnknownEventType(type(payload).__name__) from None

    def payload(self, name: str, data: dict[str, Any]) -> Payload:
        """Build a validated payload of a type named at run time (imports, external input)."""
        return self.get(name).validate(data)

    def names(self) -> list[str]:
        return sorted(self._by_name)


registry = EventRegistry()


def event_type(name: str, *, version: int = 1, upcasters: dict[int, Upcaster] | None = None):
    """Class decorator declaring a payload class as the schema of event type `name`."""

    def decorate(schema: type[Payload]) -> type[Payload]:
        registry.register(EventType(name=name, version=version, schema=schema, upcasters=upcasters or {}))
        schema.event_type_name = name
        return schema

    return decorate
