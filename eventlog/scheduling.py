"""Recurring django-q2 jobs, declared by each app in its AppConfig.ready()."""

from django.db.models.signals import post_migrate


def every_minutes(app_config, *, name: str, func: str, minutes: int) -> None:
    """Create or update the schedule `name` after each migrate (never a duplicate)."""

    def ensure(**kwargs):
        from django_q.models import Schedule

        Schedule.objects.using(kwargs.get("using", "default")).update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )

    post_migrate.connect(ensure, sender=app_config, weak=False, dispatch_uid=f"schedule:{name}")
