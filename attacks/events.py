"""Event types of the attacks app.

Streams: `campaign/<id>` (a campaign and its target switches), `attacker/<campaign>:<user>:<day>`
(one contractor's classifier for one day of an experiment), `attack_session/<id>` (a page
load and everything done on it), `paraphrase/<job id>` (one snippet's automatic paraphrases).

Events about contractors' work name the classifier version; they are read by the server
and project managers only, never rendered to a contractor.
"""

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from annotation.events import MAX_TEXT, SplitValue
from eventlog.registry import Payload, event_type
from eventlog.store import Stream
from modelserve.events import VERSION_PATTERN

# -- streams: one place that names each ---------------------------------------------------


def campaign_stream(campaign_id) -> Stream:
    return Stream("campaign", str(campaign_id))


def attacker_stream(campaign_id, user_id: int, day) -> Stream:
    """One contractor's day in a campaign (their classifier for that day is drawn on it)."""
    return Stream("attacker", f"{campaign_id}:{user_id}:{day.isoformat()}")


def session_stream(session_id) -> Stream:
    return Stream("attack_session", str(session_id))


def paraphrase_stream(job_id) -> Stream:
    return Stream("paraphrase", str(job_id))


CampaignKind = Literal["manual", "tool_assisted", "paraphrase"]
ToolName = Literal["saliency", "substitutions", "insertions", "edit_map"]
VersionName = Annotated[str, Field(pattern=VERSION_PATTERN)]


class Experiment(Payload):
    """Classifiers among which each contractor is assigned one at random per working day."""

    classifiers: list[VersionName] = Field(min_length=2)
    seed: int


@event_type("attacks.campaign_opened")
class CampaignOpened(Payload):
    campaign_id: UUID
    name: str = Field(min_length=1, max_length=200)
    kind: CampaignKind
    dataset_id: int  # where submitted attacks (and accepted paraphrases) are labelled
    split: SplitValue
    target_version: VersionName | None = None  # None when an experiment assigns classifiers
    experiment: Experiment | None = None
    threshold: float = Field(gt=0, lt=1)
    idle_cap_seconds: int = Field(ge=1)
    time_zone: str  # working days are dates in this zone


@event_type("attacks.target_switched")
class TargetSwitched(Payload):
    version: VersionName


@event_type("attacks.campaign_closed")
class CampaignClosed(Payload):
    pass


@event_type("attacks.day_assigned")
class DayAssigned(Payload):
    campaign_id: UUID
    user_id: int
    day: str  # ISO date in the campaign's time zone
    version: VersionName


class Activity(Payload):
    """What every event of an attack session carries: enough to attribute time to a classifier."""

    session_id: UUID
    campaign_id: UUID
    user_id: int
    day: str
    version: VersionName


@event_type("attacks.session_started")
class SessionStarted(Activity):
    pass


@event_type("attacks.attempt_scored")
class AttemptScored(Activity):
    prompt: str = Field(max_length=MAX_TEXT)
    completion: str = Field(max_length=MAX_TEXT)
    score: float = Field(ge=0, le=1)


def _token_index_kept_apart(data: dict) -> dict:
    """Version 1 counted tokens; version 2 counts the author's words, which a token position
    of then cannot be turned into without that day's tokenizer: it is kept as it was."""
    return {**{k: v for k, v in data.items() if k != "index"}, "token_index": data.get("index")}


@event_type("attacks.tool_queried", version=2, upcasters={1: _token_index_kept_apart})
class ToolQueried(Activity):
    tool: ToolName
    index: int | None = None  # the word replaced (substitutions) or followed (insertions)
    token_index: int | None = None  # a version-1 event's token position


@event_type("attacks.attack_submitted")
class AttackSubmitted(Activity):
    snippet_id: UUID
    score: float = Field(ge=0, le=1)  # computed by the server at submission


@event_type("attacks.session_left")
class SessionLeft(Activity):
    pass


@event_type("attacks.paraphrasing_requested")
class ParaphrasingRequested(Payload):
    job_id: UUID
    campaign_id: UUID
    source_snippet_id: UUID
    version: VersionName  # the campaign's target when the job was requested
    threshold: float = Field(gt=0, lt=1)
    few_shot_prompt: str = Field(min_length=1, max_length=MAX_TEXT)
    goal: int = Field(ge=5, le=10)  # accepted paraphrases wanted; never more than MAX_ACCEPTED
    budget: int = Field(ge=1, le=1000)  # candidates generated at most


@event_type("attacks.paraphrase_generated")
class ParaphraseGenerated(Payload):
    attempt: int = Field(ge=1)
    completion: str = Field(max_length=MAX_TEXT)
    score: float | None = None  # None when it was never scored (empty, a repeat)
    outcome: Literal["accepted", "rejected", "repeat", "unusable", "surplus"]
    snippet_id: UUID | None = None  # accepted: the snippet added for labelling


@event_type("attacks.paraphrasing_finished")
class ParaphrasingFinished(Payload):
    reason: Literal["goal_reached", "budget_spent"]


@event_type("attacks.paraphrasing_failed")
class ParaphrasingFailed(Payload):
    reason: str


@event_type("attacks.paraphrasing_resumed")
class ParaphrasingResumed(Payload):
    pass
