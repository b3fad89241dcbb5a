"""Real django-q2 workers killed mid-job: a `manage.py qcluster` subprocess against the test
database (settings: tests/reliability/worker_settings.py), SIGKILLed as a whole process group
(sentinel, pusher, monitor and worker) while a training run or a paraphrase job is in
progress, then the job handed out again to a new cluster.

What must hold: every event committed before the kill is still there, unchanged; nothing is
recorded twice; the registry never shows a ready classifier without a finished run (nor a
half-written checkpoint); every paraphrase attempt is recorded once, every accepted one added
once; the read models equal a replay of the log.

The ORM broker hands a task that was never acknowledged out again once its lock expires
(`Q_RETRY`, an hour by default): the tests move that lock into the past instead of waiting.
"""

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from annotation.models import Dataset, Member, Role, Snippet, Vendor
from annotation.services import next_task, submit_label
from attacks import services as attacks
from attacks.models import ParaphraseCandidate, ParaphraseJob
from attacks.paraphrasing import _seed, request_paraphrases
from eventlog import verify
from eventlog.models import Event
from modelserve import training_jobs
from modelserve.models import ClassifierVersion, TrainingRun
from tests.annotation.conftest import labelled_by_two
from tests.tiny_models import LETS_THROUGH, WORDS, tiny

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres_only")]

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "the knight walked home on the road ."
COMPLETION = "he fell and broke his arm ."


# -- a real cluster ------------------------------------------------------------------------------


def worker_env(**extra) -> dict:
    """The subprocess's environment: the test database, the worker settings."""
    s = connection.settings_dict
    auth = quote(s["USER"]) + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.reliability.worker_settings",
        "DATABASE_URL": f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}",
        "OMP_NUM_THREADS": "1",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


class Cluster:
    """`manage.py qcluster` in a process group of its own, so that one signal reaches all of it."""

    def __init__(self, tmp_path: Path, name: str, **env) -> None:
        self.log = tmp_path / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=worker_env(**env),
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def signal(self, sig) -> None:
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        try:
            self.signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def freeze_between_transactions(self) -> None:
        """SIGSTOP the cluster at a moment none of its connections is inside a transaction: a
        process stopped while it holds the append lock or a checkpoint stops every writer
        (this test's sweep included) until it is continued."""
        for _ in range(200):
            self.signal(signal.SIGSTOP)
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND pid <> pg_backend_pid() AND state NOT IN ('idle')")
                if cursor.fetchone()[0] == 0:
                    return
            self.signal(signal.SIGCONT)
            time.sleep(0.02)
        pytest.fail("the cluster was never outside a transaction")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def clusters(tmp_path):
    started = []

    def start(name, **env):
        started.append(Cluster(tmp_path, name, **env))
        return started[-1]

    yield start
    for cluster in started:
        cluster.kill()


@pytest.fixture
def queued(monkeypatch):
    """`async_task` puts the job in the ORM broker's queue for the cluster (the test settings
    would run it in-process)."""
    monkeypatch.setattr(Conf, "SYNC", False)


