"""Automatic paraphrases of confirmed attacks: every candidate an event, the 5-10 rule, the
attempt budget, restarts and racing runs that never record an attempt twice.

Generators: `Fake` (a deterministic stand-in for the Generator protocol whose texts depend only
on the seed and the position in the batch) and a tiny random GPT-2 saved to a folder and
picked up through `settings.GENERATOR_DIR`, as production would.

django-q2 runs tasks synchronously under the test settings: `request_paraphrases` (and
`resume_paraphrasing`) run the job inside their own call, with `generator()`. Tests that want
to drive the run themselves use the `queue` fixture, which records what was enqueued instead.
"""

import hashlib
import threading
from collections import Counter

import pytest
import torch
from django.db import connection, transaction
from django_q.models import Task
from transformers import GPT2Config, GPT2LMHeadModel

from annotation import services as annotation
from annotation.models import Snippet, WorkItem
from attacks import paraphrasing, services
from attacks.errors import AttackError
from attacks.models import ParaphraseCandidate, ParaphraseJob
from attacks.paraphrasing import STOP, _seed, request_paraphrases, resume_paraphrasing, run_paraphrasing
from eventlog.models import Event
from modelserve import interface
from modelserve.generation import GenerationError
from modelserve.interface import SnippetText, inference
from modelserve.local_lm import LocalCausalLM
from tests.attacks.conftest import CATCHES_ALL, LETS_THROUGH
from tests.conftest import run_threads
from tests.tiny_models import WORDS

pytestmark = pytest.mark.django_db

PROMPT = "the knight walked home on the road ."
COMPLETION = "he fell and broke his arm ."


# -- generators -------------------------------------------------------------------------


class Crash(BaseException):
    """A worker killed mid-job, as seen from inside: no `except Exception` stops it."""


def hashed(seed: int, i: int) -> str:
    """Eight words of the tiny vocabulary chosen by (seed, i): distinct texts in practice."""
    digest = hashlib.sha256(f"{seed}:{i}".encode()).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in digest[:8]) + " ."


class Fake:
    """A Generator whose i-th text of a call depends only on (seed, i). `hook(call_number)` runs
    before each answer (to raise, or to let another run go first)."""

    name = "fake"

    def __init__(self, text=hashed, *, hook=None) -> None:
        self.text = text
        self.hook = hook
        self.calls: list[dict] = []

    def generate(self, prompt, *, n=1, max_new_tokens=96, temperature=1.0, top_p=0.95, seed=None,
                 stop=None) -> list[str]:
        self.calls.append(dict(prompt=prompt, n=n, seed=seed, stop=stop))
        if self.hook:
            self.hook(len(self.calls))
        return [self.text(seed, i) for i in range(n)]


def by_attempt(job: ParaphraseJob, script):
    """(seed, i) -> script(attempt number): the job seeds each batch from its first number, so
    for a known job the seed names the batch. An unexpected seed is a KeyError."""
    first_of = {_seed(job.pk, first): first for first in range(1, job.budget + 1)}
    return lambda seed, i: script(first_of[seed] + i)


def numbered(attempt: int) -> str:
    return f"{hashed(0, attempt)} {attempt}"


def crash_on(call: int):
    def hook(number):
        if number == call:
            raise Crash()

    return hook


def fail_on(call: int, message="the GPU host went away"):
    def hook(number):
        if number == call:
            raise GenerationError(message)

    return hook


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_models(monkeypatch):
    """No classifier or generator loaded by another test (versions are reused across files)."""
    monkeypatch.setattr(interface, "_instance", None)
    monkeypatch.setattr(interface, "_local_generator", None)


@pytest.fixture
def queue(monkeypatch):
    """Enqueued runs are recorded, not run: the test is the worker and runs them itself."""
    enqueued = []
    monkeypatch.setattr(paraphrasing, "async_task", lambda func, *args, **kwargs: enqueued.append((func, args)))
    return enqueued


@pytest.fixture
def use_generator(monkeypatch):
    """What the job gets from `generator()` (the enqueued run calls it without `using`)."""

    def install(fake):
        monkeypatch.setattr(paraphrasing, "generator", lambda: fake)
        return fake

    return install


@pytest.fixture
def weak(register):
    register("pp-weak", bias=LETS_THROUGH)
    return "pp-weak"


