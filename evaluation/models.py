from django.db import models
from django.utils import timezone


class Computation(models.Model):
    """A report or a threshold selection computed by a background job, and its result.

    Derived data kept like a cache, not a fact: it is not an event, and deleting every row loses
    nothing that the log cannot give again. One row per (what was asked, log position when asked).
    """

    class Kind(models.TextChoices):
        REPORT = "report", "Report"
        THRESHOLDS = "thresholds", "Threshold selection"

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    params = models.JSONField()
    params_key = models.CharField(max_length=64, db_index=True, help_text="sha256 of the kind and parameters")
    log_position = models.BigIntegerField(help_text="the log's head when it was asked for")
    settled_position = models.BigIntegerField(null=True, blank=True,
                                              help_text="the head when it finished (after the scores it recorded)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    stage = models.CharField(max_length=200, blank=True, help_text="what the job is doing now")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["params_key", "log_position"], name="one_computation_a_position")]
        ordering = ["-log_position", "-requested_at"]

    @property
    def stalled(self) -> bool:
        """Running for over a minute without finishing: its worker may be gone (the page offers a restart)."""
        return self.status == self.Status.RUNNING and (timezone.now() - self.requested_at).total_seconds() > 60

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at log position {self.log_position} ({self.status})"
