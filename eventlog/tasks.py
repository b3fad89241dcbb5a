"""django-q2 tasks of the event log."""

from eventlog import projections


def run_projections() -> dict[str, int]:
    """Advance every projection to the head of the log (scheduled every minute)."""
    return projections.run_all()
