"""The annotation read models: an inline projection, current when each append returns."""

from datetime import datetime

from annotation import consensus
from annotation.models import Assignment, ComparisonPair, Snippet, TaskKind, WorkItem
from eventlog import projections
from eventlog.projections import Projection, register

_COUNTS = ("stream_version", "done", "held")
KIND_OF_STREAM = {"snippet": TaskKind.LABEL, "pair": TaskKind.COMPARISON, "rating": TaskKind.RATING}


@register
class AnnotationProjection(Projection):
    """Snippets, comparison pairs, work items (the queues and consensus) and assignments."""

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
    inline = True

    def apply(self, events):
        # Imports append thousands of snippet_added events at once: insert those in bulk.
        added = []
        for event in events:
            if event.type == "annotation.snippet_added":
                added.append(event)
                continue
            self._add_snippets(added)
            added = []
            getattr(self, "on_" + event.type.removeprefix("annotation."))(event, event.payload)
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

    # -- tasks -------------------------------------------------------------------------

    def _item(self, event) -> WorkItem:
        item = WorkItem.objects.get(kind=KIND_OF_STREAM[event.stream.type], subject_id=event.stream.id)
        item.stream_version = event.version
        return item

    def on_task_served(self, event, p):
        item = self._item(event)
        item.held += 1
        item.save(update_fields=["stream_version", "held"])
        Assignment.objects.create(
            task_id=p["task_id"],
            work_item=item,
            user_id=p["user_id"],
            state=Assignment.State.HELD,
            served_at=event.recorded_at,
            expires_at=datetime.fromisoformat(p["expires_at"]),
            swapped=p["swapped"],
        )

    def on_task_released(self, event, p):
        item = self._item(event)
        released = Assignment.objects.filter(task_id=p["task_id"], state=Assignment.State.HELD).update(
            state=Assignment.State.EXPIRED if p["reason"] == "expired" else Assignment.State.RELEASED
        )
        if released:
            item.held -= 1
        item.save(update_fields=["stream_version", "held"])

    def _submitted(self, event, p, answer) -> WorkItem:
        assignment = Assignment.objects.select_related("work_item").get(task_id=p["task_id"])
        item = assignment.work_item
        item.stream_version = event.version
        if assignment.state == Assignment.State.HELD:
            item.held -= 1
        item.done += 1
        Assignment.objects.filter(pk=assignment.pk).update(
            state=Assignment.State.SUBMITTED, answer=answer, seconds=p["seconds"], submitted_at=event.recorded_at
        )
        return item

    def on_label_submitted(self, event, p):
        item = self._submitted(event, p, p["label"])
        self._decide(item, event)

    def on_label_corrected(self, event, p):
        item = self._item(event)
        Assignment.objects.filter(task_id=p["task_id"]).update(answer=p["label"])
        self._decide(item, event)

    def _decide(self, item: WorkItem, event):
        labels = list(
            Assignment.objects.filter(work_item=item, state=Assignment.State.SUBMITTED)
            .order_by("submitted_at", "task_id")
            .values_list("answer", flat=True)
        )
        outcome = consensus.decide(
            labels,
            base_required=item.base_required,
            tie_break=item.tie_break_allowed,
            tie_break_opened=item.tie_break_opened,
        )
        item.status = outcome.status
        item.final_label = outcome.final_label
        item.required = outcome.required
        item.tie_break_opened = outcome.tie_break_opened
        item.save(update_fields=[*_COUNTS, "status", "final_label", "required", "tie_break_opened"])

    def _settle_when_done(self, item: WorkItem):
        if item.done >= item.required:
            item.status = WorkItem.Status.SETTLED
        item.save(update_fields=[*_COUNTS, "status"])

    def on_comparison_submitted(self, event, p):
        assignment = Assignment.objects.get(task_id=p["task_id"])
        choice = p["choice"]
        if assignment.swapped and choice != "same":
            choice = "second" if choice == "first" else "first"  # stored in the pair's own order
        self._settle_when_done(self._submitted(event, p, choice))

    def on_rating_submitted(self, event, p):
        self._settle_when_done(self._submitted(event, p, str(p["rating"])))


def catch_up() -> None:
    """Apply events committed by others that the work items do not show yet (after a conflict)."""
    projections.catch_up(AnnotationProjection.name)
