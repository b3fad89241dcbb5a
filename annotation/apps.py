from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AnnotationConfig(AppConfig):
    """Vendors, contractors, datasets, snippets, labels, comparisons and ratings."""

    name = "annotation"

    def ready(self) -> None:
        post_migrate.connect(_ensure_expiry_schedule, sender=self)


def _ensure_expiry_schedule(**kwargs) -> None:
    from django_q.models import Schedule

    Schedule.objects.using(kwargs.get("using", "default")).update_or_create(
        name="annotation.expire_holds",
        defaults={"func": "annotation.tasks.expire_holds", "schedule_type": Schedule.MINUTES, "minutes": 1,
                  "repeats": -1},
    )
