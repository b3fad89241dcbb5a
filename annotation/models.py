"""Annotation tables.

Configuration (vendors, members, datasets) is edited by project managers in the admin.
Everything else here is a read model, written only by the projections in projections.py
from the events in events.py.
"""

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    CONTRACTOR = "contractor", "Contractor"
    VENDOR_MANAGER = "vendor_manager", "Vendor manager"
    PROJECT_MANAGER = "pm", "Project manager"


class Source(models.TextChoices):
    INITIAL = "initial", "Initial story data"
    IN_DISTRIBUTION_TEST = "in_distribution_test", "In-distribution test"
    MANUAL_ADVERSARIAL = "manual_adversarial", "Manual adversarial"
    PARAPHRASE = "paraphrase", "Automatic paraphrase"
    TOOL_ASSISTED = "tool_assisted", "Tool-assisted rewrite"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VALIDATION = "validation", "Validation"
    TEST = "test", "Test"


class Label(models.TextChoices):
    INJURIOUS = "injurious", "Injurious"
    NOT_INJURIOUS = "not_injurious", "Not injurious"
    UNSURE = "unsure", "Unsure"


class Vendor(models.Model):
    name = models.CharField(max_length=200, unique=True)

    def __str__(self) -> str:
        return self.name


class Member(models.Model):
    """A person's role; contractors and vendor managers belong to one vendor."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="member")
    role = models.CharField(max_length=20, choices=Role.choices)
    vendor = models.ForeignKey(Vendor, null=True, blank=True, on_delete=models.PROTECT, related_name="members")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role="pm") | models.Q(vendor__isnull=False),
                name="member_vendor_required_unless_pm",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    offer_unsure = models.BooleanField(default=True)
    labels_required = models.PositiveSmallIntegerField(default=2)
    tie_break = models.BooleanField(default=True, help_text="open one extra label when labellers disagree")
    hold_seconds = models.PositiveIntegerField(default=900, help_text="a served task expires after this long")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(labels_required__gte=1), name="dataset_labels_required_positive")
        ]

    def __str__(self) -> str:
        return self.name


# -- read models ------------------------------------------------------------------------


class Snippet(models.Model):
    id = models.UUIDField(primary_key=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="snippets")
    prompt = models.TextField()
    completion = models.TextField()
    source = models.CharField(max_length=32, choices=Source.choices)
    split = models.CharField(max_length=16, choices=Split.choices)
    content_hash = models.CharField(max_length=64)
    author_id = models.IntegerField(null=True, help_text="user who wrote it as an attack")
    added_position = models.BigIntegerField()
    added_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "content_hash"], name="snippet_unique_content_per_dataset")
        ]

    def __str__(self) -> str:
        return f"{self.completion[:60]}"


class TaskKind(models.TextChoices):
    LABEL = "label", "Label"
    COMPARISON = "comparison", "Comparison"
    RATING = "rating", "Egregiousness rating"


class WorkItem(models.Model):
    """What a subject (snippet or pair) still needs: the queue of one task kind."""

    class Status(models.TextChoices):
        OPEN = "open"
        SETTLED = "settled"
        NO_MAJORITY = "no_majority"
        DISPUTED = "disputed"  # labellers disagree and the dataset has no tie-break

    kind = models.CharField(max_length=16, choices=TaskKind.choices)
    subject_id = models.UUIDField()
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="work_items")
    stream_type = models.CharField(max_length=32)
    stream_version = models.PositiveIntegerField()
    required = models.PositiveSmallIntegerField()
    base_required = models.PositiveSmallIntegerField()  # fixed when the subject was added
    tie_break_allowed = models.BooleanField(default=False)
    done = models.PositiveSmallIntegerField(default=0)
    held = models.PositiveSmallIntegerField(default=0)
    tie_break_opened = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    final_label = models.CharField(max_length=16, choices=Label.choices, blank=True)
    excluded_user_id = models.IntegerField(null=True)  # an attack's author never labels it
    created_position = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "subject_id"], name="work_item_unique_subject")]
        indexes = [
            models.Index(
                fields=["dataset", "kind", "-tie_break_opened", "created_position"],  # next-task order
                name="work_item_queue",
                condition=models.Q(status="open"),
            )
        ]


class Assignment(models.Model):
    """One served task: who holds or did it, when, and the server-measured time."""

    class State(models.TextChoices):
        HELD = "held"
        SUBMITTED = "submitted"
        RELEASED = "released"
        EXPIRED = "expired"

    task_id = models.UUIDField(primary_key=True)
    work_item = models.ForeignKey(WorkItem, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices)
    served_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True)
    seconds = models.FloatField(null=True)
    answer = models.CharField(max_length=32, blank=True)  # label, comparison choice or rating
    swapped = models.BooleanField(default=False)  # comparisons: shown second-first

    class Meta:
        indexes = [
            models.Index(fields=["user", "work_item"], name="assignment_user_item"),
            models.Index(fields=["user", "state"], name="assignment_user_state"),
            models.Index(fields=["state", "expires_at"], name="assignment_state_expiry"),
        ]


class ComparisonPair(models.Model):
    id = models.UUIDField(primary_key=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="comparison_pairs")
    first = models.ForeignKey(Snippet, on_delete=models.PROTECT, related_name="+")
    second = models.ForeignKey(Snippet, on_delete=models.PROTECT, related_name="+")
