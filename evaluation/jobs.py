"""Reports and threshold selections as background jobs (django-q2), off the request path.

A request for a computation (`request`) starts one job per (kind, parameters, log position), or
reuses the one already asked for at that position; the job (`run`) scores what is not scored yet
(`scores_recorded` events, in batches), computes, and keeps the result in a `Computation` row.
Pages and REST clients read the newest result for their parameters (`latest`), so opening or
downloading a report appends nothing.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from uuid import UUID

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task
from uuid_utils.compat import uuid7

from evaluation import report, thresholds
from evaluation.errors import EvaluationError
from evaluation.models import Computation
from eventlog.reading import head_position

logger = logging.getLogger(__name__)


def params_key(kind: str, params: dict) -> str:
    return hashlib.sha256(json.dumps([kind, params], sort_keys=True).encode()).hexdigest()


def request(kind: str, params: dict) -> Computation:
    """Start the computation at the log's current position, or reuse the one asked for there
    (a failed one is tried again, and so is one that has waited for over a minute: its job may
    have been lost with its worker; a second run of a job that was only slow does no harm)."""
    if kind not in Computation.Kind.values:
        raise EvaluationError(f"unknown computation {kind!r}")
    with transaction.atomic():
        row, created = Computation.objects.get_or_create(
            params_key=params_key(kind, params), log_position=head_position(),
            defaults={"id": uuid7(), "kind": kind, "params": params},
        )
        again = not created and (row.status == Computation.Status.FAILED or row.stalled)
        if again:
            Computation.objects.filter(pk=row.pk).update(status=Computation.Status.RUNNING, error="", stage="",
                                                         requested_at=timezone.now())
        if created or again:
            # Enqueued in the same transaction (ORM broker): no job without its row, or the reverse.
            async_task("evaluation.jobs.run", str(row.pk), task_name=f"evaluation {kind} {row.pk}")
    return Computation.objects.get(pk=row.pk)


def latest(kind: str, params: dict, *, finished: bool = False) -> Computation | None:
    """The newest computation of these parameters (the newest finished one if `finished`)."""
    rows = Computation.objects.filter(params_key=params_key(kind, params))
    if finished:
        rows = rows.filter(status=Computation.Status.FINISHED)
    return rows.first()


def _stage(computation_id: UUID) -> Callable[[str], None]:
    def progress(stage: str) -> None:
        Computation.objects.filter(pk=computation_id).update(stage=stage[:200])
    return progress


def _report(row: Computation) -> dict:
    return report.build(report.ReportSpec(**row.params), progress=_stage(row.pk))


def _thresholds(row: Computation) -> dict:
    p = row.params
    _stage(row.pk)("scoring the comparison set and sweeping the candidate thresholds")
    selection = thresholds.select_threshold(p["classifier"], p["comparison_dataset"], lower_bound=p["lower_bound"],
                                            level=p["level"], allow_extrapolation=p.get("allow_extrapolation", False))
    return thresholds.as_result(selection)


COMPUTE = {Computation.Kind.REPORT: _report, Computation.Kind.THRESHOLDS: _thresholds}


def run(computation_id: str) -> None:
    row = Computation.objects.get(pk=computation_id)
    if row.status == Computation.Status.FINISHED:
        return
    try:
        result = COMPUTE[row.kind](row)
    except EvaluationError as exc:
        Computation.objects.filter(pk=row.pk).update(status=Computation.Status.FAILED, error=str(exc),
                                                     finished_at=timezone.now())
        return
    except Exception:
        Computation.objects.filter(pk=row.pk).update(
            status=Computation.Status.FAILED, finished_at=timezone.now(),
            error="the computation failed unexpectedly; the job cluster's log has the details")
        logger.exception("evaluation computation %s failed", row.pk)
        raise
    Computation.objects.filter(pk=row.pk).update(status=Computation.Status.FINISHED, result=result, stage="",
                                                 finished_at=timezone.now(), settled_position=head_position())
