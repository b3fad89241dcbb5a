"""Attack commands: campaigns, the day's classifier, attack sessions, scoring and submission.

Pages and the admin call these and nothing else to change state. Whatever a contractor can
receive from them is blind: results and refusals never name a classifier.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from uuid_utils.compat import uuid7

from annotation import roles
from annotation import services as annotation_services
from annotation.errors import AnnotationError
from annotation.events import MAX_TEXT
from annotation.models import Dataset, Split
from attacks.assignment import classifier_for_day
from attacks.errors import AttackError, AttackRefused, CampaignIsClosed, ClassifierBusy, NotAllowed, SessionNotFound
from attacks.events import (
    AttackSubmitted,
    AttemptScored,
    CampaignClosed,
    CampaignOpened,
    DayAssigned,
    Experiment,
    SessionLeft,
    SessionStarted,
    TargetSwitched,
    ToolQueried,
    attacker_stream,
    campaign_stream,
    session_stream,
)
from attacks.models import AttackSession, Campaign, DayAssignment, Submission
from config.text import text_problem
from eventlog.errors import ConcurrencyConflict
from eventlog.projections import catch_up
from eventlog.store import NO_STREAM, NewEvent, append
from modelserve import selectors as modelserve_selectors
from modelserve.errors import ModelserveError
from modelserve.interface import SnippetText, Suggestion, WordSaliency, inference
from modelserve.types import MAX_SEED, InvalidInput
from modelserve.words import sentences

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.05
DEFAULT_IDLE_CAP_SECONDS = 600
MAX_IDLE_CAP_SECONDS = 86_400
SUGGESTIONS = 15


# -- campaigns (project managers) -----------------------------------------------------------





def _check_ready(version: str) -> None:
    try:
        modelserve_selectors.ready_classifier(version)
    except ModelserveError:
        raise AttackError(f"classifier {version!r} is not a ready classifier") from None


def open_campaign(
    *,
    name: str,
    kind: str,
    dataset: Dataset,
    target_version: str | None = None,
    experiment_classifiers: list[str] | None = None,
    seed: int = 0,
    split: str = Split.TRAIN,
    threshold: float = DEFAULT_THRESHOLD,
    idle_cap_seconds: int = DEFAULT_IDLE_CAP_SECONDS,
    time_zone: str | None = None,
) -> Campaign:
    """Open a campaign against one target classifier, or an experiment over several."""
    if kind not in Campaign.Kind.values:
        raise AttackError(f"kind must be one of {Campaign.Kind.values}")
    problem = text_problem(name.strip(), max_length=200) if name.strip() else "is empty"
    if problem:
        raise AttackError(f"the name {problem}")
    if not 1 <= idle_cap_seconds <= MAX_IDLE_CAP_SECONDS:
        raise AttackError(f"the idle cap is between 1 and {MAX_IDLE_CAP_SECONDS} seconds")
    if not 0 <= seed <= MAX_SEED:
        raise AttackError(f"the seed is a whole number from 0 to {MAX_SEED}")
    classifiers = sorted(set(experiment_classifiers or []))
    if bool(target_version) == bool(classifiers):
        raise AttackError("give either a target classifier or an experiment's classifiers, not both")
    if classifiers and len(classifiers) < 2:
        raise AttackError("an experiment compares at least two classifiers")
    if classifiers and kind == Campaign.Kind.PARAPHRASE:
        raise AttackError("paraphrase campaigns have one target classifier")
    for version in classifiers or [target_version]:
        _check_ready(version)
    if any(version in name for version in classifiers or [target_version]):
        raise AttackError("contractors see the campaign's name: it must not name a classifier")
    time_zone = time_zone or settings.TIME_ZONE
    try:
        if len(time_zone) > 64:  # the longest zone name is 32 characters
            raise ValueError
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a folder of zones
        raise AttackError(f"unknown time zone {time_zone[:64]!r}") from None
    campaign_id = uuid7()
    opened = CampaignOpened(
        campaign_id=campaign_id, name=name.strip(), kind=kind, dataset_id=dataset.pk, split=split,
        target_version=target_version, experiment=Experiment(classifiers=classifiers, seed=seed) if classifiers else None,
        threshold=threshold, idle_cap_seconds=idle_cap_seconds, time_zone=time_zone,
    )
    append([NewEvent(campaign_stream(campaign_id), opened)], expected={campaign_stream(campaign_id): NO_STREAM})
    return Campaign.objects.get(pk=campaign_id)


def switch_target(*, campaign: Campaign, version: str) -> None:
    """New work attacks `version`; attacks already submitted keep the classifier they beat."""
    if campaign.is_experiment:
        raise AttackError("an experiment's classifiers are fixed; open a new campaign instead")
    _check_ready(version)
    if version != campaign.target_version:
        append([NewEvent(campaign_stream(campaign.pk), TargetSwitched(version=version))])


def close_campaign(*, campaign: Campaign) -> None:
    if campaign.active:
        append([NewEvent(campaign_stream(campaign.pk), CampaignClosed())])


# -- the day's classifier ------------------------------------------------------------------


def working_day(campaign: Campaign, now: datetime) -> date:
    return now.astimezone(ZoneInfo(campaign.time_zone)).date()


def classifier_of(campaign: Campaign, user_id: int, day: date) -> str:
    """The classifier this contractor attacks on this day (server side only)."""
    if not campaign.is_experiment:
        return campaign.target_version
    assigned = DayAssignment.objects.filter(campaign=campaign, user_id=user_id, day=day).first()
    if assigned:
        return assigned.version
    version = classifier_for_day(campaign.experiment_classifiers, seed=campaign.experiment_seed, user_id=user_id,
                                 day=day)
    stream = attacker_stream(campaign.pk, user_id, day)
    event = DayAssigned(campaign_id=campaign.pk, user_id=user_id, day=day.isoformat(), version=version)
    try:
        append([NewEvent(stream, event)], expected={stream: NO_STREAM})
    except ConcurrencyConflict:  # another tab of the same contractor recorded it first
        catch_up("attacks.work")
        return DayAssignment.objects.get(campaign=campaign, user_id=user_id, day=day).version
    return version


# -- attack sessions (contractors) --------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    prompt: str
    completion: str
    score: float
    threshold: float
    words: list[WordSaliency] | None = None  # tool-assisted pages: saliency per word

    @property
    def below_threshold(self) -> bool:
        return self.score < self.threshold

    @property
    def sentences_in_completion(self) -> int:
        return len(sentences(self.completion))


def _check_attacker(user, campaign: Campaign) -> None:
    if not roles.can_label(user):
        raise NotAllowed("only contractors attack")
    if not campaign.active:
        raise CampaignIsClosed()
    if campaign.kind == Campaign.Kind.PARAPHRASE:
        raise NotAllowed("paraphrase campaigns run by themselves")


def start_session(*, user, campaign: Campaign) -> AttackSession:
    """A contractor opens the attack page: the start of timed work."""
    _check_attacker(user, campaign)
    now = timezone.now()
    day = working_day(campaign, now)
    session_id = uuid7()
    event = SessionStarted(session_id=session_id, campaign_id=campaign.pk, user_id=user.pk, day=day.isoformat(),
                           version=classifier_of(campaign, user.pk, day))
    append([NewEvent(session_stream(session_id), event)])
    return AttackSession.objects.select_related("campaign").get(pk=session_id)


def own_session(user, session_id: UUID) -> AttackSession:
    session = AttackSession.objects.select_related("campaign").filter(pk=session_id, user_id=user.pk).first()
    if session is None:
        raise SessionNotFound()
    _check_attacker(user, session.campaign)
    return session


def _activity(session: AttackSession) -> dict:
    """Who, when and against which classifier: the day is today's, so is its classifier."""
    campaign = session.campaign
    day = working_day(campaign, timezone.now())
    return {"session_id": session.pk, "campaign_id": campaign.pk, "user_id": session.user_id,
            "day": day.isoformat(), "version": classifier_of(campaign, session.user_id, day)}


