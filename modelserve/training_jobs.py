"""Training runs: start (manifest + events + a django-q2 job), the job itself, cancel, and
failing runs whose worker died (no heartbeat)."""

import json
import logging
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django_q.tasks import async_task
from uuid_utils.compat import uuid7

from annotation.models import Snippet
from config.text import text_problem
from eventlog import context
from eventlog.models import Event
from eventlog.retry import retry_on_conflict
from eventlog.store import NO_STREAM, NewEvent, append
from modelserve.errors import ModelserveError
from modelserve.events import (
    ClassifierFailed,
    ClassifierReady,
    ClassifierRegistered,
    TrainingCancelRequested,
    TrainingFailed,
    TrainingFinished,
    TrainingProgressed,
    TrainingStarted,
    classifier_stream,
    training_stream,
)
from modelserve.manifest import build_manifest
from modelserve.models import ClassifierVersion, TrainingRun
from modelserve.registry import check_version_name
from modelserve.types import MAX_SEED

logger = logging.getLogger(__name__)
DEFAULTS = {"epochs": 1, "learning_rate": 2e-5, "batch_size": 16, "seed": 0}



def start_training(
    *, version: str, base_model: str, dataset_ids: list[int], splits: list[str] | None = None,
    equal_size: bool = False, hyperparameters: dict | None = None, enqueue: bool = True,
) -> TrainingRun:
    """Build the manifest, record the run and a classifier in training, queue the job."""
    check_version_name(version)
    base_model = str(base_model)
    problem = text_problem(base_model, max_length=500) if base_model.strip() else "is empty"
    if problem:
        raise ModelserveError(f"the base model {problem}")
    if ClassifierVersion.objects.filter(version=version).exists():
        raise ModelserveError(f"classifier {version!r} already exists")
    hyper = {**DEFAULTS, **(hyperparameters or {})}
    if not 0 <= hyper["seed"] <= MAX_SEED:
        raise ModelserveError(f"the seed is a whole number from 0 to {MAX_SEED}")
    splits = splits or ["train"]
    manifest = build_manifest(dataset_ids=dataset_ids, splits=splits, equal_size=equal_size, seed=hyper["seed"])
    run_id = str(uuid7())
    checkpoint_dir = str(Path(settings.MODELSERVE_CHECKPOINT_ROOT) / version)
    started = TrainingStarted(
        run_id=run_id, version=version, base_model=base_model, dataset_ids=dataset_ids, splits=splits,
        equal_size=equal_size, hyperparameters=hyper, manifest_hash=manifest.digest,
        manifest_size=len(manifest.entries),
    )
    registered = ClassifierRegistered(
        version=version, base_model=base_model, checkpoint_dir=checkpoint_dir, status="training",
        training_run=run_id, manifest_hash=manifest.digest, manifest_size=len(manifest.entries),
        hyperparameters=hyper,
    )
    Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    (Path(checkpoint_dir) / "manifest.jsonl").write_text("\n".join(manifest.lines()) + "\n")
    with transaction.atomic():
        append(
            [NewEvent(training_stream(run_id), started), NewEvent(classifier_stream(version), registered)],
            expected={classifier_stream(version): NO_STREAM},
        )
        # Enqueued in the same transaction (ORM broker): no run without its job, or job without run.
        # Without `enqueue` the caller runs `run_training` itself (the demo setup, in the foreground).
        if enqueue:
            async_task("modelserve.training_jobs.run_training", run_id, task_name=f"train {version}")
    return TrainingRun.objects.get(run_id=run_id)


def cancel_training(*, run_id: str) -> None:
    run = TrainingRun.objects.filter(run_id=run_id, status=TrainingRun.Status.RUNNING).first()
    if run and not run.cancel_requested:
        append([NewEvent(training_stream(run_id), TrainingCancelRequested())])


def _fail(run: TrainingRun, reason: str) -> bool:
    return _end(run, TrainingFailed(reason=reason), ClassifierFailed(reason=reason))


_ENDINGS = ("modelserve.training_finished", "modelserve.training_failed")


def _end(run: TrainingRun, run_event, classifier_event) -> bool:
    """Append a run's ending and its classifier's, unless the run has ended already.

    Appended at the run stream's version read together with "not ended" (one statement, from
    the log itself, not from a read model that may lag): a stale-run sweep and a worker that
    finishes (a frozen worker coming back, a job handed out twice) cannot both end one run, so
    the registry never holds a ready classifier of a failed run. Returns whether it ended it.
    """
    stream = training_stream(run.run_id)

    def attempt() -> bool:  # a heartbeat, a cancel request or another ending may come first: look again
        state = Event.objects.filter(stream_type=stream.type, stream_id=stream.id).aggregate(
            head=Max("version"), ended=Count("position", filter=Q(type__in=_ENDINGS)))
        if state["ended"]:
            return False
        append([NewEvent(stream, run_event), NewEvent(classifier_stream(run.version), classifier_event)],
               expected={stream: state["head"] or NO_STREAM})
        return True

    return retry_on_conflict(
        attempt, tries=10, too_busy=lambda: ModelserveError(f"training run {run.run_id} is too busy to end; try again"))


