from django.apps import AppConfig


class FixtureAppConfig(AppConfig):
    """Event types and projections used only by the event-log contract tests."""

    name = "tests.fixture_app"
    label = "fixture_app"
