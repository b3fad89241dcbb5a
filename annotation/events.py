"""Event types of the annotation app.

Streams: `snippet/<id>` (a snippet and its label tasks), `pair/<id>` (a comparison pair and
its tasks), `rating/<snippet id>` (egregiousness ratings of a snippet), `import/<id>`.
"""

from typing import Literal
from uuid import UUID

from pydantic import Field

from eventlog.registry import Payload, event_type
from eventlog.store import Stream

# -- streams: one place that names each ---------------------------------------------------


def snippet_stream(snippet_id) -> Stream:
    return Stream("snippet", str(snippet_id))


def import_stream(import_id) -> Stream:
    return Stream("import", str(import_id))


def pair_stream(pair_id) -> Stream:
    return Stream("pair", str(pair_id))


def rating_stream(snippet_id) -> Stream:
    return Stream("rating", str(snippet_id))


LabelValue = Literal["injurious", "not_injurious", "unsure"]
SourceValue = Literal["initial", "in_distribution_test", "manual_adversarial", "paraphrase", "tool_assisted"]
SplitValue = Literal["train", "validation", "test"]
KindValue = Literal["label", "comparison", "rating"]

MAX_TEXT = 20_000


@event_type("annotation.snippet_added")
class SnippetAdded(Payload):
    snippet_id: UUID
    dataset_id: int
    prompt: str = Field(min_length=1, max_length=MAX_TEXT)
    completion: str = Field(min_length=1, max_length=MAX_TEXT)
    source: SourceValue
    split: SplitValue
    content_hash: str
    author_id: int | None = None  # the attacker, for adversarial snippets
    labels_required: int = Field(ge=1)  # the dataset's setting when the snippet was added
    tie_break: bool


@event_type("annotation.import_completed")
class ImportCompleted(Payload):
    dataset_id: int
    filename: str
    added: int
    duplicate_lines: list[int]


@event_type("annotation.comparison_created")
class ComparisonCreated(Payload):
    pair_id: UUID
    dataset_id: int
    first_snippet_id: UUID
    second_snippet_id: UUID


@event_type("annotation.rating_requested")
class RatingRequested(Payload):
    snippet_id: UUID
    dataset_id: int
    ratings_required: int = Field(ge=1, le=10)


@event_type("annotation.task_served")
class TaskServed(Payload):
    task_id: UUID
    kind: KindValue
    subject_id: UUID
    user_id: int
    expires_at: str  # ISO 8601; decided by the server when serving
    swapped: bool = False  # comparisons: the pair is shown second-first


@event_type("annotation.task_released")
class TaskReleased(Payload):
    task_id: UUID
    reason: Literal["skipped", "expired", "reassigned"]


@event_type("annotation.label_submitted")
class LabelSubmitted(Payload):
    task_id: UUID
    label: LabelValue
    seconds: float = Field(ge=0)  # measured by the server from serving to submission


@event_type("annotation.label_corrected")
class LabelCorrected(Payload):
    task_id: UUID
    label: LabelValue


@event_type("annotation.comparison_submitted")
class ComparisonSubmitted(Payload):
    task_id: UUID
    choice: Literal["first", "second", "same"]  # as shown to the labeller
    seconds: float = Field(ge=0)


@event_type("annotation.rating_submitted")
class RatingSubmitted(Payload):
    task_id: UUID
    rating: int = Field(ge=1, le=10)
    seconds: float = Field(ge=0)