def _record(session: AttackSession, *payloads) -> None:
    append([NewEvent(session_stream(session.pk), p) for p in payloads])


def _snippet(prompt: str, completion: str) -> SnippetText:
    prompt, completion = prompt.strip(), completion.strip()
    if not prompt or not completion:
        raise AttackError("write both a prompt and a completion")
    for name, text in (("prompt", prompt), ("completion", completion)):
        if problem := text_problem(text, max_length=MAX_TEXT):
            raise AttackError(f"the {name} {problem}")
    return SnippetText(prompt, completion)


def _ask(call):
    """Run an inference call; whatever goes wrong, the contractor learns nothing about the model."""
    try:
        return call()
    except InvalidInput as exc:
        raise AttackError(str(exc)) from None
    except ModelserveError:
        logger.exception("inference failed during an attack")
        raise ClassifierBusy() from None


def score_attempt(*, user, session_id: UUID, prompt: str, completion: str) -> Scored:
    """Score the text as it stands (one query per pause in typing); each new text is an event."""
    session = own_session(user, session_id)
    snippet = _snippet(prompt, completion)
    activity = _activity(session)
    version, campaign = activity["version"], session.campaign
    tools = campaign.kind == Campaign.Kind.TOOL_ASSISTED
    unchanged = (session.last_prompt, session.last_completion, session.last_version) == (
        snippet.prompt, snippet.completion, version)
    score = session.last_score if unchanged else _ask(lambda: inference().score(version, [snippet])[0])
    words = _ask(lambda: inference().saliency(version, snippet)) if tools else None
    if not unchanged:
        events = [AttemptScored(**activity, prompt=snippet.prompt, completion=snippet.completion, score=score)]
        if tools:
            events.append(ToolQueried(**activity, tool="saliency"))
        _record(session, *events)
    return Scored(snippet.prompt, snippet.completion, score, campaign.threshold, words)


