from django.apps import AppConfig


class ModelserveConfig(AppConfig):
    """Classifier registry, inference interface and training jobs."""

    name = "modelserve"

    def ready(self) -> None:
        from eventlog.scheduling import every_minutes

        every_minutes(self, name="modelserve.fail_stale_runs", func="modelserve.training_jobs.fail_stale_runs",
                      minutes=5)
