"""Annotation commands: each validates, appends events, and returns what the caller shows.

Views (HTMX pages, REST API, admin) call these and nothing else to change state.
"""

import hashlib
import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.db import connection
from django.utils import timezone
from uuid_utils.compat import uuid7

from annotation import projections, roles
from annotation.errors import InvalidAnswer, NotAllowed, QueueBusy, TaskGone
from annotation.events import (
    ComparisonCreated,
    ComparisonSubmitted,
    ImportCompleted,
    LabelCorrected,
    LabelSubmitted,
    RatingRequested,
    RatingSubmitted,
    SnippetAdded,
    TaskReleased,
    TaskServed,
    import_stream,
    pair_stream,
    rating_stream,
    snippet_stream,
)
from annotation.models import Assignment, Dataset, Label, Snippet, TaskKind, WorkItem
from annotation.selectors import Candidate, held_task, overdue_holds, own_task, queue_candidates
from eventlog.errors import ConcurrencyConflict
from eventlog.retry import retry_on_conflict
from eventlog.store import NewEvent, Stream, append

CANDIDATES = 50  # next-task picks at random among the first few, so that contractors seldom collide
ATTEMPTS = 8  # candidate lists read before giving up (each tried whole), and tries of an answer


def content_hash(prompt: str, completion: str) -> str:
    return hashlib.sha256(f"{prompt.strip()}\x1f{completion.strip()}".encode()).hexdigest()


# -- snippets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SnippetInput:
    prompt: str
    completion: str
    source: str
    split: str
    line: int = 0  # where it came from, for messages


@dataclass(frozen=True)
class ImportResult:
    added: int
    duplicate_lines: list[int]


def _snippet_event(dataset: Dataset, row: SnippetInput, digest: str, author_id: int | None) -> NewEvent:
    snippet_id = uuid7()
    return NewEvent(
        snippet_stream(snippet_id),
        SnippetAdded(
            snippet_id=snippet_id,
            dataset_id=dataset.pk,
            prompt=row.prompt,
            completion=row.completion,
            source=row.source,
            split=row.split,
            content_hash=digest,
            author_id=author_id,
            labels_required=dataset.labels_required,
            tie_break=dataset.tie_break,
        ),
    )


def import_snippets(*, dataset: Dataset, rows: list[SnippetInput], filename: str) -> ImportResult:
    """Add validated rows in one atomic batch; rows whose content is already there are skipped."""
    existing = set(Snippet.objects.filter(dataset=dataset).values_list("content_hash", flat=True))
    events, duplicates = [], []
    for row in rows:
        digest = content_hash(row.prompt, row.completion)
        if digest in existing:
            duplicates.append(row.line)
            continue
        existing.add(digest)
        events.append(_snippet_event(dataset, row, digest, None))
    summary = ImportCompleted(
        dataset_id=dataset.pk, filename=filename, added=len(events), duplicate_lines=duplicates
    )
    append([*events, NewEvent(import_stream(uuid7()), summary)])
    if len(events) >= 1000:
        _refresh_planner_statistics()
    return ImportResult(added=len(events), duplicate_lines=duplicates)


