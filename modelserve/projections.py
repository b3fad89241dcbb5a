"""The classifier registry, current when each append returns."""

from eventlog.projections import Projection, register
from modelserve.models import ClassifierVersion


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
