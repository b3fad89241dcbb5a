"""Metadata stamped on every appended event: who, from which request, caused by what.

The web middleware binds the actor and request id for the duration of a request; jobs bind
their own (`bind(actor="system:retrain", causation_id=...)`). Explicit metadata passed to
`append` wins over what is bound.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_bound: ContextVar[dict[str, Any] | None] = ContextVar("eventlog_metadata", default=None)

METADATA_KEYS = ("actor", "request_id", "correlation_id", "causation_id")


@contextmanager
def bind(**metadata: Any):
    unknown = set(metadata) - set(METADATA_KEYS)
    if unknown:
        raise TypeError(f"unknown metadata keys: {sorted(unknown)}")
    token = _bound.set({**(_bound.get() or {}), **{k: v for k, v in metadata.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


def for_append(explicit: dict[str, Any] | None) -> dict[str, Any]:
    metadata = {**(_bound.get() or {}), **(explicit or {})}
    if "request_id" in metadata:
        metadata.setdefault("correlation_id", metadata["request_id"])
    return metadata