def _refresh_planner_statistics() -> None:
    """After a large import, PostgreSQL's row estimates are stale until autovacuum runs; the
    queue queries would be planned on them (a sort of every open item instead of an index walk)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE annotation_workitem, annotation_snippet, annotation_assignment")


def add_snippet(*, dataset: Dataset, snippet: SnippetInput, author_id: int | None = None) -> UUID:
    """Add one snippet (attacks use this); an identical one in the dataset is refused."""
    [snippet_id] = add_snippets(dataset=dataset, rows=[snippet], author_id=author_id)
    if snippet_id is None:
        raise InvalidAnswer("this snippet is already in the dataset")
    return snippet_id


def add_snippets(*, dataset: Dataset, rows: list[SnippetInput], author_id: int | None = None) -> list[UUID | None]:
    """Add snippets in one append; the id of each, or None where the dataset already had it."""
    digests = [content_hash(row.prompt, row.completion) for row in rows]
    existing = set(Snippet.objects.filter(dataset=dataset, content_hash__in=digests).values_list("content_hash",
                                                                                                  flat=True))
    events, ids = [], []
    for row, digest in zip(rows, digests, strict=True):
        if digest in existing:
            ids.append(None)
            continue
        existing.add(digest)
        events.append(_snippet_event(dataset, row, digest, author_id))
        ids.append(events[-1].payload.snippet_id)
    if events:
        append(events)
    return ids


# -- serving tasks ------------------------------------------------------------------------


def _subject_stream(item: WorkItem | Candidate) -> Stream:
    """The stream of what a work item is about (a snippet, a pair, a rating request)."""
    return Stream(item.stream_type, str(item.subject_id))


def _check_worker(user, dataset: Dataset) -> None:
    if not roles.can_label(user):
        raise NotAllowed("only contractors take tasks")
    if not dataset.active:
        raise NotAllowed("this dataset is closed")


def _candidates(user, dataset: Dataset, kind: str) -> list[Candidate]:
    return queue_candidates(user, dataset, kind, CANDIDATES)


def next_task(*, user, dataset: Dataset, kind: str = TaskKind.LABEL) -> Assignment | None:
    """The task this contractor holds in the dataset, or a newly served one; None if none is left.

    Never a subject they already had, never their own attack, never a slot beyond what the
    subject needs: the serve event is appended at the subject stream's version the choice was
    made on, so two concurrent serves of the last slot cannot both succeed.
    """
    _check_worker(user, dataset)
    now = timezone.now()
    held = held_task(user, dataset, kind, now)
    if held:
        return held
    rng = random.Random()
    looked_for_overdue = False
    for _ in range(ATTEMPTS):
        candidates = _candidates(user, dataset, kind)
        if not candidates and not looked_for_overdue:
            # Overdue holds are released here when they may be all that is left, and every
            # minute by the `annotation.expire_holds` schedule otherwise.
            looked_for_overdue = True
            if expire_holds(dataset=dataset, now=now):
                candidates = _candidates(user, dataset, kind)
        if not candidates:
            return None
        tried = []
        while candidates:
            tie_breaks = [c for c in candidates if c.tie_break_opened]
            item = rng.choice(tie_breaks or candidates)  # tie-breaks go first
            if (task_id := _serve(user, dataset, kind, item, now, rng)) is not None:
                return own_task(user, task_id)
            # Someone else changed this subject meanwhile (most often: took the tie-break that
            # everyone is offered first). Try the others; once none is left, catch up and look again.
            candidates.remove(item)
            tried.append(_subject_stream(item))
        projections.catch_up(tried)
    raise QueueBusy()


def _serve(user, dataset: Dataset, kind: str, item: Candidate, now: datetime, rng: random.Random) -> UUID | None:
    """Append the serve at the version the choice was made on; None if the subject moved on."""
    task_id = uuid7()
    served = TaskServed(
        task_id=task_id,
        kind=kind,
        subject_id=item.subject_id,
        user_id=user.pk,
        expires_at=(now + timedelta(seconds=dataset.hold_seconds)).isoformat(),
        swapped=kind == TaskKind.COMPARISON and rng.random() < 0.5,
    )
    try:
        append([NewEvent(_subject_stream(item), served)], expected={_subject_stream(item): item.stream_version})
    except ConcurrencyConflict:
        return None
    return task_id


def expire_holds(*, dataset: Dataset | None = None, now: datetime | None = None) -> int:
    """Release every hold past its expiry, so that its slot is served again."""
    return sum(_release(assignment, "expired") for assignment in overdue_holds(now or timezone.now(), dataset))


def _release(assignment: Assignment, reason: str) -> int:
    item = assignment.work_item
    try:
        append(
            [NewEvent(_subject_stream(item), TaskReleased(task_id=assignment.task_id, reason=reason))],
            expected={_subject_stream(item): item.stream_version},
        )
    except ConcurrencyConflict:
        return 0  # the subject moved on (submitted, or released by someone else)
    return 1


def release_task(*, user, task_id: UUID) -> None:
    """The contractor skips a task they hold."""
    assignment = own_task(user, task_id)
    if assignment.state == Assignment.State.HELD:
        _release(assignment, "skipped")


def reassign_task(*, task_id: UUID) -> bool:
    """A project manager takes a held task back so that it is served to someone else."""
    assignment = Assignment.objects.select_related("work_item").filter(
        task_id=task_id, state=Assignment.State.HELD
    ).first()
    return bool(assignment and _release(assignment, "reassigned"))


# -- answers ------------------------------------------------------------------------------


def _submit(user, assignment: Assignment, answer: str, make_event) -> Assignment:
    """Append a submission; a retry of the same answer returns the stored one."""

    def attempt() -> Assignment:
        item = assignment.work_item
        if assignment.state == Assignment.State.SUBMITTED:
            if assignment.answer == answer or item.kind == TaskKind.COMPARISON:
                return assignment
            raise InvalidAnswer("this task was already answered with another answer (in another tab, perhaps)")
        if assignment.state != Assignment.State.HELD:
            room = item.status == WorkItem.Status.OPEN and item.done + item.held < item.required
            if not room:
                raise TaskGone("this task expired and its slot went to someone else")
        seconds = max(0.0, (timezone.now() - assignment.served_at).total_seconds())
        append([NewEvent(_subject_stream(item), make_event(assignment, seconds))],
               expected={_subject_stream(item): item.stream_version})
        return own_task(user, assignment.task_id)

    def read_again() -> None:
        nonlocal assignment
        projections.catch_up([_subject_stream(assignment.work_item)])
        assignment = own_task(user, assignment.task_id)

    return retry_on_conflict(attempt, tries=ATTEMPTS, after_conflict=read_again,
                             too_busy=lambda: TaskGone("this task is too busy to answer now; try again"))


def submit_label(*, user, task_id: UUID, label: str, assignment: Assignment | None = None) -> Assignment:
    assignment = assignment or own_task(user, task_id)
    if assignment.work_item.kind != TaskKind.LABEL:
        raise InvalidAnswer("not a labelling task")
    _check_label(assignment.work_item.dataset, label)
    return _submit(
        user, assignment, label, lambda a, seconds: LabelSubmitted(task_id=a.task_id, label=label, seconds=seconds)
    )


def correct_label(*, user, task_id: UUID, label: str) -> Assignment:
    """A labeller changes their own earlier label; a new event, the old one stays."""
    assignment = own_task(user, task_id)
    if assignment.work_item.kind != TaskKind.LABEL or assignment.state != Assignment.State.SUBMITTED:
        raise InvalidAnswer("only a submitted label can be corrected")
    _check_label(assignment.work_item.dataset, label)
    if assignment.answer != label:
        append([NewEvent(_subject_stream(assignment.work_item), LabelCorrected(task_id=task_id, label=label))])
    return own_task(user, task_id)


def _check_label(dataset: Dataset, label: str) -> None:
    allowed = {Label.INJURIOUS, Label.NOT_INJURIOUS} | ({Label.UNSURE} if dataset.offer_unsure else set())
    if label not in allowed:
        raise InvalidAnswer(f"label must be one of {sorted(allowed)}")


def submit_comparison(*, user, task_id: UUID, choice: str, assignment: Assignment | None = None) -> Assignment:
    if choice not in ("first", "second", "same"):
        raise InvalidAnswer("choice must be first, second or same")
    assignment = assignment or own_task(user, task_id)
    if assignment.work_item.kind != TaskKind.COMPARISON:
        raise InvalidAnswer("not a comparison task")
    return _submit(
        user, assignment, choice,
        lambda a, seconds: ComparisonSubmitted(task_id=a.task_id, choice=choice, seconds=seconds),
    )


def submit_rating(*, user, task_id: UUID, rating: int, assignment: Assignment | None = None) -> Assignment:
    if not isinstance(rating, int) or not 1 <= rating <= 10:
        raise InvalidAnswer("rating must be a whole number from 1 to 10")
    assignment = assignment or own_task(user, task_id)
    if assignment.work_item.kind != TaskKind.RATING:
        raise InvalidAnswer("not a rating task")
    return _submit(
        user, assignment, str(rating),
        lambda a, seconds: RatingSubmitted(task_id=a.task_id, rating=rating, seconds=seconds),
    )


def submit_answer(*, user, task_id: UUID, raw: str, assignment: Assignment | None = None) -> Assignment:
    """An answer as typed or clicked, whatever the task's kind. `assignment`: the task as the
    caller has just read it with `own_task`, if it has."""
    assignment = assignment or own_task(user, task_id)
    kind = assignment.work_item.kind
    if kind == TaskKind.LABEL:
        return submit_label(user=user, task_id=task_id, label=raw, assignment=assignment)
    if kind == TaskKind.COMPARISON:
        return submit_comparison(user=user, task_id=task_id, choice=raw, assignment=assignment)
    digits = raw.strip()  # ASCII digits only: "²".isdigit() is true, and int() refuses 5000 digits
    rating = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 2 else None
    return submit_rating(user=user, task_id=task_id, rating=rating, assignment=assignment)


# -- comparison and rating work ---------------------------------------------------------------


def create_comparisons(
    *, dataset: Dataset, pairs_per_prompt: int, seed: int = 0, snippet_ids: set[UUID] | None = None
) -> int:
    """For every prompt with several completions, pairs of its completions to compare (among
    `snippet_ids` only, when given: a new comparison set beside earlier ones)."""
    if not 4 <= pairs_per_prompt <= 100:
        raise InvalidAnswer("pairs per prompt must be between 4 and 100")
    rng = random.Random(seed)
    by_prompt: dict[str, list[UUID]] = {}
    snippets = Snippet.objects.filter(dataset=dataset)
    if snippet_ids is not None:
        snippets = snippets.filter(pk__in=snippet_ids)
    for snippet_id, prompt in snippets.order_by("added_position").values_list("id", "prompt"):
        by_prompt.setdefault(prompt, []).append(snippet_id)
    events = []
    for completions in by_prompt.values():
        pairs = list(itertools.combinations(completions, 2))
        for first, second in rng.sample(pairs, min(pairs_per_prompt, len(pairs))):
            pair_id = uuid7()
            events.append(
                NewEvent(
                    pair_stream(pair_id),
                    ComparisonCreated(
                        pair_id=pair_id, dataset_id=dataset.pk, first_snippet_id=first, second_snippet_id=second
                    ),
                )
            )
    if events:
        append(events)
    return len(events)


def request_ratings(*, dataset: Dataset, snippet_ids: list[UUID], ratings_required: int = 1) -> int:
    """Ask for egregiousness ratings of these snippets of the dataset (each once only)."""
    found = set(Snippet.objects.filter(dataset=dataset, pk__in=snippet_ids).values_list("pk", flat=True))
    if missing := [s for s in snippet_ids if s not in found]:
        raise InvalidAnswer(f"{len(missing)} snippet(s) are not in {dataset}")
    already = set(
        WorkItem.objects.filter(kind=TaskKind.RATING, subject_id__in=snippet_ids).values_list("subject_id", flat=True)
    )
    events = [
        NewEvent(
            rating_stream(snippet_id),
            RatingRequested(snippet_id=snippet_id, dataset_id=dataset.pk, ratings_required=ratings_required),
        )
        for snippet_id in dict.fromkeys(snippet_ids)
        if snippet_id not in already
    ]
    if events:
        append(events)
    return len(events)