def fail_stale_runs(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Runs whose worker stopped sending heartbeats (killed, out of memory) are failed."""
    stale = TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, heartbeat_at__lt=timezone.now() - older_than)
    return sum(_fail(run, "the training worker stopped (no heartbeat)") for run in stale)


def run_training(run_id: str) -> str:
    """The django-q2 job. Any error leaves a failed run and no ready classifier. A run that is
    no longer running (finished, failed, or run already by `start_training(enqueue=False)`'s
    caller) is left as it is: a job handed out twice never trains twice."""
    run = TrainingRun.objects.get(run_id=run_id)
    if run.status != TrainingRun.Status.RUNNING:
        return run.status
    from modelserve.training import Cancelled  # PyTorch: only in the worker that trains
    with context.bind(actor="system:training", causation_id=run_id):
        try:
            metrics = _train(run)
        except Cancelled as exc:
            _fail(run, f"cancelled: {exc}")
            return "cancelled"
        except Exception as exc:  # noqa: BLE001 - recorded, then re-raised for the job log
            logger.exception("training run %s failed", run_id)
            _fail(run, f"{type(exc).__name__}: {exc}")
            raise
    return json.dumps(metrics)


def _train(run: TrainingRun) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from modelserve.training import Example, train, upsample
    checkpoint_dir = Path(ClassifierVersion.objects.get(version=run.version).checkpoint_dir)
    hyper = run.spec["hyperparameters"]
    lines = (checkpoint_dir / "manifest.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    texts = dict((str(pk), (p, c)) for pk, p, c in Snippet.objects.filter(
        pk__in=[e[0] for e in entries]).values_list("id", "prompt", "completion"))
    examples = [Example(*texts[snippet_id], bool(label)) for snippet_id, label, _ in entries]
    examples = upsample(examples, seed=hyper["seed"])

    tokenizer = AutoTokenizer.from_pretrained(run.base_model, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(run.base_model, num_labels=1, local_files_only=True)
    last_beat = [0.0]

    heartbeat = settings.MODELSERVE_HEARTBEAT_SECONDS

    def on_progress(progress):
        now = time.monotonic()
        if now - last_beat[0] >= heartbeat or progress.step == progress.steps:
            last_beat[0] = now
            eta = progress.eta_seconds
            append([NewEvent(training_stream(run.run_id), TrainingProgressed(
                step=progress.step, steps=progress.steps, loss=progress.loss,
                eta_seconds=None if eta != eta else eta,
            ))])

    def should_stop():  # cancelled, or ended meanwhile (failed as stale while this worker was frozen)
        return TrainingRun.objects.filter(run_id=run.run_id).filter(
            Q(cancel_requested=True) | ~Q(status=TrainingRun.Status.RUNNING)).exists()

    losses = train(
        model, tokenizer, examples, epochs=hyper["epochs"], learning_rate=hyper["learning_rate"],
        batch_size=hyper["batch_size"], seed=hyper["seed"], on_progress=on_progress, should_stop=should_stop,
    )
    metrics = {"final_loss": losses[-1], "steps": len(losses), "examples": len(examples)}
    metrics.update(_validation_metrics(run, model, tokenizer))
    model.save_pretrained(checkpoint_dir)
    tokenizer.save_pretrained(checkpoint_dir)
    if not _end(run, TrainingFinished(metrics=metrics, checkpoint_dir=str(checkpoint_dir)),
                ClassifierReady(metrics=metrics)):
        logger.warning("training run %s ended while it trained (failed as stale?): its checkpoint is not registered",
                       run.run_id)
    return metrics


def _validation_metrics(run: TrainingRun, model, tokenizer) -> dict:
    import torch

    from modelserve.inference import Classifier
    from modelserve.types import SnippetText
    """Accuracy and the rates at 0.5 on the validation split of the run's datasets, if any."""
    try:
        held_out = build_manifest(dataset_ids=run.spec["dataset_ids"], splits=["validation"])
    except ModelserveError:
        return {}
    texts = dict((str(pk), (p, c)) for pk, p, c in Snippet.objects.filter(
        pk__in=[e.snippet_id for e in held_out.entries]).values_list("id", "prompt", "completion"))
    classifier = Classifier(model, tokenizer, version=f"{run.version}-validation", device=torch.device("cpu"))
    scores = classifier.score([SnippetText(*texts[e.snippet_id]) for e in held_out.entries])
    truth = [e.injurious for e in held_out.entries]
    predicted = [s >= 0.5 for s in scores]
    positives = sum(truth)
    return {
        "validation_size": len(truth),
        "validation_accuracy": sum(p == t for p, t in zip(predicted, truth)) / len(truth),
        "validation_fnr": (sum(t and not p for p, t in zip(predicted, truth)) / positives) if positives else None,
    }
