from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    """Threshold selection, test metrics and the paper's report (read-only)."""

    name = "evaluation"
