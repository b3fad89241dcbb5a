"""Event types of the classifier registry. Stream: `classifier/<version>`."""

from typing import Any, Literal

from pydantic import Field

from eventlog.registry import Payload, event_type

VERSION_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"


@event_type("modelserve.classifier_registered")
class ClassifierRegistered(Payload):
    version: str = Field(pattern=VERSION_PATTERN)
    base_model: str
    checkpoint_dir: str
    status: Literal["training", "ready"]
    training_run: str | None = None
    manifest_hash: str | None = None
    manifest_size: int | None = None
    hyperparameters: dict[str, Any] = {}
    metrics: dict[str, Any] = {}


@event_type("modelserve.classifier_ready")
class ClassifierReady(Payload):
    metrics: dict[str, Any] = {}


@event_type("modelserve.classifier_failed")
class ClassifierFailed(Payload):
    reason: str


@event_type("modelserve.classifier_promoted")
class ClassifierPromoted(Payload):
    pass


@event_type("modelserve.classifier_retired")
class ClassifierRetired(Payload):
    reason: str = ""


@event_type("modelserve.training_started")
class TrainingStarted(Payload):
    run_id: str
    version: str = Field(pattern=VERSION_PATTERN)
    base_model: str
    dataset_ids: list[int]
    splits: list[str]
    equal_size: bool
    hyperparameters: dict[str, Any]
    manifest_hash: str
    manifest_size: int


@event_type("modelserve.training_progressed")
class TrainingProgressed(Payload):
    step: int
    steps: int
    loss: float
    eta_seconds: float | None


@event_type("modelserve.training_cancel_requested")
class TrainingCancelRequested(Payload):
    pass


@event_type("modelserve.training_finished")
class TrainingFinished(Payload):
    metrics: dict[str, Any]
    checkpoint_dir: str


@event_type("modelserve.training_failed")
class TrainingFailed(Payload):
    reason: str