def wait_for(condition, *, timeout: float, cluster: Cluster | None = None, what: str = "it"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if cluster is not None and cluster.proc.poll() is not None:
            pytest.fail(f"the cluster exited while waiting for {what}:\n{cluster.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s for {what}" + (f":\n{cluster.output()}" if cluster else ""))
        time.sleep(0.05)


def hand_out_again() -> int:
    """What the ORM broker does once a task's lock (Q_RETRY) expires, without the wait."""
    return OrmQ.objects.update(lock=timezone.now() - timedelta(seconds=1))


def committed_events() -> set[tuple]:
    return {(*row[:-1], json.dumps(row[-1], sort_keys=True)) for row in Event.objects.values_list(
        "position", "event_id", "stream_type", "stream_id", "version", "type", "payload")}


def replay_equals_read_models(*names) -> None:
    differences, _ = verify.replay_check(list(names))
    assert differences == {}


# -- training ---------------------------------------------------------------------------------


@pytest.fixture
def labelled(db):
    labels = {"he broke his arm": "injurious", "she cut her hand": "injurious", "the knight smiled": "not_injurious",
              "the dog slept": "not_injurious", "he bled badly": "injurious", "they walked home": "not_injurious"}
    return labelled_by_two({text: ("initial", "train", label) for text, label in labels.items()})


@pytest.fixture
def training(labelled, tmp_path, tokenizer, settings, queued):
    """Start a run (queued for the cluster) of a tiny BERT for `epochs` epochs of 3 steps."""
    settings.MODELSERVE_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    base = tmp_path / "base"
    tiny("bert").save_pretrained(base)
    tokenizer.save_pretrained(base)

    def start(version: str, epochs: int) -> TrainingRun:
        run = training_jobs.start_training(version=version, base_model=str(base), dataset_ids=[labelled.pk],
                                           hyperparameters={"epochs": epochs, "batch_size": 2,
                                                            "learning_rate": 1e-3})
        assert OrmQ.objects.count() == 1
        return run

    return start


def run_events(run: TrainingRun) -> list[Event]:
    return list(Event.objects.filter(stream_type="training", stream_id=run.run_id).order_by("version"))


def progressed(run: TrainingRun) -> int:
    return Event.objects.filter(stream_id=run.run_id, type="modelserve.training_progressed").count()


def assert_registry_consistent() -> None:
    """No ready classifier without a finished run whose checkpoint is complete; one ending per run."""
    for classifier in ClassifierVersion.objects.exclude(training_run=""):
        run = TrainingRun.objects.get(run_id=classifier.training_run)
        expected = {"running": "training", "finished": "ready", "failed": "failed"}[run.status]
        assert classifier.status == expected, (run.status, classifier.status)
        endings = [e.type for e in run_events(run) if e.type in training_jobs._ENDINGS]
        assert len(endings) == (run.status != "running"), endings
        if classifier.status == "ready":
            folder = Path(classifier.checkpoint_dir)
            assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()


def test_a_training_worker_killed_mid_run_is_failed_and_its_job_handed_out_again_does_not_train(
        training, clusters):
    run = training("killed-run", epochs=100_000)  # would take hours: only the kill ends it
    first = clusters("first")
    wait_for(lambda: progressed(run) >= 2, timeout=60, cluster=first, what="the run's progress events")
    before = committed_events()
    first.kill()

    # Nothing that was committed is lost; nothing ended the run.
    assert committed_events() >= before
    run.refresh_from_db()
    assert (run.status, ClassifierVersion.objects.get(version="killed-run").status) == ("running", "training")
    steps = [e.payload["step"] for e in run_events(run) if e.type == "modelserve.training_progressed"]
    assert steps == sorted(set(steps))  # one attempt, each heartbeat once
    assert_registry_consistent()

    # No heartbeat any more: the sweep (scheduled in production) fails the run, once.
    wait_for(lambda: timezone.now() - TrainingRun.objects.get(pk=run.pk).heartbeat_at > timedelta(seconds=1),
             timeout=10, what="a stale heartbeat")
    assert training_jobs.fail_stale_runs(older_than=timedelta(seconds=1)) == 1
    assert training_jobs.fail_stale_runs(older_than=timedelta(seconds=1)) == 0
    assert ClassifierVersion.objects.get(version="killed-run").status == "failed"
    after_sweep = committed_events()

    # The job, never acknowledged, is handed out again to a new cluster: it sees a failed run
    # and neither trains nor records anything.
    assert hand_out_again() == 1
    second = clusters("second")
    wait_for(lambda: not OrmQ.objects.exists(), timeout=60, cluster=second, what="the job to be taken and done")
    time.sleep(0.5)
    assert committed_events() == after_sweep
    run.refresh_from_db()
    assert run.status == "failed" and "no heartbeat" in run.failure
    assert_registry_consistent()
    replay_equals_read_models("modelserve.registry", "modelserve.training_runs")


def test_a_training_worker_killed_mid_run_then_handed_out_again_trains_to_a_ready_classifier(training, clusters):
    """Handed out again before any sweep: the run trains again from its start and ends once."""
    run = training("retrained", epochs=60)  # 180 steps: a few seconds
    first = clusters("first")
    wait_for(lambda: progressed(run) >= 2, timeout=60, cluster=first, what="the run's progress events")
    before = committed_events()
    first.kill()
    assert ClassifierVersion.objects.get(version="retrained").status == "training"

    assert hand_out_again() == 1
    second = clusters("second")
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status != "running", timeout=90, cluster=second,
             what="the run to end")
    run.refresh_from_db()
    assert run.status == "finished" and run.step == run.steps == 180
    assert committed_events() >= before
    events = run_events(run)
    assert [e.type for e in events].count("modelserve.training_finished") == 1
    assert not [e for e in events if e.type == "modelserve.training_failed"]
    # The progress of the killed attempt stays; the second attempt counts from step 1 again.
    steps = [e.payload["step"] for e in events if e.type == "modelserve.training_progressed"]
    restarts = sum(1 for a, b in zip(steps, steps[1:]) if b < a)
    assert restarts == 1 and steps[-1] == 180
    assert ClassifierVersion.objects.get(version="retrained").status == "ready"
    assert_registry_consistent()
    from transformers import AutoModelForSequenceClassification

    folder = ClassifierVersion.objects.get(version="retrained").checkpoint_dir
    assert AutoModelForSequenceClassification.from_pretrained(folder).config.num_labels == 1
    wait_for(lambda: not OrmQ.objects.exists(), timeout=30, cluster=second, what="the job to be acknowledged")
    replay_equals_read_models("modelserve.registry", "modelserve.training_runs")


