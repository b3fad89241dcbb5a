"""Tables of the event log.

`Event` rows are written only through `eventlog.store.append` and are never changed: the
database refuses UPDATE, DELETE and TRUNCATE (see `eventlog/guards.py`).
"""

from django.db import models
from uuid_utils.compat import uuid7


class Event(models.Model):
    # Global position: equals commit order, because appends are serialised by the
    # database before any id is drawn (guards.py).
    position = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid7, editable=False)
    stream_type = models.CharField(max_length=64)
    stream_id = models.CharField(max_length=128)
    version = models.PositiveIntegerField()
    type = models.CharField(max_length=128)
    schema_version = models.PositiveSmallIntegerField()
    payload = models.JSONField()
    metadata = models.JSONField(default=dict)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["position"]
        # Declared here rather than with db_index: no extra LIKE index on PostgreSQL.
        indexes = [
            models.Index(fields=["type", "position"], name="event_type_position"),
            models.Index(fields=["recorded_at"], name="event_recorded_at"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event_id"], name="event_id_unique"),
            models.UniqueConstraint(
                fields=["stream_type", "stream_id", "version"], name="event_stream_version_unique"
            ),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="event_version_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.type} {self.stream_type}/{self.stream_id}@{self.version}"


class IdempotencyRecord(models.Model):
    """The first result of a request made with an idempotency key."""

    scope = models.CharField(max_length=128)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    result = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key_unique")]


class ProjectionCheckpoint(models.Model):
    """The last log position a projection has applied, committed with its writes."""

    name = models.CharField(max_length=128, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.position}"


class EventTypeCount(models.Model):
    """Read model: how many events of each type the log holds (projection `eventlog.type_counts`)."""

    type = models.CharField(max_length=128, primary_key=True)
    count = models.BigIntegerField(default=0)
    last_position = models.BigIntegerField(default=0)
    last_recorded_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.type}: {self.count}"
