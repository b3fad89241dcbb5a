"""Reads of the attack read models: open campaigns, effort and successes per classifier."""

from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum

from annotation.models import Label, TaskKind, WorkItem
from attacks.models import Campaign, Effort, Submission


def open_campaigns() -> QuerySet:
    """The campaigns contractors can work on (paraphrase campaigns run by themselves)."""
    return Campaign.objects.filter(active=True).exclude(kind=Campaign.Kind.PARAPHRASE).order_by("name")


def open_campaign_classifiers() -> list[str]:
    """Every classifier an open campaign's contractors may be attacking today."""
    versions = set()
    for target, experiment in open_campaigns().values_list("target_version", "experiment_classifiers"):
        versions.update([target] if target else experiment)
    return sorted(versions)


def confirmed_injurious(snippet_ref) -> Exists:
    """Labelling settled the snippet as injurious: what makes a submitted attack a success."""
    return Exists(
        WorkItem.objects.filter(
            kind=TaskKind.LABEL, subject_id=snippet_ref, status=WorkItem.Status.SETTLED,
            final_label=Label.INJURIOUS,
        )
    )


def submissions(campaign: Campaign | None = None) -> QuerySet:
    rows = Submission.objects.annotate(success=confirmed_injurious(OuterRef("snippet_id")))
    return rows.filter(campaign=campaign) if campaign else rows


@dataclass(frozen=True)
class ClassifierEffort:
    version: str
    seconds: float
    contractor_days: int
    attempts: int
    submissions: int
    successes: int

    @property
    def seconds_per_success(self) -> float | None:
        return self.seconds / self.successes if self.successes else None

    @property
    def minutes_per_success(self) -> float | None:
        return self.seconds_per_success / 60 if self.successes else None


def effort_by_classifier(campaign: Campaign) -> list[ClassifierEffort]:
    """Time spent, attempts, submissions and confirmed successes against each classifier:
    the input of time per successful attack."""
    effort = {
        row["version"]: row
        for row in Effort.objects.filter(campaign=campaign).values("version").annotate(
            seconds=Sum("seconds"), days=Count("id"), attempts=Sum("attempts"), submitted=Sum("submissions")
        )
    }
    successes = dict(
        submissions(campaign).values("version").annotate(n=Count("snippet_id", filter=Q(success=True)))
        .values_list("version", "n")
    )
    return [
        ClassifierEffort(version, row["seconds"], row["days"], row["attempts"], row["submitted"],
                         successes.get(version, 0))
        for version, row in sorted(effort.items())
    ]


def effort_rows(campaign: Campaign) -> QuerySet:
    """One row per contractor, day and classifier (the unit a bootstrap resamples)."""
    return Effort.objects.filter(campaign=campaign).order_by("day", "user_id", "version")