def test_a_frozen_training_worker_failed_as_stale_never_registers_its_model(training, clusters):
    """A worker that stops answering (SIGSTOP: a VM pause, swapping) is failed by the sweep;
    when it comes back it must not turn the failed classifier ready."""
    run = training("frozen-run", epochs=2_000)  # 6,000 steps: longer than the test
    cluster = clusters("frozen")
    wait_for(lambda: progressed(run) >= 2, timeout=60, cluster=cluster, what="the run's progress events")
    cluster.freeze_between_transactions()
    watchdog = threading.Timer(30, cluster.signal, [signal.SIGCONT])  # never leave it stopped
    watchdog.start()
    try:
        wait_for(lambda: timezone.now() - TrainingRun.objects.get(pk=run.pk).heartbeat_at > timedelta(seconds=1),
                 timeout=10, what="a stale heartbeat")
        assert training_jobs.fail_stale_runs(older_than=timedelta(seconds=1)) == 1
    finally:
        cluster.signal(signal.SIGCONT)
        watchdog.cancel()
    # The worker goes on, sees its run has ended, stops, and the job is done.
    wait_for(lambda: not OrmQ.objects.exists(), timeout=60, cluster=cluster, what="the job to stop")
    events = run_events(run)
    assert [e.type for e in events if e.type in training_jobs._ENDINGS] == ["modelserve.training_failed"]
    assert ClassifierVersion.objects.get(version="frozen-run").status == "failed"
    assert not Event.objects.filter(stream_type="classifier", stream_id="frozen-run",
                                    type="modelserve.classifier_ready").exists()
    assert_registry_consistent()
    replay_equals_read_models("modelserve.registry", "modelserve.training_runs")


# -- paraphrases ---------------------------------------------------------------------------------


def numbered(attempt: int) -> str:
    return " ".join(WORDS[(attempt * 7 + i * 3) % len(WORDS)] for i in range(6)) + f" {attempt} ."


def scripted(attempt: int) -> str:
    """One new text in four attempts (accepted by a classifier that lets everything through);
    the others repeat the source or are empty."""
    return numbered(attempt) if attempt % 4 == 1 else COMPLETION if attempt % 4 == 2 else ""


GOAL = 10
EXPECTED_ATTEMPTS = 40  # the tenth accepted is attempt 37, in the batch 37-40
EXPECTED_OUTCOMES = ["accepted" if k % 4 == 1 else "repeat" if k % 4 == 2 else "unusable"
                     for k in range(1, EXPECTED_ATTEMPTS + 1)]