def suggest(*, user, session_id: UUID, prompt: str, completion: str, tool: str, index: int | None = None
            ) -> list[Suggestion]:
    """Substitutions for a word, insertions right after a word, or the best edit for every word
    (words are numbered as `score_attempt`'s saliency lists them)."""
    session = own_session(user, session_id)
    if session.campaign.kind != Campaign.Kind.TOOL_ASSISTED:
        raise NotAllowed("the rewrite tools belong to tool-assisted campaigns")
    if tool not in ("substitutions", "insertions", "edit_map"):
        raise AttackError("tool must be substitutions, insertions or edit_map")
    if tool != "edit_map" and (index is None or index < 0):
        raise AttackError("choose a word, or the + after a word")
    snippet = _snippet(prompt, completion)
    activity = _activity(session)
    service, version = inference(), activity["version"]
    if tool == "substitutions":
        found = _ask(lambda: service.substitutions(version, snippet, index, limit=SUGGESTIONS))
    elif tool == "insertions":
        found = _ask(lambda: service.insertions(version, snippet, index, limit=SUGGESTIONS))
    else:
        found = sorted(_ask(lambda: service.edit_map(version, snippet)), key=lambda s: s.score)
        index = None
    _record(session, ToolQueried(**activity, tool=tool, index=index))
    return found


def submit_attack(*, user, session_id: UUID, prompt: str, completion: str, asserted_injurious: bool) -> Submission:
    """Re-score on the server and, only below the threshold, send the snippet to labelling."""
    session = own_session(user, session_id)
    if not asserted_injurious:
        raise AttackRefused("tick that the snippet is injurious to submit it")
    snippet = _snippet(prompt, completion)
    activity = _activity(session)
    campaign = session.campaign
    score = _ask(lambda: inference().score(activity["version"], [snippet])[0])
    if score >= campaign.threshold:
        raise AttackRefused(
            f"not submitted: the classifier scores this text {score:.4f}, at or above the threshold "
            f"{campaign.threshold:g}, so it would be caught. Keep editing."
        )
    dataset = Dataset.objects.get(pk=campaign.dataset_id)
    row = annotation_services.SnippetInput(snippet.prompt, snippet.completion, campaign.source, campaign.split)
    with transaction.atomic():
        try:
            snippet_id = annotation_services.add_snippet(dataset=dataset, snippet=row, author_id=user.pk)
        except AnnotationError as exc:
            raise AttackRefused(f"not submitted: {exc}") from None
        _record(session, AttackSubmitted(**activity, snippet_id=snippet_id, score=score))
    return Submission.objects.get(pk=snippet_id)


def leave_session(*, user, session_id: UUID) -> None:
    """The page was closed or left: time stops counting until the next session starts."""
    session = own_session(user, session_id)
    if session.left_at is None:
        _record(session, SessionLeft(**_activity(session)))
