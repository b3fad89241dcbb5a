"""The classifier registry, current when each append returns."""

from eventlog.projections import Projection, register
from modelserve.models import ClassifierVersion, TrainingRun


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
