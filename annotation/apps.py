from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    """Vendors, contractors, datasets, snippets, labels, comparisons and ratings."""

    name = "annotation"
