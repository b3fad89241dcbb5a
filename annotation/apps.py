from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    """Vendors, contractors, datasets, snippets, labels, comparisons and ratings."""

    name = "annotation"

    def ready(self) -> None:
        from eventlog.scheduling import every_minutes

        every_minutes(self, name="annotation.expire_holds", func="annotation.tasks.expire_holds", minutes=1)
