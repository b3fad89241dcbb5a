"""Attack read models, written only by attacks.projections from the events in attacks.events."""

from django.db import models


class Campaign(models.Model):
    class Kind(models.TextChoices):
        MANUAL = "manual", "Manual attacks"
        TOOL_ASSISTED = "tool_assisted", "Tool-assisted rewrites"
        PARAPHRASE = "paraphrase", "Automatic paraphrases"

    id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    dataset_id = models.IntegerField()
    split = models.CharField(max_length=16)
    target_version = models.CharField(max_length=80, blank=True)
    experiment_classifiers = models.JSONField(default=list, blank=True)
    experiment_seed = models.BigIntegerField(null=True)
    threshold = models.FloatField()
    idle_cap_seconds = models.IntegerField()
    time_zone = models.CharField(max_length=64)
    active = models.BooleanField(default=True)
    opened_at = models.DateTimeField()

    class Meta:
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_experiment(self) -> bool:
        return bool(self.experiment_classifiers)

    @property
    def source(self) -> str:
        """The snippet source of what this campaign collects."""
        return {"manual": "manual_adversarial", "tool_assisted": "tool_assisted", "paraphrase": "paraphrase"}[self.kind]


class TargetHistory(models.Model):
    """Each target a campaign had, from when (its first target included)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="targets")
    version = models.CharField(max_length=80)
    since = models.DateTimeField()

    class Meta:
        ordering = ["since"]


class DayAssignment(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    user_id = models.IntegerField()
    day = models.DateField()
    version = models.CharField(max_length=80)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "user_id", "day"], name="one_classifier_a_day")]


class AttackSession(models.Model):
    """One attack page load: whose it is and the text it last scored."""

    id = models.UUIDField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sessions")
    user_id = models.IntegerField()
    started_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True)
    last_prompt = models.TextField(blank=True)
    last_completion = models.TextField(blank=True)
    last_score = models.FloatField(null=True)
    last_version = models.CharField(max_length=80, blank=True)


class Effort(models.Model):
    """Server-measured work of one contractor on one day against one classifier."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="effort")
    user_id = models.IntegerField()
    day = models.DateField()
    version = models.CharField(max_length=80)
    seconds = models.FloatField(default=0)
    sessions = models.IntegerField(default=0)
    attempts = models.IntegerField(default=0)
    submissions = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "user_id", "day", "version"], name="effort_unique_row")
        ]


class ActivityClock(models.Model):
    """A contractor's last recorded activity in a campaign: the start of the next gap."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    user_id = models.IntegerField()
    last_at = models.DateTimeField()
    left = models.BooleanField(default=False)  # the last activity was leaving the page

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "user_id"], name="one_clock_per_attacker")]


class Submission(models.Model):
    """A submitted attack; a success once labelling settles its snippet as injurious."""

    snippet_id = models.UUIDField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="submissions")
    session_id = models.UUIDField()
    user_id = models.IntegerField()
    day = models.DateField()
    version = models.CharField(max_length=80)
    score = models.FloatField()
    submitted_at = models.DateTimeField()

    class Meta:
        ordering = ["-submitted_at"]


class ParaphraseJob(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="paraphrase_jobs")
    source_snippet_id = models.UUIDField()
    version = models.CharField(max_length=80)
    threshold = models.FloatField()
    few_shot_prompt = models.TextField()
    goal = models.IntegerField()
    budget = models.IntegerField()
    stream_version = models.IntegerField()
    attempts = models.IntegerField(default=0)
    accepted = models.IntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    finish_reason = models.CharField(max_length=32, blank=True)
    failure = models.TextField(blank=True)
    requested_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-requested_at"]


class ParaphraseCandidate(models.Model):
    job = models.ForeignKey(ParaphraseJob, on_delete=models.CASCADE, related_name="candidates")
    attempt = models.IntegerField()
    completion = models.TextField()
    score = models.FloatField(null=True)
    outcome = models.CharField(max_length=16)
    snippet_id = models.UUIDField(null=True)

    class Meta:
        ordering = ["attempt"]
        constraints = [models.UniqueConstraint(fields=["job", "attempt"], name="one_candidate_per_attempt")]
