"""Reads of the classifier registry that other code decides on."""

from modelserve.errors import ModelUnavailable, UnknownModel
from modelserve.models import ClassifierVersion


def ready_classifier(version: str) -> ClassifierVersion:
    """The registered classifier `version`, if it is ready to score (UnknownModel / ModelUnavailable otherwise)."""
    row = ClassifierVersion.objects.filter(version=version).first()
    if row is None:
        raise UnknownModel(version)
    if row.status != ClassifierVersion.Status.READY:
        raise ModelUnavailable(f"classifier {version} is {row.status}")
    return row


def ready_versions() -> list[str]:
    """The versions of the classifiers that are ready, for choosing among them."""
    return list(ClassifierVersion.objects.filter(status=ClassifierVersion.Status.READY)
                .order_by("version").values_list("version", flat=True))
