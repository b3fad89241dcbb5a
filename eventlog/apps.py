from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EventlogConfig(AppConfig):
    """The ordered, immutable event log and the projection framework. Knows no other app."""

    name = "eventlog"
    verbose_name = "Event log"

    def ready(self) -> None:
        from eventlog import readmodels  # noqa: F401  (registers the log's own projection)
        from eventlog.scheduling import every_minutes

        # Each app declares its event types in events.py and read models in projections.py.
        autodiscover_modules("events", "projections")
        every_minutes(self, name="eventlog.run_projections", func="eventlog.tasks.run_projections", minutes=1)
