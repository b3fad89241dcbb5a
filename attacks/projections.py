"""The attack read models: one inline projection, current when each append returns."""

from datetime import date

from attacks.models import (
    ActivityClock,
    AttackSession,
    Campaign,
    DayAssignment,
    Effort,
    ParaphraseCandidate,
    ParaphraseJob,
    Submission,
    TargetHistory,
)
from eventlog.projections import Projection, register

ACTIVITY = {
    "attacks.session_started",
    "attacks.attempt_scored",
    "attacks.tool_queried",
    "attacks.attack_submitted",
    "attacks.session_left",
}


def counted_gap(previous_at, previous_left: bool, at, cap_seconds: float, *, starts_session: bool) -> float:
    """Seconds of work between two activities. Time runs from a page load: nothing before a
    session starts or after the page was left; an idle gap counts at most `cap_seconds`."""
    if previous_at is None or previous_left or starts_session:
        return 0.0
    return max(0.0, min((at - previous_at).total_seconds(), cap_seconds))


@register
class AttacksProjection(Projection):
    name = "attacks.work"
    event_types = frozenset(
        ACTIVITY
        | {
            "attacks.campaign_opened",
            "attacks.target_switched",
            "attacks.campaign_closed",
            "attacks.day_assigned",
            "attacks.paraphrasing_requested",
            "attacks.paraphrase_generated",
            "attacks.paraphrasing_finished",
            "attacks.paraphrasing_failed",
            "attacks.paraphrasing_resumed",
        }
    )
    inline = True

    def handle(self, event):
        p = event.payload
        if event.type in ACTIVITY:
            self._activity(event, p)
        getattr(self, "on_" + event.type.removeprefix("attacks."), lambda e, p: None)(event, p)

    def reset(self):
        for model in (ParaphraseCandidate, ParaphraseJob, Submission, ActivityClock, Effort, AttackSession,
                      DayAssignment, TargetHistory, Campaign):
            model.objects.all().delete()

    # -- campaigns ---------------------------------------------------------------------

    def on_campaign_opened(self, event, p):
        experiment = p["experiment"] or {}
        campaign = Campaign.objects.create(
            id=p["campaign_id"], name=p["name"], kind=p["kind"], dataset_id=p["dataset_id"], split=p["split"],
            target_version=p["target_version"] or "", experiment_classifiers=experiment.get("classifiers", []),
            experiment_seed=experiment.get("seed"), threshold=p["threshold"],
            idle_cap_seconds=p["idle_cap_seconds"], time_zone=p["time_zone"], opened_at=event.recorded_at,
        )
        if p["target_version"]:
            TargetHistory.objects.create(campaign=campaign, version=p["target_version"], since=event.recorded_at)

    def on_target_switched(self, event, p):
        Campaign.objects.filter(pk=event.stream.id).update(target_version=p["version"])
        TargetHistory.objects.create(campaign_id=event.stream.id, version=p["version"], since=event.recorded_at)

    def on_campaign_closed(self, event, p):
        Campaign.objects.filter(pk=event.stream.id).update(active=False)

    def on_day_assigned(self, event, p):
        DayAssignment.objects.create(
            campaign_id=p["campaign_id"], user_id=p["user_id"], day=date.fromisoformat(p["day"]), version=p["version"]
        )

    # -- attack sessions ---------------------------------------------------------------

    def _activity(self, event, p):
        """Attribute the gap since the contractor's previous activity to this one's classifier."""
        at = event.recorded_at
        cap = Campaign.objects.filter(pk=p["campaign_id"]).values_list("idle_cap_seconds", flat=True).get()
        clock = ActivityClock.objects.filter(campaign_id=p["campaign_id"], user_id=p["user_id"]).first()
        gap = counted_gap(clock.last_at if clock else None, clock.left if clock else False, at, cap,
                          starts_session=event.type == "attacks.session_started")
        effort, _ = Effort.objects.get_or_create(
            campaign_id=p["campaign_id"], user_id=p["user_id"], day=date.fromisoformat(p["day"]), version=p["version"]
        )
        effort.seconds += gap
        effort.sessions += event.type == "attacks.session_started"
        effort.attempts += event.type == "attacks.attempt_scored"
        effort.submissions += event.type == "attacks.attack_submitted"
        effort.save()
        left = event.type == "attacks.session_left"
        if clock is None:
            ActivityClock.objects.create(campaign_id=p["campaign_id"], user_id=p["user_id"], last_at=at, left=left)
        else:
            clock.last_at, clock.left = max(clock.last_at, at), left
            clock.save(update_fields=["last_at", "left"])

    def on_session_started(self, event, p):
        AttackSession.objects.create(
            id=p["session_id"], campaign_id=p["campaign_id"], user_id=p["user_id"], started_at=event.recorded_at
        )

    def on_attempt_scored(self, event, p):
        AttackSession.objects.filter(pk=p["session_id"]).update(
            last_prompt=p["prompt"], last_completion=p["completion"], last_score=p["score"], last_version=p["version"]
        )

    def on_attack_submitted(self, event, p):
        Submission.objects.create(
            snippet_id=p["snippet_id"], campaign_id=p["campaign_id"], session_id=p["session_id"],
            user_id=p["user_id"], day=date.fromisoformat(p["day"]), version=p["version"], score=p["score"],
            submitted_at=event.recorded_at,
        )

    def on_session_left(self, event, p):
        AttackSession.objects.filter(pk=p["session_id"]).update(left_at=event.recorded_at)

    # -- paraphrases -------------------------------------------------------------------

    def on_paraphrasing_requested(self, event, p):
        ParaphraseJob.objects.create(
            id=p["job_id"], campaign_id=p["campaign_id"], source_snippet_id=p["source_snippet_id"],
            version=p["version"], threshold=p["threshold"], few_shot_prompt=p["few_shot_prompt"], goal=p["goal"],
            budget=p["budget"], stream_version=event.version, requested_at=event.recorded_at,
            updated_at=event.recorded_at,
        )

    def _job(self, event) -> ParaphraseJob:
        job = ParaphraseJob.objects.get(pk=event.stream.id)
        job.stream_version, job.updated_at = event.version, event.recorded_at
        return job

    def on_paraphrase_generated(self, event, p):
        job = self._job(event)
        ParaphraseCandidate.objects.create(
            job=job, attempt=p["attempt"], completion=p["completion"], score=p["score"], outcome=p["outcome"],
            snippet_id=p["snippet_id"],
        )
        job.attempts = max(job.attempts, p["attempt"])
        job.accepted += p["outcome"] == "accepted"
        job.save()

    def on_paraphrasing_finished(self, event, p):
        job = self._job(event)
        job.status, job.finish_reason = ParaphraseJob.Status.FINISHED, p["reason"]
        job.save()

    def on_paraphrasing_failed(self, event, p):
        job = self._job(event)
        job.status, job.failure = ParaphraseJob.Status.FAILED, p["reason"]
        job.save()

    def on_paraphrasing_resumed(self, event, p):
        job = self._job(event)
        job.status, job.failure = ParaphraseJob.Status.RUNNING, ""
        job.save()
