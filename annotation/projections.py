"""The annotation read models: an inline projection kept per subject stream, current when
each append returns."""

import itertools
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from django.db import transaction

from annotation import consensus
from annotation.models import Assignment, ComparisonPair, Snippet, TaskKind, WorkItem
from eventlog import projections, sql
from eventlog.projections import StreamProjection, register
from eventlog.store import Stream

KIND_OF_STREAM = {"snippet": TaskKind.LABEL, "pair": TaskKind.COMPARISON, "rating": TaskKind.RATING}


@register
class AnnotationProjection(StreamProjection):
    """Snippets, comparison pairs, work items (the queues and consensus) and assignments.

    One subject stream (a snippet to label, a pair to compare, a snippet to rate) has one work
    item, which records the stream's version; an event changes only its own subject's work item
    and assignments. Comparisons and ratings read snippets that were here before they were asked
    for."""

    name = "annotation.work"
    event_types = frozenset(
        {
            "annotation.snippet_added",
            "annotation.comparison_created",
            "annotation.rating_requested",
            "annotation.task_served",
            "annotation.task_released",
            "annotation.label_submitted",
            "annotation.label_corrected",
            "annotation.comparison_submitted",
            "annotation.rating_submitted",
        }
    )
    # Events that create a subject's work item: never applied by `apply_following`.
    _CREATING = frozenset({"annotation.snippet_added", "annotation.comparison_created", "annotation.rating_requested"})

    def applied_versions(self, streams: Collection[Stream], *, lock: bool) -> dict[Stream, int]:
        applied = {}
        locking = " ORDER BY id FOR UPDATE" if lock and sql.postgres() else ""
        by_kind = sorted((KIND_OF_STREAM[s.type], s.type, UUID(s.id)) for s in streams)
        for (kind, stream_type), group in itertools.groupby(by_kind, key=lambda k: k[:2]):
            subjects = [subject for *_, subject in group]
            for start in range(0, len(subjects), 5000):
                condition, params = sql.any_of("subject_id", subjects[start : start + 5000])
                for subject, version in sql.rows(
                    f"SELECT subject_id, stream_version FROM annotation_workitem WHERE kind = %s AND {condition}{locking}",
                    [kind, *params],
                ):
                    applied[Stream(stream_type, str(sql.uuid_of(subject)))] = version
        return applied

    def apply(self, events):
        # Imports append thousands of snippet_added events at once: insert those in bulk.
        added = []
        for event in events:
            if event.type == "annotation.snippet_added":
                added.append(event)
                continue
            self._add_snippets(added)
            added = []
            if not self._handle(event):
                raise RuntimeError(f"{event.stream} is not at version {event.version - 1} in the read model")
        self._add_snippets(added)

    def _add_snippets(self, events):
        if not events:
            return
        Snippet.objects.bulk_create([
            Snippet(
                id=e.payload["snippet_id"],
                dataset_id=e.payload["dataset_id"],
                prompt=e.payload["prompt"],
                completion=e.payload["completion"],
                source=e.payload["source"],
                split=e.payload["split"],
                content_hash=e.payload["content_hash"],
                author_id=e.payload["author_id"],
                added_position=e.position,
                added_at=e.recorded_at,
            )
            for e in events
        ])
        WorkItem.objects.bulk_create([
            self._work_item(
                e, TaskKind.LABEL, e.payload["snippet_id"], e.payload["dataset_id"], e.payload["labels_required"],
                excluded_user_id=e.payload["author_id"], tie_break_allowed=e.payload["tie_break"],
            )
            for e in events
        ])

    def reset(self):
        Assignment.objects.all().delete()
        WorkItem.objects.all().delete()
        ComparisonPair.objects.all().delete()
        Snippet.objects.all().delete()

    # -- subjects ----------------------------------------------------------------------

    def on_comparison_created(self, event, p):
        ComparisonPair.objects.create(
            id=p["pair_id"], dataset_id=p["dataset_id"],
            first_id=p["first_snippet_id"], second_id=p["second_snippet_id"],
        )
        self._new_item(event, TaskKind.COMPARISON, p["pair_id"], p["dataset_id"], 1)

    def on_rating_requested(self, event, p):
        author = Snippet.objects.filter(pk=p["snippet_id"]).values_list("author_id", flat=True).first()
        self._new_item(event, TaskKind.RATING, p["snippet_id"], p["dataset_id"], p["ratings_required"],
                       excluded_user_id=author)

    def _new_item(self, event, kind, subject_id, dataset_id, required, excluded_user_id=None):
        self._work_item(event, kind, subject_id, dataset_id, required, excluded_user_id).save()

    @staticmethod
    def _work_item(event, kind, subject_id, dataset_id, required, excluded_user_id=None, tie_break_allowed=False):
        return WorkItem(
            kind=kind,
            subject_id=subject_id,
            dataset_id=dataset_id,
            stream_type=event.stream.type,
            stream_version=event.version,
            required=required,
            base_required=required,
            tie_break_allowed=tie_break_allowed,
            excluded_user_id=excluded_user_id,
            created_position=event.position,
        )

    # -- tasks: the hot path, one fixed statement per step (eventlog/sql.py) ---------------
    # Each handler first moves its work item to the event's version, on condition that it is at
    # the version before: the statement that locks the row checks that the event follows on.
    # A handler returns False, having written nothing, when it does not.

    def apply_following(self, event) -> bool:
        if event.type in self._CREATING:
            return False
        if event.type == "annotation.task_served" and sql.postgres():
            return self._handle(event)  # one statement there (`on_task_served`): no transaction to open
        with transaction.atomic(savepoint=False):
            return self._handle(event)

    def _handle(self, event) -> bool:
        return getattr(self, "on_" + event.type.removeprefix("annotation."))(event, event.payload) is not False

    def on_task_served(self, event, p):
        if sql.postgres():
            return self._serve_in_one_statement(event, p)
        if (item := self._touch(event, held=1)) is None:
            return False
        sql.execute(
            "INSERT INTO annotation_assignment"
            " (task_id, work_item_id, user_id, state, served_at, expires_at, answer, swapped)"
            " VALUES (%s, %s, %s, %s, %s, %s, '', %s)",
            [UUID(p["task_id"]), item.id, p["user_id"], Assignment.State.HELD, event.recorded_at,
             datetime.fromisoformat(p["expires_at"]), p["swapped"]],
        )

    @staticmethod
    def _serve_in_one_statement(event, p) -> bool:
        """`on_task_served` as one statement (a data-modifying CTE, PostgreSQL only): atomic by
        itself, so a writer applies its serve without a transaction's BEGIN and COMMIT."""
        return sql.row(
            "WITH item AS (UPDATE annotation_workitem SET stream_version = %s, held = held + 1"
            " WHERE kind = %s AND subject_id = %s AND stream_version = %s RETURNING id)"
            " INSERT INTO annotation_assignment"
            " (task_id, work_item_id, user_id, state, served_at, expires_at, answer, swapped)"
            " SELECT %s, item.id, %s, %s, %s, %s, '', %s FROM item RETURNING work_item_id",
            [event.version, KIND_OF_STREAM[event.stream.type], UUID(event.stream.id), event.version - 1,
             UUID(p["task_id"]), p["user_id"], Assignment.State.HELD, event.recorded_at,
             datetime.fromisoformat(p["expires_at"]), p["swapped"]],
        ) is not None

    def on_task_released(self, event, p):
        task_id = UUID(p["task_id"])
        if self._touch(event, held_by_task=task_id) is None:
            return False
        state = Assignment.State.EXPIRED if p["reason"] == "expired" else Assignment.State.RELEASED
        sql.execute(
            "UPDATE annotation_assignment SET state = %s WHERE task_id = %s AND state = %s",
            [state, task_id, Assignment.State.HELD],
        )

    def on_label_submitted(self, event, p):
        if (item := self._submitted(event, p, p["label"])) is None:
            return False
        self._decide(item)

    def on_label_corrected(self, event, p):
        if (item := self._touch(event)) is None:
            return False
        sql.execute("UPDATE annotation_assignment SET answer = %s WHERE task_id = %s", [p["label"], UUID(p["task_id"])])
        self._decide(item)

    def on_comparison_submitted(self, event, p):
        choice = p["choice"]
        if self._swapped(p["task_id"]) and choice != "same":
            choice = "second" if choice == "first" else "first"  # stored in the pair's own order
        if (item := self._submitted(event, p, choice)) is None:
            return False
        self._settle_when_done(item)

    def on_rating_submitted(self, event, p):
        if (item := self._submitted(event, p, str(p["rating"]))) is None:
            return False
        self._settle_when_done(item)

    @staticmethod
    def _touch(event, held: int = 0, done: int = 0, held_by_task: UUID | None = None) -> "_Item | None":
        """Move the work item to the event's version and count changes on it, if it is at the
        version before (None otherwise). `held_by_task`: one hold fewer if that task is still
        held (it is being answered or released)."""
        found = sql.row(
            "UPDATE annotation_workitem SET stream_version = %s, done = done + %s, held = held + %s"
            " - (SELECT count(*) FROM annotation_assignment WHERE task_id = %s AND state = %s)"
            " WHERE kind = %s AND subject_id = %s AND stream_version = %s"
            " RETURNING id, base_required, tie_break_allowed, tie_break_opened, done",
            [event.version, done, held, held_by_task, Assignment.State.HELD,
             KIND_OF_STREAM[event.stream.type], UUID(event.stream.id), event.version - 1],
        )
        return _Item(found[0], found[1], bool(found[2]), bool(found[3]), found[4]) if found else None

    def _submitted(self, event, p, answer) -> "_Item | None":
        task_id = UUID(p["task_id"])
        if (item := self._touch(event, done=1, held_by_task=task_id)) is None:
            return None
        sql.execute(
            "UPDATE annotation_assignment SET state = %s, answer = %s, seconds = %s, submitted_at = %s"
            " WHERE task_id = %s",
            [Assignment.State.SUBMITTED, answer, p["seconds"], event.recorded_at, task_id],
        )
        return item

    @staticmethod
    def _swapped(task_id) -> bool:
        return bool(sql.row("SELECT swapped FROM annotation_assignment WHERE task_id = %s", [UUID(task_id)])[0])

    @staticmethod
    def _decide(item: "_Item"):
        if item.done < item.base_required:
            return  # fewer labels than the rule needs: open, as it was (`consensus.decide`)
        # The state is checked here, not in the WHERE clause: with statistics from before the
        # assignments came, the planner would combine the (state, expiry) index, which reads
        # every submitted assignment, with the work item's few.
        labels = [
            answer
            for state, answer in sql.rows(
                "SELECT state, answer FROM annotation_assignment WHERE work_item_id = %s ORDER BY submitted_at, task_id",
                [item.id],
            )
            if state == Assignment.State.SUBMITTED
        ]
        outcome = consensus.decide(
            labels,
            base_required=item.base_required,
            tie_break=item.tie_break_allowed,
            tie_break_opened=item.tie_break_opened,
        )
        sql.execute(
            "UPDATE annotation_workitem SET status = %s, final_label = %s, required = %s, tie_break_opened = %s"
            " WHERE id = %s",
            [outcome.status, outcome.final_label, outcome.required, outcome.tie_break_opened, item.id],
        )

    @staticmethod
    def _settle_when_done(item: "_Item"):
        sql.execute(
            "UPDATE annotation_workitem SET status = %s WHERE id = %s AND done >= required",
            [WorkItem.Status.SETTLED, item.id],
        )


class _Item(NamedTuple):
    """What the submission handlers need of a work item."""

    id: int
    base_required: int
    tie_break_allowed: bool
    tie_break_opened: bool
    done: int  # labels submitted, this one included


def catch_up(streams: Iterable[Stream]) -> None:
    """Apply the events of these subjects that others committed and the work items do not show
    yet (after a conflict)."""
    projections.catch_up_streams(projections.get(AnnotationProjection.name), set(streams))
