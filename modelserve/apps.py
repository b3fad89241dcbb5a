from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ModelserveConfig(AppConfig):
    """Classifier registry, inference interface and training jobs."""

    name = "modelserve"

    def ready(self) -> None:
        post_migrate.connect(_ensure_schedule, sender=self)


def _ensure_schedule(**kwargs) -> None:
    from django_q.models import Schedule

    Schedule.objects.using(kwargs.get("using", "default")).update_or_create(
        name="modelserve.fail_stale_runs",
        defaults={"func": "modelserve.training_jobs.fail_stale_runs", "schedule_type": Schedule.MINUTES,
                  "minutes": 5, "repeats": -1},
    )
