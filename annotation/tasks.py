"""django-q2 tasks of the annotation app."""

from annotation import services


def expire_holds() -> int:
    """Release overdue holds so that their slots are served again (scheduled every minute)."""
    return services.expire_holds()
