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
    threshold = models.FloatField(null=True, help_text="the filtered generator's threshold")
    threshold_method = models.CharField(max_length=200, blank=True)
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


class GenerationJob(models.Model):
    """A completion, comparison-set or prompt-selection job and its progress."""

    class Kind(models.TextChoices):
        COMPLETIONS = "completions", "Completions for labelling"
        COMPARISON_SET = "comparison_set", "Quality-comparison set"
        PROMPT_SELECTION = "prompt_selection", "Prompt selection"
        QUALITY_CHECK = "quality_check", "Direct quality check (filtered against unfiltered)"

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    generator = models.CharField(max_length=500)
    spec = models.JSONField()  # the started event's payload, prompts included
    prompts = models.IntegerField()
    done = models.IntegerField(default=0)
    snippets = models.IntegerField(default=0)
    stream_version = models.IntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    report = models.JSONField(default=dict)
    failure = models.TextField(blank=True)
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at"]

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.prompts) if self.prompts else 0


class PromptResult(models.Model):
    """One prompt of a generation job: its draws (and, in prompt selection, their scores)."""

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="results")
    index = models.IntegerField()
    seed = models.BigIntegerField()
    completions = models.JSONField()
    scores = models.JSONField(default=list)
    snippet_ids = models.JSONField(default=list)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_result_per_prompt")]


class FilteredSample(models.Model):
    """One answer of the filtered generator: what it returned and after how many draws."""

    request_id = models.UUIDField(primary_key=True)
    prompt = models.TextField()
    version = models.CharField(max_length=80)
    threshold = models.FloatField()
    generator = models.CharField(max_length=500)
    attempts = models.IntegerField()
    completion = models.TextField(null=True)
    score = models.FloatField(null=True)
    rejected_scores = models.JSONField(default=list)
    user_id = models.IntegerField(null=True)
    requested_at = models.DateTimeField()

    class Meta:
        ordering = ["-requested_at"]


class RecordedScore(models.Model):
    version = models.CharField(max_length=80)
    snippet_id = models.UUIDField()
    score = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "snippet_id"], name="one_score_per_snippet")]
