"""Reads for pages, the API and the admin. Scoped by what the viewer may see (roles.py)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import NamedTuple
from uuid import UUID

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import Count, Q

from annotation import roles
from annotation.errors import TaskNotFound
from annotation.models import Assignment, ComparisonPair, Dataset, Label, Snippet, TaskKind, WorkItem
from eventlog import sql

LABEL_CODES = {Label.INJURIOUS: 0, Label.NOT_INJURIOUS: 1, Label.UNSURE: 2}


def own_task(user, task_id) -> Assignment:
    """A task served to this user (with its work item and dataset); TaskNotFound otherwise."""
    try:
        task_id = task_id if isinstance(task_id, UUID) else UUID(str(task_id))
    except ValueError:
        raise TaskNotFound() from None
    found = _tasks("a.task_id = %s AND a.user_id = %s", [task_id, user.pk])
    if not found:
        raise TaskNotFound()
    return found[0]


def held_task(user, dataset: Dataset, kind: str, now: datetime) -> Assignment | None:
    """The unexpired task of this kind and dataset the user holds, if any."""
    found = _tasks(
        "a.user_id = %s AND a.state = 'held' AND w.dataset_id = %s AND w.kind = %s AND a.expires_at > %s LIMIT 1",
        [user.pk, dataset.pk, kind, now],
    )
    return found[0] if found else None


def overdue_holds(now: datetime, dataset: Dataset | None = None, limit: int = 500) -> list[Assignment]:
    where, params = "a.state = 'held' AND a.expires_at <= %s", [now]
    if dataset is not None:
        where += " AND w.dataset_id = %s"
        params.append(dataset.pk)
    return _tasks(where + " LIMIT %s", [*params, limit])


class Candidate(NamedTuple):
    """An open subject the queue may serve: what serving it needs (the stream and its version)."""

    id: int
    subject_id: UUID
    stream_type: str
    stream_version: int
    tie_break_opened: bool


def queue_candidates(user, dataset: Dataset, kind: str, limit: int) -> list[Candidate]:
    """The first open subjects with a free slot that this user has never been served and did
    not write: tie-breaks first, then in the order they were added (the `work_item_queue` index)."""
    found = sql.rows(
        "SELECT w.id, w.subject_id, w.stream_type, w.stream_version, w.tie_break_opened FROM annotation_workitem w"
        # States written out, not parameters: a prepared statement's generic plan can use the
        # partial index `work_item_queue` (status = 'open') only if the text says so.
        " WHERE w.dataset_id = %s AND w.kind = %s AND w.status = 'open' AND w.required > w.done + w.held"
        " AND (w.excluded_user_id IS NULL OR w.excluded_user_id <> %s)"
        " AND NOT EXISTS (SELECT 1 FROM annotation_assignment a WHERE a.work_item_id = w.id AND a.user_id = %s)"
        " ORDER BY w.tie_break_opened DESC, w.created_position LIMIT %s",
        [dataset.pk, kind, user.pk, user.pk, limit],
    )
    return [Candidate(id, sql.uuid_of(subject), stream, version, bool(tie)) for id, subject, stream, version, tie in found]


def _tasks(where: str, params: list) -> list[Assignment]:
    """Assignments with their work item and its dataset, in one query (the hot paths' reads)."""
    widths = [len(model._meta.concrete_fields) for model in (Assignment, WorkItem)]
    tasks = []
    for values in sql.rows(_task_select() + where, params):
        task = sql.instance(Assignment, values[: widths[0]])
        item = sql.instance(WorkItem, values[widths[0] : sum(widths)])
        item.dataset = sql.instance(Dataset, values[sum(widths) :])
        task.work_item = item
        tasks.append(task)
    return tasks


@cache
def _task_select() -> str:
    return (
        f"SELECT {sql.columns(Assignment, 'a')}, {sql.columns(WorkItem, 'w')}, {sql.columns(Dataset, 'd')}"
        " FROM annotation_assignment a JOIN annotation_workitem w ON w.id = a.work_item_id"
        " JOIN annotation_dataset d ON d.id = w.dataset_id WHERE "
    )


def task_content(task: Assignment) -> dict:
    """What a contractor is shown for a task: the text only, in the order it is shown."""
    item = task.work_item
    if item.kind == TaskKind.COMPARISON:
        pair = ComparisonPair.objects.select_related("first", "second").get(pk=item.subject_id)
        shown = [pair.second, pair.first] if task.swapped else [pair.first, pair.second]
        return {"prompt": pair.first.prompt, "completions": [s.completion for s in shown]}
    snippet = Snippet.objects.get(pk=item.subject_id)
    return {"prompt": snippet.prompt, "completions": [snippet.completion]}


def datasets_for(user):
    if roles.role_of(user) is None:
        return Dataset.objects.none()
    return Dataset.objects.filter(active=True).order_by("name")


def own_progress(user, dataset: Dataset | None = None) -> dict[str, int]:
    """How many tasks of each kind the user has answered."""
    done = Assignment.objects.filter(user=user, state=Assignment.State.SUBMITTED)
    if dataset is not None:
        done = done.filter(work_item__dataset=dataset)
    counts = dict(done.values_list("work_item__kind").annotate(n=Count("pk")))
    return {kind: counts.get(kind, 0) for kind in TaskKind.values}


def dataset_progress(dataset: Dataset) -> dict[str, int]:
    items = WorkItem.objects.filter(dataset=dataset, kind=TaskKind.LABEL)
    summary = items.aggregate(
        snippets=Count("pk"),
        settled=Count("pk", filter=Q(status=WorkItem.Status.SETTLED)),
        open=Count("pk", filter=Q(status=WorkItem.Status.OPEN)),
        tie_breaks=Count("pk", filter=Q(tie_break_opened=True)),
        no_majority=Count("pk", filter=Q(status__in=[WorkItem.Status.NO_MAJORITY, WorkItem.Status.DISPUTED])),
    )
    summary["held"] = Assignment.objects.filter(
        work_item__dataset=dataset, state=Assignment.State.HELD
    ).count()
    return summary


@dataclass(frozen=True)
class LabellerRow:
    user_id: int
    username: str
    vendor: str
    labels: int
    mean_seconds: float | None
    agreement_with_consensus: float | None
    pairwise_agreement: float | None


@dataclass(frozen=True)
class Agreement:
    items: int  # snippets with two or more labels
    pairwise_agreement: float | None  # share of label pairs on a snippet that agree
    cohen_kappa: float | None  # first against second label of each snippet
    krippendorff_alpha: float | None  # nominal, all labels
    labellers: list[LabellerRow]


def agreement(dataset: Dataset, viewer) -> Agreement:
    """Agreement statistics of a dataset; the per-labeller rows only for people `viewer` may see."""
    import krippendorff  # on use: these pull in pandas and scipy
    from sklearn.metrics import cohen_kappa_score

    rows = (
        Assignment.objects.filter(
            work_item__dataset=dataset, work_item__kind=TaskKind.LABEL, state=Assignment.State.SUBMITTED
        )
        .order_by("submitted_at", "task_id")
        .values_list("work_item_id", "user_id", "answer", "seconds", "work_item__final_label")
    )
    by_item = defaultdict(list)
    per_user = defaultdict(lambda: {"labels": 0, "seconds": [], "with_final": [0, 0], "pairs": [0, 0]})
    for item_id, user_id, answer, seconds, final in rows:
        by_item[item_id].append((user_id, answer))
        stats = per_user[user_id]
        stats["labels"] += 1
        if seconds is not None:
            stats["seconds"].append(seconds)
        if final:
            stats["with_final"][0] += answer == final
            stats["with_final"][1] += 1

    agree = pairs = 0
    first, second = [], []
    for labels in by_item.values():
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                same = labels[i][1] == labels[j][1]
                agree += same
                pairs += 1
                for k in (i, j):
                    per_user[labels[k][0]]["pairs"][0] += same
                    per_user[labels[k][0]]["pairs"][1] += 1
        if len(labels) >= 2:
            first.append(labels[0][1])
            second.append(labels[1][1])

    multi = [labels for labels in by_item.values() if len(labels) >= 2]
    kappa = alpha = None
    if len(first) >= 2 and len(set(first) | set(second)) > 1:
        kappa = float(cohen_kappa_score(first, second))
    if multi and len({answer for labels in multi for _, answer in labels}) > 1:
        width = max(len(labels) for labels in multi)
        matrix = np.full((width, len(multi)), np.nan)
        for column, labels in enumerate(multi):
            for row, (_, answer) in enumerate(labels):
                matrix[row, column] = LABEL_CODES[answer]
        alpha = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))

    visible = get_user_model().objects.filter(pk__in=per_user).filter(
        pk__in=roles.visible_users(viewer).values("pk")
    ).select_related("member__vendor")
    labellers = []
    for user in visible.order_by("username"):
        stats = per_user[user.pk]
        member = getattr(user, "member", None)
        labellers.append(
            LabellerRow(
                user_id=user.pk,
                username=user.get_username(),
                vendor=str(member.vendor) if member and member.vendor else "",
                labels=stats["labels"],
                mean_seconds=sum(stats["seconds"]) / len(stats["seconds"]) if stats["seconds"] else None,
                agreement_with_consensus=_ratio(*stats["with_final"]),
                pairwise_agreement=_ratio(*stats["pairs"]),
            )
        )
    return Agreement(
        items=len(multi),
        pairwise_agreement=_ratio(agree, pairs),
        cohen_kappa=kappa,
        krippendorff_alpha=alpha,
        labellers=labellers,
    )


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def vendor_progress(viewer, dataset: Dataset) -> list[dict]:
    """Answered tasks per person in the dataset, for the people the viewer may see."""
    return list(
        Assignment.objects.filter(
            work_item__dataset=dataset,
            state=Assignment.State.SUBMITTED,
            user_id__in=roles.visible_users(viewer).values("pk"),
        )
        .values("user__username", "user__member__vendor__name")
        .annotate(done=Count("pk"))
        .order_by("user__member__vendor__name", "user__username")
    )
