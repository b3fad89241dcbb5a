"""The classifier registry, current when each append returns."""

from eventlog.projections import Projection, register
from modelserve.models import (
    ClassifierVersion,
    FilteredSample,
    GenerationJob,
    PromptResult,
    RecordedScore,
    TrainingRun,
)


@register
class RegistryProjection(Projection):
    name = "modelserve.registry"
    event_types = frozenset(
        {
            "modelserve.classifier_registered",
            "modelserve.classifier_ready",
            "modelserve.classifier_failed",
            "modelserve.classifier_promoted",
            "modelserve.classifier_retired",
            "modelserve.threshold_chosen",
        }
    )
    inline = True

    def handle(self, event):
        version = event.stream.id
        p = event.payload
        rows = ClassifierVersion.objects.filter(version=version)
        if event.type == "modelserve.classifier_registered":
            ClassifierVersion.objects.create(
                version=version,
                base_model=p["base_model"],
                checkpoint_dir=p["checkpoint_dir"],
                status=p["status"],
                training_run=p["training_run"] or "",
                manifest_hash=p["manifest_hash"] or "",
                manifest_size=p["manifest_size"],
                hyperparameters=p["hyperparameters"],
                metrics=p["metrics"],
                registered_at=event.recorded_at,
            )
        elif event.type == "modelserve.classifier_ready":
            rows.update(status=ClassifierVersion.Status.READY, metrics=p["metrics"])
        elif event.type == "modelserve.classifier_failed":
            rows.update(status=ClassifierVersion.Status.FAILED, failure=p["reason"])
        elif event.type == "modelserve.classifier_promoted":
            ClassifierVersion.objects.filter(promoted=True).update(promoted=False)
            rows.update(promoted=True)
        elif event.type == "modelserve.classifier_retired":
            rows.update(status=ClassifierVersion.Status.RETIRED, promoted=False)
        elif event.type == "modelserve.threshold_chosen":
            rows.update(threshold=p["threshold"], threshold_method=p["method"])

    def reset(self):
        ClassifierVersion.objects.all().delete()


@register
class TrainingRunsProjection(Projection):
    name = "modelserve.training_runs"
    event_types = frozenset(
        {
            "modelserve.training_started",
            "modelserve.training_progressed",
            "modelserve.training_cancel_requested",
            "modelserve.training_finished",
            "modelserve.training_failed",
        }
    )
    inline = True

    def handle(self, event):
        p = event.payload
        runs = TrainingRun.objects.filter(run_id=event.stream.id)
        if event.type == "modelserve.training_started":
            TrainingRun.objects.create(
                run_id=p["run_id"],
                version=p["version"],
                base_model=p["base_model"],
                spec={k: p[k] for k in ("dataset_ids", "splits", "equal_size", "hyperparameters")},
                manifest_hash=p["manifest_hash"],
                manifest_size=p["manifest_size"],
                started_at=event.recorded_at,
                heartbeat_at=event.recorded_at,
            )
        elif event.type == "modelserve.training_progressed":
            runs.update(step=p["step"], steps=p["steps"], loss=p["loss"], eta_seconds=p["eta_seconds"],
                        heartbeat_at=event.recorded_at)
        elif event.type == "modelserve.training_cancel_requested":
            runs.update(cancel_requested=True)
        elif event.type == "modelserve.training_finished":
            runs.update(status=TrainingRun.Status.FINISHED, metrics=p["metrics"], heartbeat_at=event.recorded_at)
        elif event.type == "modelserve.training_failed":
            runs.update(status=TrainingRun.Status.FAILED, failure=p["reason"], heartbeat_at=event.recorded_at)

    def reset(self):
        TrainingRun.objects.all().delete()


@register
class GenerationProjection(Projection):
    """Generation jobs and their per-prompt results; the filtered generator's answers."""

    name = "modelserve.generation"
    event_types = frozenset(
        {
            "modelserve.generation_job_started",
            "modelserve.prompt_completed",
            "modelserve.generation_job_finished",
            "modelserve.generation_job_failed",
            "modelserve.filtered_requested",
            "modelserve.filtered_draw_rejected",
            "modelserve.filtered_answered",
        }
    )
    inline = True

    def handle(self, event):
        p = event.payload
        kind = event.type.removeprefix("modelserve.")
        if kind.startswith("filtered_"):
            return self._filtered(event, kind, p)
        if kind == "generation_job_started":
            GenerationJob.objects.create(
                id=p["job_id"], kind=p["kind"], generator=p["generator"], spec=p, prompts=len(p["prompts"]),
                stream_version=event.version, started_at=event.recorded_at, updated_at=event.recorded_at,
            )
            return
        job = GenerationJob.objects.get(pk=event.stream.id)
        job.stream_version, job.updated_at = event.version, event.recorded_at
        if kind == "prompt_completed":
            PromptResult.objects.create(job=job, index=p["index"], seed=p["seed"], completions=p["completions"],
                                        scores=p["scores"], snippet_ids=p["snippet_ids"])
            job.done += 1
            job.snippets += sum(1 for s in p["snippet_ids"] if s)
        elif kind == "generation_job_finished":
            job.status, job.report = GenerationJob.Status.FINISHED, p["report"]
        elif kind == "generation_job_failed":
            job.status, job.failure = GenerationJob.Status.FAILED, p["reason"]
        job.save()

    def _filtered(self, event, kind, p):
        if kind == "filtered_requested":
            FilteredSample.objects.create(
                request_id=p["request_id"], prompt=p["prompt"], version=p["version"], threshold=p["threshold"],
                generator=p["generator"], attempts=0, user_id=p["user_id"], requested_at=event.recorded_at,
            )
            return
        sample = FilteredSample.objects.get(pk=event.stream.id)
        if kind == "filtered_draw_rejected":
            sample.rejected_scores = [*sample.rejected_scores, p["score"]]
            sample.attempts = p["attempt"]
        else:
            sample.attempts, sample.completion, sample.score = p["attempts"], p["completion"], p["score"]
        sample.save()

    def reset(self):
        FilteredSample.objects.all().delete()
        PromptResult.objects.all().delete()
        GenerationJob.objects.all().delete()


@register
class ScoresProjection(Projection):
    name = "modelserve.scores"
    event_types = frozenset({"modelserve.scores_recorded"})
    inline = True

    def apply(self, events):
        RecordedScore.objects.bulk_create(
            [RecordedScore(version=e.payload["version"], snippet_id=s, score=v) for e in events
             for s, v in e.payload["scores"]],
            ignore_conflicts=True,  # two evaluations scoring the same snippet: the first stands
        )

    def reset(self):
        RecordedScore.objects.all().delete()
