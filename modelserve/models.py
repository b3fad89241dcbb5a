"""The classifier registry's read model (written only by modelserve.projections)."""

from django.db import models


class ClassifierVersion(models.Model):
    class Status(models.TextChoices):
        TRAINING = "training"
        READY = "ready"
        FAILED = "failed"
        RETIRED = "retired"

    version = models.CharField(max_length=80, primary_key=True)
    base_model = models.CharField(max_length=500)
    checkpoint_dir = models.CharField(max_length=1000)
    status = models.CharField(max_length=16, choices=Status.choices)
    promoted = models.BooleanField(default=False, help_text="the default classifier for new work")
    training_run = models.CharField(max_length=80, blank=True)
    manifest_hash = models.CharField(max_length=64, blank=True)
    manifest_size = models.IntegerField(null=True)
    hyperparameters = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    failure = models.TextField(blank=True)
    registered_at = models.DateTimeField()

    class Meta:
        ordering = ["-registered_at"]
        constraints = [
            models.UniqueConstraint(fields=["promoted"], condition=models.Q(promoted=True), name="one_promoted_classifier")
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.status})"


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"

    run_id = models.CharField(max_length=80, primary_key=True)
    version = models.CharField(max_length=80)
    base_model = models.CharField(max_length=500)
    spec = models.JSONField()
    manifest_hash = models.CharField(max_length=64)
    manifest_size = models.IntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    cancel_requested = models.BooleanField(default=False)
    step = models.IntegerField(default=0)
    steps = models.IntegerField(default=0)
    loss = models.FloatField(null=True)
    eta_seconds = models.FloatField(null=True)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    failure = models.TextField(blank=True)
    metrics = models.JSONField(default=dict)

    class Meta:
        ordering = ["-started_at"]

    @property
    def percent(self) -> int:
        return int(100 * self.step / self.steps) if self.steps else 0
