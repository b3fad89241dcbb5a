"""Event types of modelserve.

Streams: `classifier/<version>` (the registry), `training/<run id>`, `generation/<job id>`
(completion, comparison-set and prompt-selection jobs), `filtered/<request id>` (one request
to the filtered generator and every draw it rejected).
"""

from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from eventlog.registry import Payload, event_type
from eventlog.store import Stream

# -- streams: one place that names each ---------------------------------------------------


def classifier_stream(version: str) -> Stream:
    return Stream("classifier", version)


def training_stream(run_id) -> Stream:
    return Stream("training", str(run_id))


def generation_stream(job_id) -> Stream:
    return Stream("generation", str(job_id))


def filtered_stream(request_id) -> Stream:
    return Stream("filtered", str(request_id))


def scores_stream(version: str) -> Stream:
    return Stream("scores", version)


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


@event_type("modelserve.threshold_chosen")
class ThresholdChosen(Payload):
    """The threshold the filtered generator uses with this classifier."""

    threshold: float = Field(gt=0, lt=1)
    method: str = Field(min_length=1, max_length=200)  # e.g. "simulated rejection sampling", "set by a PM"


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


class GenerationParams(Payload):
    temperature: float = Field(ge=0, le=2)
    max_new_tokens: int = Field(ge=1, le=512)
    top_p: float = Field(default=0.95, gt=0, le=1)


@event_type("modelserve.generation_job_started")
class GenerationJobStarted(Payload):
    job_id: UUID
    kind: Literal["completions", "comparison_set", "prompt_selection", "quality_check"]
    generator: str  # its name: "local:<folder>", "http:<model>@<host>" or "replay"
    params: GenerationParams
    seed: int  # each prompt's draws are seeded from it and the prompt's index
    prompts: list[str] = Field(min_length=1, max_length=10_000)
    per_prompt: int = Field(ge=1, le=200)
    dataset_id: int | None = None  # completions and comparison sets: where the snippets go
    source: str | None = None
    split: str | None = None
    pairs_per_prompt: int | None = None  # comparison sets
    version: str | None = None  # prompt selection, quality check: the classifier
    threshold: float | None = None
    keep_fraction: float | None = None


@event_type("modelserve.prompt_completed")
class PromptCompleted(Payload):
    index: int = Field(ge=0)
    seed: int
    completions: list[str]
    snippet_ids: list[UUID | None] = []  # None: empty, or already in the dataset
    scores: list[float] = []  # prompt selection


@event_type("modelserve.generation_job_finished")
class GenerationJobFinished(Payload):
    report: dict[str, Any] = {}


@event_type("modelserve.generation_job_failed")
class GenerationJobFailed(Payload):
    reason: str


@event_type("modelserve.filtered_requested")
class FilteredRequested(Payload):
    request_id: UUID
    prompt: str = Field(min_length=1, max_length=20_000)
    version: str = Field(pattern=VERSION_PATTERN)
    threshold: float = Field(gt=0, lt=1)
    generator: str
    params: GenerationParams
    seed: int
    max_attempts: int = Field(ge=1, le=1000)
    user_id: int | None = None


@event_type("modelserve.filtered_draw_rejected")
class FilteredDrawRejected(Payload):
    attempt: int = Field(ge=1)
    completion: str
    score: float | None  # None: an empty draw, never scored


@event_type("modelserve.filtered_answered")
class FilteredAnswered(Payload):
    attempts: int = Field(ge=1)
    completion: str | None  # None: every draw was rejected
    score: float | None


@event_type("modelserve.scores_recorded")
class ScoresRecorded(Payload):
    """Scores of stored snippets under one classifier, kept so that reports are reproducible."""

    version: str = Field(pattern=VERSION_PATTERN)
    scores: list[tuple[UUID, float]] = Field(min_length=1, max_length=5000)