@pytest.fixture
def catches_all(register):
    register("pp-catch", bias=CATCHES_ALL, seed=5)
    return "pp-catch"


@pytest.fixture
def manual(dataset, weak):
    return services.open_campaign(name="Round one", kind="manual", dataset=dataset, target_version=weak)


@pytest.fixture
def attack(manual, attackers, labellers, dataset):
    """A submitted attack by attackers[0], labelled by two labellers (injurious unless told)."""

    def make(completion=COMPLETION, *, label="injurious", labelled=True) -> Snippet:
        author = attackers[0]
        session = services.start_session(user=author, campaign=manual)
        submission = services.submit_attack(user=author, session_id=session.pk, prompt=PROMPT,
                                            completion=completion, asserted_injurious=True)
        if labelled:
            for labeller in labellers[:2]:
                task = annotation.next_task(user=labeller, dataset=dataset)
                assert task.work_item.subject_id == submission.snippet_id
                annotation.submit_label(user=labeller, task_id=task.task_id, label=label)
        return Snippet.objects.get(pk=submission.snippet_id)

    return make


@pytest.fixture
def source(attack):
    return attack()


@pytest.fixture
def paraphrase_campaign(dataset):
    def make(version, **options):
        return services.open_campaign(name="Paraphrases", kind="paraphrase", dataset=dataset,
                                      target_version=version, **options)

    return make


def one_job(campaign, source, **options) -> ParaphraseJob:
    (job,) = request_paraphrases(campaign=campaign, snippet_ids=[source.pk], **options)
    return job


def fresh(job: ParaphraseJob) -> ParaphraseJob:
    return ParaphraseJob.objects.get(pk=job.pk)


# -- what every job must satisfy ----------------------------------------------------------


def generated_events(job) -> list[dict]:
    return [e.payload for e in Event.objects.filter(stream_type="paraphrase", stream_id=str(job.pk),
                                                    type="attacks.paraphrase_generated").order_by("position")]


def check_bookkeeping(job: ParaphraseJob, source: Snippet) -> list[ParaphraseCandidate]:
    """Events, candidate rows, counters and snippets tell the same story."""
    job = fresh(job)
    rows = list(job.candidates.order_by("attempt"))
    events = generated_events(job)
    assert [(e["attempt"], e["completion"], e["score"], e["outcome"], e["snippet_id"]) for e in events] == [
        (r.attempt, r.completion, r.score, r.outcome, str(r.snippet_id) if r.snippet_id else None) for r in rows]
    assert [r.attempt for r in rows] == list(range(1, len(rows) + 1))  # no gap, no number twice
    assert job.attempts == len(rows) <= job.budget
    assert job.accepted == sum(r.outcome == "accepted" for r in rows) <= paraphrasing.MAX_ACCEPTED
    campaign = job.campaign
    for row in rows:
        assert (row.snippet_id is not None) == (row.outcome == "accepted")
        if row.outcome in ("accepted", "rejected", "surplus"):
            assert row.score is not None and (row.score >= job.threshold) == (row.outcome == "rejected")
        if row.outcome == "unusable":
            assert row.score is None
    accepted = {r.snippet_id: r.completion for r in rows if r.outcome == "accepted"}
    snippets = Snippet.objects.filter(pk__in=accepted)
    assert len(snippets) == len(accepted)
    for snippet in snippets:
        assert (snippet.source, snippet.prompt, snippet.completion, snippet.author_id, snippet.dataset_id,
                snippet.split) == ("paraphrase", source.prompt, accepted[snippet.pk], source.author_id,
                                   campaign.dataset_id, campaign.split)
    assert set(WorkItem.objects.filter(subject_id__in=accepted).values_list("excluded_user_id", flat=True)) <= {
        source.author_id}
    # Nothing was added twice and nothing outside the candidates.
    assert Snippet.objects.filter(source="paraphrase").count() == ParaphraseCandidate.objects.filter(
        outcome="accepted").count()
    return rows


def outcomes(job) -> list[str]:
    return list(fresh(job).candidates.order_by("attempt").values_list("outcome", flat=True))


# -- through django-q2, with a fake generator --------------------------------------------------


