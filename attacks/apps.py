from django.apps import AppConfig


class AttacksConfig(AppConfig):
    """Attack campaigns, per-day blinded assignment, attack pages and paraphrase jobs."""

    name = "attacks"
