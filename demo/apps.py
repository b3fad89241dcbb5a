from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`manage.py demo`: the demo data, accounts, a trained baseline and a campaign (what `make run` sets up)."""

    name = "demo"