def test_a_request_runs_the_job_and_every_candidate_is_an_event(
        dataset, weak, source, paraphrase_campaign, use_generator, attackers, labellers):
    """Per batch: one new text (accepted), one empty (unusable), the source itself in other
    case and spacing (repeat) and the batch's first text again (repeat)."""

    def text(seed, i):
        return [hashed(seed, 0), "   ", "  HE fell and broke his   arm . ", hashed(seed, 0).upper()][i]

    fake = use_generator(Fake(text))
    campaign = paraphrase_campaign(weak)
    job = one_job(campaign, source)  # runs now: django-q2 is synchronous in the tests

    job = fresh(job)
    assert (job.status, job.finish_reason, job.attempts, job.accepted) == ("finished", "goal_reached", 20, 5)
    assert (job.version, job.threshold, job.goal, job.budget) == (weak, campaign.threshold, 5, 60)
    assert outcomes(job) == ["accepted", "unusable", "repeat", "repeat"] * 5
    rows = check_bookkeeping(job, source)
    assert all(r.score is None for r in rows if r.outcome != "accepted")
    assert [r.completion for r in rows[1::4]] == [""] * 5

    # The generator saw the few-shot prompt filled in, one seeded batch of four at a time.
    prompt = paraphrasing.DEFAULT_FEW_SHOT_PROMPT.format(prompt=PROMPT, completion=COMPLETION)
    assert [(c["prompt"], c["n"], c["seed"], c["stop"]) for c in fake.calls] == [
        (prompt, 4, _seed(job.pk, first), STOP) for first in (1, 5, 9, 13, 17)]
    assert Task.objects.get(name=f"paraphrase {job.pk}").success

    stream = Event.objects.filter(stream_type="paraphrase", stream_id=str(job.pk)).order_by("version")
    assert [e.type.removeprefix("attacks.") for e in stream] == (
        ["paraphrasing_requested"] + ["paraphrase_generated"] * 20 + ["paraphrasing_finished"])

    # Accepted paraphrases go to labelling, never to the source's author.
    author = attackers[0]
    assert annotation.next_task(user=author, dataset=dataset) is None
    task = annotation.next_task(user=labellers[2], dataset=dataset)
    assert Snippet.objects.get(pk=task.work_item.subject_id).source == "paraphrase"


