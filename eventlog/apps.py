from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules


class EventlogConfig(AppConfig):
    """The ordered, immutable event log and the projection framework. Knows no other app."""

    name = "eventlog"
    verbose_name = "Event log"

    def ready(self) -> None:
        # Each app declares its event types in events.py and read models in projections.py.
        autodiscover_modules("events", "projections")
        from eventlog import readmodels  # noqa: F401  (registers the log's own projection)
        post_migrate.connect(_ensure_projection_schedule, sender=self)


def _ensure_projection_schedule(**kwargs) -> None:
    from django_q.models import Schedule

    Schedule.objects.using(kwargs.get("using", "default")).update_or_create(
        name="eventlog.run_projections",
        defaults={
            "func": "eventlog.tasks.run_projections",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