class Generator(http.server.ThreadingHTTPServer):
    """An OpenAI-compatible /v1/completions endpoint on the loopback, a little slow, whose
    texts depend only on the attempt numbers of the batch (known from its seed)."""

    def __init__(self, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _GeneratorHandler)
        self.delay = delay
        self.first_of: dict[int, int] = {}
        self.calls: list[int] = []  # first attempt of every batch asked for
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _GeneratorHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        first = self.server.first_of[body["seed"]]
        self.server.calls.append(first)
        time.sleep(self.server.delay)
        reply = json.dumps({"choices": [{"index": i, "text": scripted(first + i)} for i in range(body["n"])]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(reply.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def generator():
    server = Generator(delay=0.15)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def paraphrase_job(register, django_user_model, queued):
    """A confirmed attack and a paraphrase job for it (goal 10, budget 200), queued for the cluster."""
    vendor = Vendor.objects.create(name="Acme")
    people = []
    for name in ("author", "l0", "l1"):
        user = django_user_model.objects.create_user(name)
        Member.objects.create(user=user, role=Role.CONTRACTOR, vendor=vendor)
        people.append(user)
    dataset = Dataset.objects.create(name="adversarial")
    register("weak", bias=LETS_THROUGH)
    manual = attacks.open_campaign(name="Round one", kind="manual", dataset=dataset, target_version="weak")
    session = attacks.start_session(user=people[0], campaign=manual)
    submission = attacks.submit_attack(user=people[0], session_id=session.pk, prompt=PROMPT, completion=COMPLETION,
                                       asserted_injurious=True)
    for labeller in people[1:]:
        task = next_task(user=labeller, dataset=dataset)
        submit_label(user=labeller, task_id=task.task_id, label="injurious")
    campaign = attacks.open_campaign(name="Paraphrases", kind="paraphrase", dataset=dataset, target_version="weak")
    (job,) = request_paraphrases(campaign=campaign, snippet_ids=[submission.snippet_id], goal=GOAL, budget=200)
    assert OrmQ.objects.count() == 1
    return job


def generated(job) -> list[dict]:
    return [e.payload for e in Event.objects.filter(stream_type="paraphrase", stream_id=str(job.pk),
                                                    type="attacks.paraphrase_generated").order_by("version")]


def test_a_paraphrase_worker_killed_mid_job_resumes_and_records_every_paraphrase_once(
        paraphrase_job, generator, clusters):
    job = paraphrase_job
    generator.first_of = {_seed(job.pk, first): first for first in range(1, job.budget + 1)}
    first = clusters("first", GENERATOR_URL=generator.url, GENERATOR_MODEL="fake")
    wait_for(lambda: len(generated(job)) >= 12, timeout=60, cluster=first, what="three recorded batches")
    first.kill()
    before = committed_events()
    stopped_at = len(generated(job))
    assert ParaphraseJob.objects.get(pk=job.pk).status == "running"
    assert stopped_at % 4 == 0 and stopped_at < EXPECTED_ATTEMPTS  # whole batches only

    assert hand_out_again() == 1
    second = clusters("second", GENERATOR_URL=generator.url, GENERATOR_MODEL="fake")
    wait_for(lambda: ParaphraseJob.objects.get(pk=job.pk).status != "running", timeout=60, cluster=second,
             what="the job to finish")
    wait_for(lambda: not OrmQ.objects.exists(), timeout=30, cluster=second, what="the job to be acknowledged")

    job.refresh_from_db()
    assert (job.status, job.finish_reason, job.attempts, job.accepted) == (
        "finished", "goal_reached", EXPECTED_ATTEMPTS, GOAL)
    assert committed_events() >= before  # nothing committed before the kill was lost or changed
    # Every attempt recorded once, in order, with the outcome an uninterrupted run records.
    events = generated(job)
    assert [e["attempt"] for e in events] == list(range(1, EXPECTED_ATTEMPTS + 1))
    assert [e["outcome"] for e in events] == EXPECTED_OUTCOMES
    assert [e["completion"] for e in events] == [scripted(k).strip() for k in range(1, EXPECTED_ATTEMPTS + 1)]
    rows = list(ParaphraseCandidate.objects.filter(job=job).order_by("attempt").values_list("attempt", "outcome"))
    assert rows == list(enumerate(EXPECTED_OUTCOMES, start=1))
    # Every accepted paraphrase is one snippet, added once.
    accepted = {e["snippet_id"]: e["completion"] for e in events if e["outcome"] == "accepted"}
    added = Event.objects.filter(type="annotation.snippet_added", payload__source="paraphrase")
    assert sorted(added.values_list("stream_id", flat=True)) == sorted(accepted)
    assert sorted(Snippet.objects.filter(source="paraphrase").values_list("completion", flat=True)) == sorted(
        accepted.values())
    stream = Event.objects.filter(stream_type="paraphrase", stream_id=str(job.pk))
    assert stream.filter(type="attacks.paraphrasing_finished").count() == 1
    # The second cluster asked only for what was not recorded (the batch cut by the kill, if any, again).
    assert set(generator.calls) == set(range(1, EXPECTED_ATTEMPTS + 1, 4))
    replay_equals_read_models("attacks.work", "annotation.work")
