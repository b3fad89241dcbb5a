from django.apps import AppConfig


class ModelserveConfig(AppConfig):
    """Classifier registry, inference interface and training jobs."""

    name = "modelserve"