def test_the_classifier_decides_and_a_batch_may_overshoot_the_goal_but_not_ten(
        register, dataset, source, paraphrase_campaign, queue):
    """Texts the test scored first: high ones are rejected, low ones accepted."""
    register("pp-mid", seed=11)
    pool = [f"{hashed(7, i)} {i}" for i in range(24)]
    scores = dict(zip(pool, inference().score("pp-mid", [SnippetText(PROMPT, t) for t in pool])))
    ordered = sorted(pool, key=scores.get)
    low, high = ordered[:12], ordered[12:]
    threshold = (scores[low[-1]] + scores[high[0]]) / 2
    assert scores[low[-1]] < threshold < scores[high[0]]

    campaign = paraphrase_campaign("pp-mid", threshold=threshold)
    job = one_job(campaign, source, goal=5)
    assert queue == [("attacks.paraphrasing.run_paraphrasing", (str(job.pk),))]
    # Attempts alternate high / low: two accepted per batch, goal 5 reached in the third batch.
    script = {k: (high if k % 2 else low)[(k - 1) // 2] for k in range(1, 25)}
    fake = Fake(by_attempt(job, script.get))
    assert run_paraphrasing(str(job.pk), using=fake) == "finished"

    job = fresh(job)
    assert (job.finish_reason, job.attempts, job.accepted) == ("goal_reached", 12, 6)
    assert outcomes(job) == ["rejected", "accepted"] * 6
    rows = check_bookkeeping(job, source)
    for row in rows:
        assert row.completion == script[row.attempt]
        assert row.score == pytest.approx(scores[row.completion], abs=1e-6)


def test_never_more_than_ten_accepted_the_rest_is_surplus(weak, source, paraphrase_campaign, queue):
    campaign = paraphrase_campaign(weak)
    job = one_job(campaign, source, goal=10, budget=40)
    fake = Fake(by_attempt(job, numbered))
    assert run_paraphrasing(str(job.pk), using=fake) == "finished"
    job = fresh(job)
    assert (job.finish_reason, job.attempts, job.accepted) == ("goal_reached", 12, 10)
    assert outcomes(job) == ["accepted"] * 10 + ["surplus"] * 2
    rows = check_bookkeeping(job, source)
    assert all(r.score < campaign.threshold for r in rows[10:])  # would have passed: not added
    assert len(fake.calls) == 3
    assert run_paraphrasing(str(job.pk), using=fake) == "finished" and len(fake.calls) == 3  # done is done


def test_a_classifier_that_catches_everything_spends_exactly_the_budget(
        catches_all, source, paraphrase_campaign, queue):
    job = one_job(paraphrase_campaign(catches_all), source, goal=5, budget=10)
    fake = Fake()
    assert run_paraphrasing(str(job.pk), using=fake) == "finished"
    job = fresh(job)
    assert (job.finish_reason, job.attempts, job.accepted) == ("budget_spent", 10, 0)
    assert outcomes(job) == ["rejected"] * 10
    check_bookkeeping(job, source)
    assert [c["n"] for c in fake.calls] == [4, 4, 2]
    assert [c["seed"] for c in fake.calls] == [_seed(job.pk, first) for first in (1, 5, 9)]
    assert not Snippet.objects.filter(source="paraphrase").exists()


def test_goal_and_budget_outside_the_rules_are_refused(weak, source, paraphrase_campaign, queue):
    campaign = paraphrase_campaign(weak)
    before = Event.objects.count()
    for options, message in [
        (dict(goal=4), "between 5 and 10"),
        (dict(goal=11, budget=60), "between 5 and 10"),
        (dict(goal=8, budget=7), "at least the goal"),
        (dict(budget=1001), "at most 1000"),
    ]:
        with pytest.raises(AttackError, match=message):
            request_paraphrases(campaign=campaign, snippet_ids=[source.pk], **options)
    assert Event.objects.count() == before and not ParaphraseJob.objects.exists() and not queue
    for goal in (5, 10):
        assert one_job(paraphrase_campaign(weak), source, goal=goal, budget=goal).goal == goal


# -- what may be requested ------------------------------------------------------------------


def test_only_open_paraphrase_campaigns_make_paraphrases(weak, manual, source, paraphrase_campaign, queue):
    with pytest.raises(AttackError, match="open paraphrase campaign"):
        request_paraphrases(campaign=manual, snippet_ids=[source.pk])
    closed = paraphrase_campaign(weak)
    services.close_campaign(campaign=closed)
    closed.refresh_from_db()
    with pytest.raises(AttackError, match="open paraphrase campaign"):
        request_paraphrases(campaign=closed, snippet_ids=[source.pk])
    assert not ParaphraseJob.objects.exists() and not queue


def test_only_attacks_confirmed_injurious_by_labelling(weak, attack, paraphrase_campaign, queue):
    confirmed = attack()
    harmless = attack("he smiled and walked home .", label="not_injurious")
    unlabelled = attack("she cut her hand on the knife .", labelled=False)
    campaign = paraphrase_campaign(weak)
    for snippet in (harmless, unlabelled):
        with pytest.raises(AttackError, match="1 snippet"):
            request_paraphrases(campaign=campaign, snippet_ids=[confirmed.pk, snippet.pk])
    assert not ParaphraseJob.objects.exists() and not queue
    # A snippet named twice is one job; one already being paraphrased is skipped.
    (job,) = request_paraphrases(campaign=campaign, snippet_ids=[confirmed.pk, confirmed.pk])
    assert request_paraphrases(campaign=campaign, snippet_ids=[confirmed.pk]) == []
    assert list(ParaphraseJob.objects.values_list("pk", flat=True)) == [job.pk] and len(queue) == 1


def test_the_few_shot_prompt_needs_exactly_prompt_and_completion(weak, source, paraphrase_campaign, queue):
    campaign = paraphrase_campaign(weak)
    for template in [
        "Story: {prompt}\nRewrite:",  # no {completion}
        "{prompt} {completion} {style}",  # another field
        "{prompt} {completion} {}",  # a positional one
        "{prompt.upper} {completion}",  # an attribute
        "{prompt} {completion[0]}",  # an index
        "{prompt} {completion",  # not a template
        "{prompt:{width}} {completion}",  # a field hidden in a format spec
        "{prompt:d} {completion}",  # a format no text takes
    ]:
        with pytest.raises(AttackError, match="few-shot prompt"):
            request_paraphrases(campaign=campaign, snippet_ids=[source.pk], few_shot_prompt=template)
    assert not ParaphraseJob.objects.exists() and not queue


def test_a_custom_few_shot_prompt_with_literal_braces(weak, source, paraphrase_campaign, queue):
    template = "Rewrite {{kindly}}:\n{prompt} | {completion}\nAgain, with {prompt}:"
    job = one_job(paraphrase_campaign(weak), source, few_shot_prompt=template)
    fake = Fake()
    run_paraphrasing(str(job.pk), using=fake)
    assert fake.calls[0]["prompt"] == f"Rewrite {{kindly}}:\n{PROMPT} | {COMPLETION}\nAgain, with {PROMPT}:"


# -- crashes, races and failures ------------------------------------------------------------


def half_accepted(seed, i):
    """Two new texts per batch, then a repeat of the source and an empty text."""
    return [hashed(seed, 0), hashed(seed, 1), COMPLETION, ""][i]


def test_a_crashed_job_resumes_where_it_stopped_as_if_it_never_crashed(weak, source, paraphrase_campaign, queue):
    job = one_job(paraphrase_campaign(weak), source, goal=5)

    # What an uninterrupted run records (then undone, so the same job can run again).
    with transaction.atomic():
        assert run_paraphrasing(str(job.pk), using=Fake(half_accepted)) == "finished"
        uninterrupted = [(r.attempt, r.completion, r.score, r.outcome) for r in fresh(job).candidates.all()]
        transaction.set_rollback(True)
    assert fresh(job).attempts == 0 and not Snippet.objects.filter(source="paraphrase").exists()
    assert len(uninterrupted) == 12

    # Killed while generating the third batch: two batches recorded, nothing of the third.
    with pytest.raises(Crash):
        run_paraphrasing(str(job.pk), using=Fake(half_accepted, hook=crash_on(3)))
    job = fresh(job)
    assert (job.status, job.attempts, job.accepted) == ("running", 8, 4)
    # The worker runs the job again (django-q2 hands an unacknowledged task out again).
    again = Fake(half_accepted)
    assert run_paraphrasing(str(job.pk), using=again) == "finished"
    assert [c["seed"] for c in again.calls] == [_seed(job.pk, 9)]

    rows = check_bookkeeping(job, source)
    assert [(r.attempt, r.completion, r.score, r.outcome) for r in rows] == uninterrupted
    assert fresh(job).accepted == 6 and Snippet.objects.filter(source="paraphrase").count() == 6


def test_a_crash_while_recording_a_batch_leaves_no_snippet_behind(weak, source, paraphrase_campaign, queue,
                                                                   monkeypatch):
    job = one_job(paraphrase_campaign(weak), source, goal=5)
    real_append = paraphrasing.append

    def append_then_die(events, **kwargs):  # the accepted snippets are added; the batch is not recorded
        raise Crash()

    monkeypatch.setattr(paraphrasing, "append", append_then_die)
    with pytest.raises(Crash):
        run_paraphrasing(str(job.pk), using=Fake(half_accepted))
    assert fresh(job).attempts == 0 and not Snippet.objects.filter(source="paraphrase").exists()
    monkeypatch.setattr(paraphrasing, "append", real_append)
    assert run_paraphrasing(str(job.pk), using=Fake(half_accepted)) == "finished"
    assert len(check_bookkeeping(job, source)) == 12


def test_a_second_run_that_records_first_wins_and_the_first_moves_on(weak, source, paraphrase_campaign, queue):
    """Run A generates its second batch while run B (the same job, handed out twice) records
    that batch and then dies; A's copy of the batch is dropped and A carries on after it."""
    job = one_job(paraphrase_campaign(weak), source, goal=5)
    other_run = Fake(half_accepted, hook=crash_on(2))

    def let_the_other_run_go_first(call):
        if call == 2:
            with pytest.raises(Crash):
                run_paraphrasing(str(job.pk), using=other_run)

    first_run = Fake(half_accepted, hook=let_the_other_run_go_first)
    assert run_paraphrasing(str(job.pk), using=first_run) == "finished"
    seeds = {first: _seed(job.pk, first) for first in (1, 5, 9)}
    assert [c["seed"] for c in first_run.calls] == [seeds[1], seeds[5], seeds[9]]
    assert [c["seed"] for c in other_run.calls] == [seeds[5], seeds[9]]
    rows = check_bookkeeping(job, source)
    assert len(rows) == 12 and fresh(job).accepted == 6
    assert [r.completion for r in rows] == [half_accepted(seeds[(k - 1) // 4 * 4 + 1], (k - 1) % 4)
                                            for k in range(1, 13)]


@pytest.mark.django_db(transaction=True)
def test_two_runs_racing_on_separate_connections_never_record_an_attempt_twice(
        weak, source, paraphrase_campaign, queue):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    job = one_job(paraphrase_campaign(weak), source, goal=10, budget=40)
    barrier = threading.Barrier(2)

    def in_step(call):  # both runs draw each of their first batches at the same time
        if call <= 2:
            barrier.wait(timeout=10)

    fakes = [Fake(hook=in_step), Fake(hook=in_step)]
    run_threads(*[lambda f=f: run_paraphrasing(str(job.pk), using=f) for f in fakes], timeout=120)
    # Both drew the first two batches from the same state: each time one of them lost.
    for fake in fakes:
        assert [c["seed"] for c in fake.calls[:2]] == [_seed(job.pk, 1), _seed(job.pk, 5)]
    job = fresh(job)
    assert (job.status, job.finish_reason, job.accepted) == ("finished", "goal_reached", 10)
    rows = check_bookkeeping(job, source)
    assert Counter(r.attempt for r in rows).most_common(1)[0][1] == 1
    assert [r.completion for r in rows] == [hashed(_seed(job.pk, (k - 1) // 4 * 4 + 1), (k - 1) % 4)
                                            for k in range(1, len(rows) + 1)]


def test_a_generator_error_fails_the_job_and_resuming_continues_it(
        weak, source, paraphrase_campaign, use_generator):
    use_generator(Fake(half_accepted, hook=fail_on(2)))
    job = one_job(paraphrase_campaign(weak), source, goal=5)
    job = fresh(job)
    assert (job.status, job.failure, job.attempts) == ("failed", "the GPU host went away", 4)
    assert run_paraphrasing(str(job.pk), using=Fake()) == "failed"  # a failed job stays failed until resumed

    fake = use_generator(Fake(half_accepted))
    resume_paraphrasing(job=job)  # enqueued, and (synchronous q2) run with generator()
    job = fresh(job)
    assert (job.status, job.failure, job.finish_reason) == ("finished", "", "goal_reached")
    assert [c["seed"] for c in fake.calls] == [_seed(job.pk, 5), _seed(job.pk, 9)]
    assert len(check_bookkeeping(job, source)) == 12
    types = list(Event.objects.filter(stream_type="paraphrase", stream_id=str(job.pk)).exclude(
        type="attacks.paraphrase_generated").order_by("version").values_list("type", flat=True))
    assert types == ["attacks.paraphrasing_requested", "attacks.paraphrasing_failed",
                     "attacks.paraphrasing_resumed", "attacks.paraphrasing_finished"]
    before = Event.objects.count()
    resume_paraphrasing(job=job)  # only a failed job resumes
    assert Event.objects.count() == before


class Short(Fake):
    def generate(self, prompt, **kwargs):
        return super().generate(prompt, **kwargs)[:1]


@pytest.mark.parametrize("fake, reason", [
    (Fake(lambda seed, i: str(1 / 0)), "fake: ZeroDivisionError('division by zero')"),  # any error of a generator
    (Short(), "asked for 4 texts, the generator answered 1"),
])
def test_a_misbehaving_generator_fails_the_job_with_the_reason(weak, source, paraphrase_campaign, queue,
                                                               fake, reason):
    job = one_job(paraphrase_campaign(weak), source, goal=5)
    assert run_paraphrasing(str(job.pk), using=fake) == "failed"
    job = fresh(job)
    assert (job.status, job.failure, job.attempts) == ("failed", reason, 0)


def test_a_candidate_the_classifier_cannot_score_is_unusable(weak, source, paraphrase_campaign, queue):
    job = one_job(paraphrase_campaign(weak), source, goal=5, budget=8)
    fake = Fake(lambda seed, i: hashed(seed, i) * (10 if i == 0 else 1))  # 90 words: beyond the classifier's 64 tokens
    assert run_paraphrasing(str(job.pk), using=fake) == "finished"
    assert outcomes(job) == ["unusable", "accepted", "accepted", "accepted"] * 2
    check_bookkeeping(job, source)


# -- generator() from the settings --------------------------------------------------------------


def save_lm(folder, tokenizer, *, context: int):
    """A random two-layer GPT-2 over the test vocabulary, saved with its tokenizer."""
    torch.manual_seed(3)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=32, n_head=2, n_positions=context,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def generator_settings(settings):
    settings.GENERATOR_URL, settings.GENERATOR_API_KEY, settings.GENERATOR_MODEL = "", "", ""
    settings.GENERATOR_DIR = None
    return settings


def test_no_generator_configured_fails_the_job(weak, source, paraphrase_campaign, generator_settings):
    job = fresh(one_job(paraphrase_campaign(weak), source))
    assert job.status == "failed" and "no generator is configured" in job.failure


def test_a_tiny_causal_lm_from_the_settings(weak, attack, paraphrase_campaign, generator_settings, tmp_path,
                                            tokenizer, monkeypatch):
    folder = save_lm(tmp_path / "lm", tokenizer, context=160)
    generator_settings.GENERATOR_DIR = str(folder)
    loads = []

    class Counted(LocalCausalLM):
        def __init__(self, *args, **kwargs):
            loads.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr("modelserve.local_lm.LocalCausalLM", Counted)  # what generator() loads
    source, other = attack(), attack("she cut her hand on the knife .")
    campaign = paraphrase_campaign(weak)
    job = fresh(one_job(campaign, source, goal=5, budget=8))
    assert job.status == "finished", job.failure
    assert job.finish_reason == ("goal_reached" if job.accepted >= 5 else "budget_spent")
    rows = check_bookkeeping(job, source)
    # Exactly what the model samples with the job's seeds, batch by batch: new words (accepted
    # by a classifier that lets everything through), empty or too long for it (unusable).
    prompt = job.few_shot_prompt.format(prompt=PROMPT, completion=COMPLETION)
    model = LocalCausalLM(folder, device=torch.device("cpu"))
    expected = []
    for first in range(1, len(rows) + 1, 4):
        expected += model.generate(prompt, n=min(4, job.budget - first + 1), seed=_seed(job.pk, first), stop=STOP)
    assert [r.completion for r in rows] == expected
    assert {r.outcome for r in rows} <= {"accepted", "unusable", "repeat"}

    # The model is loaded once per process, not once per job.
    assert fresh(one_job(campaign, other, goal=5, budget=5)).status == "finished"
    assert loads == [str(folder)] and interface.generator() is interface.generator()
    assert interface.generator().name == f"local:{folder}"


def test_a_model_whose_context_is_too_short_fails_the_job(weak, source, paraphrase_campaign, generator_settings,
                                                          tmp_path, tokenizer):
    generator_settings.GENERATOR_DIR = str(save_lm(tmp_path / "lm", tokenizer, context=64))
    job = fresh(one_job(paraphrase_campaign(weak), source))
    assert job.status == "failed" and "context of 64 tokens" in job.failure



def test_one_job_per_snippet_and_campaign_even_failed_or_requested_at_once(weak, source, paraphrase_campaign,
                                                                           queue):
    campaign = paraphrase_campaign(weak)
    job = one_job(campaign, source)
    assert job.pk == paraphrasing.job_id_for(campaign, source.pk)  # the same id for every request
    paraphrasing._append(job, paraphrasing.ParaphrasingFailed(reason="worker lost"))
    assert request_paraphrases(campaign=campaign, snippet_ids=[str(source.pk)]) == []  # resume it instead
    # A request that read "no job yet" just before another request recorded one is refused.
    ParaphraseJob.objects.filter(pk=job.pk).delete()  # what that request's read saw
    with pytest.raises(AttackError, match="just sent for paraphrasing"):
        request_paraphrases(campaign=campaign, snippet_ids=[source.pk])
    assert Event.objects.filter(type="attacks.paraphrasing_requested").count() == 1
