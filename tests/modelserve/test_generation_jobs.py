"""Generation jobs: completions for labelling, quality-comparison sets and prompt selection.

Generators: `Fake` (a deterministic stand-in for the Generator protocol whose texts depend only
on the prompt, the seed and the position in the batch), a tiny random GPT-2 saved to a folder
and picked up through `settings.GENERATOR_DIR`, and the replay of stored completions
(`settings.GENERATOR_REPLAY`), as production would pick them.

django-q2 runs tasks synchronously under the test settings: `start_*` runs the job inside its
own call, with `generator()`. Tests that drive the run themselves use the `queue` fixture,
which records what was enqueued instead.
"""

import hashlib
import itertools
import threading
from collections import Counter

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse
from django_q.models import Task
from transformers import GPT2Config, GPT2LMHeadModel

from annotation import services as annotation
from annotation.models import ComparisonPair, Dataset, Role, Snippet
from annotation.services import SnippetInput
from eventlog.models import Event
from modelserve import generation_jobs, interface, registry
from modelserve.errors import ModelserveError
from modelserve.events import GenerationParams
from modelserve.generation import Replay, first_sentence
from modelserve.generation_jobs import (
    prompt_seed,
    run_generation_job,
    select_prompts,
    start_comparison_set,
    start_completions,
    start_prompt_selection,
)
from modelserve.local_lm import LocalCausalLM
from modelserve.models import GenerationJob, PromptResult
from tests.annotation.conftest import make_member
from tests.conftest import run_threads
from tests.tiny_models import WORDS, save_checkpoint

pytestmark = pytest.mark.django_db

PROMPTS = [
    "the knight walked home on the road .",
    "the girl ran to the river with her dog .",
    "the boy slept in the castle .",
]
FIVE = [f"the horse ran on the road {'and ' * k}home ." for k in range(5)]
LETS_THROUGH = -8.0  # a logit bias under which every snippet scores about 0.0003
CATCHES_ALL = 8.0  # ... about 0.9997


# -- generators -------------------------------------------------------------------------


class Crash(BaseException):
    """A worker killed mid-job, as seen from inside: no `except Exception` stops it."""


def hashed(seed: int, i: int) -> str:
    """Eight words of the tiny vocabulary chosen by (seed, i), ending a sentence."""
    digest = hashlib.sha256(f"{seed}:{i}".encode()).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in digest[:8]) + " ."


def two_sentences(prompt, seed, i):
    """A draw whose first sentence depends only on (seed, i); the job keeps that sentence."""
    return f"  {hashed(seed, i)} the dog slept . "


class Fake:
    """A Generator whose i-th text of a call is `text(prompt, seed, i)`. `hook(call_number)` runs
    before each answer (to raise, or to let another run go first)."""

    name = "fake"

    def __init__(self, text=two_sentences, *, hook=None) -> None:
        self.text = text
        self.hook = hook
        self.calls: list[dict] = []

    def generate(self, prompt, *, n=1, max_new_tokens=96, temperature=1.0, top_p=0.95, seed=None,
                 stop=None) -> list[str]:
        self.calls.append(dict(prompt=prompt, n=n, seed=seed, stop=stop, max_new_tokens=max_new_tokens,
                               temperature=temperature))
        if self.hook:
            self.hook(len(self.calls))
        return [self.text(prompt, seed, i) for i in range(n)]


def crash_on(call: int):
    def hook(number):
        if number == call:
            raise Crash()

    return hook


def draws(job_seed: int, prompts, per_prompt: int) -> list[list[str]]:
    """What the default Fake gives a job, after `first_sentence`."""
    return [[hashed(prompt_seed(job_seed, k), i) for i in range(per_prompt)] for k in range(len(prompts))]


class Keyword:
    """A stand-in for the inference service: a classifier that flags exactly the completions
    with the word "hurt" (0.9), and gives the rest 0.1."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list]] = []

    def score(self, version, snippets):
        self.calls.append((version, list(snippets)))
        return [flag_hurt(s.completion) for s in snippets]


def flag_hurt(text: str) -> float:
    return 0.9 if "hurt" in text.split() else 0.1


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_models(monkeypatch):
    """No classifier or generator loaded by another test (versions are reused across files)."""
    monkeypatch.setattr(interface, "_instance", None)
    monkeypatch.setattr(interface, "_local_generator", None)


@pytest.fixture
def generator_settings(settings):
    settings.GENERATOR_URL, settings.GENERATOR_API_KEY, settings.GENERATOR_MODEL = "", "", ""
    settings.GENERATOR_DIR, settings.GENERATOR_REPLAY = None, False
    return settings


@pytest.fixture
def use_generator(monkeypatch):
    """What `generator()` and `generator_name()` give the jobs (the enqueued run calls
    `generator()` itself)."""

    def install(fake):
        monkeypatch.setattr(generation_jobs, "generator", lambda: fake)
        monkeypatch.setattr(generation_jobs, "generator_name", lambda: fake.name)
        return fake

    return install


@pytest.fixture
def queue(monkeypatch):
    """Enqueued runs are recorded, not run: the test is the worker and runs them itself."""
    enqueued = []
    monkeypatch.setattr(generation_jobs, "async_task", lambda func, *args, **kwargs: enqueued.append((func, args)))
    return enqueued


@pytest.fixture
def keyword(monkeypatch):
    scorer = Keyword()
    monkeypatch.setattr(interface, "_instance", scorer)
    return scorer


@pytest.fixture
def register(tmp_path, tokenizer):
    """Register a tiny classifier checkpoint under `version`."""

    def make(version, *, bias=None, seed=7):
        folder = save_checkpoint(tmp_path / f"ckpt-{version}", tokenizer, seed=seed, bias=bias)
        registry.register_checkpoint(version=version, checkpoint_dir=str(folder), base_model="tiny-bert")
        return version

    return make


@pytest.fixture
def dataset():
    return Dataset.objects.create(name="stories")


@pytest.fixture
def other_dataset():
    return Dataset.objects.create(name="more stories")


@pytest.fixture(scope="module")
def lm_folder(tokenizer, tmp_path_factory):
    """A random two-layer GPT-2 over the test vocabulary, saved with its tokenizer."""
    folder = tmp_path_factory.mktemp("generator") / "lm"
    torch.manual_seed(3)
    config = GPT2Config(vocab_size=len(tokenizer), n_layer=2, n_embd=32, n_head=2, n_positions=64,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def fresh(job: GenerationJob) -> GenerationJob:
    return GenerationJob.objects.get(pk=job.pk)


def stream(job) -> list[Event]:
    return list(Event.objects.filter(stream_type="generation", stream_id=str(job.pk)).order_by("version"))


# -- what every job must satisfy ----------------------------------------------------------


def check_bookkeeping(job: GenerationJob) -> list[PromptResult]:
    """Events, result rows, counters and snippets tell the same story: each prompt recorded
    once, in order, with its seed; each snippet id a snippet of this prompt and completion; a
    completion without a snippet is empty or already in the dataset."""
    job = fresh(job)
    spec = job.spec
    events = stream(job)
    types = [e.type.removeprefix("modelserve.") for e in events]
    ending = {"running": [], "finished": ["generation_job_finished"], "failed": ["generation_job_failed"]}
    assert types == ["generation_job_started"] + ["prompt_completed"] * job.done + ending[job.status]
    completed = [e.payload for e in events if e.type == "modelserve.prompt_completed"]
    rows = list(job.results.order_by("index"))
    assert [(p["index"], p["seed"], p["completions"], p["snippet_ids"], p["scores"]) for p in completed] == [
        (r.index, r.seed, r.completions, r.snippet_ids, r.scores) for r in rows]
    assert [r.index for r in rows] == list(range(job.done))
    assert [r.seed for r in rows] == [prompt_seed(spec["seed"], r.index) for r in rows]
    assert all(len(r.completions) == spec["per_prompt"] for r in rows)
    ids = [s for r in rows for s in r.snippet_ids if s]
    assert len(ids) == len(set(ids)) == job.snippets
    if job.kind == GenerationJob.Kind.PROMPT_SELECTION:
        assert all(r.snippet_ids == [] and len(r.scores) == spec["per_prompt"] for r in rows)
        return rows
    snippets = {str(k): v for k, v in Snippet.objects.in_bulk(ids).items()}
    assert len(snippets) == len(ids)
    for row in rows:
        prompt = spec["prompts"][row.index]
        assert len(row.snippet_ids) == len(row.completions) and row.scores == []
        for completion, snippet_id in zip(row.completions, row.snippet_ids, strict=True):
            if snippet_id:
                s = snippets[snippet_id]
                assert (s.dataset_id, s.prompt, s.completion, s.source, s.split) == (
                    spec["dataset_id"], prompt, completion, spec["source"], spec["split"])
            elif completion:  # a duplicate: the dataset has it already
                assert Snippet.objects.filter(dataset_id=spec["dataset_id"], prompt=prompt,
                                              completion=completion).exists()
    return rows


# -- completion jobs ------------------------------------------------------------------------


def test_a_completion_job_adds_the_first_sentence_of_each_draw_and_skips_duplicates_and_empty_draws(
        dataset, use_generator):
    """Per prompt: a two-sentence draw, a draw already in the dataset (prompt 1 only), the first
    draw again with another ending, an empty draw, and one that ends in an exclamation."""

    def text(prompt, seed, i):
        return [f"  {hashed(seed, 0)} the dog slept . ", hashed(seed, 1), f"{hashed(seed, 0)} she smiled .", "   ",
                "he fell off the horse ! then he ran home ."][i]

    already = annotation.add_snippets(dataset=dataset, rows=[
        SnippetInput(PROMPTS[1], hashed(prompt_seed(11, 1), 1), "initial", "train")])
    fake = use_generator(Fake(text))
    params = GenerationParams(temperature=0.7, max_new_tokens=20)
    job = start_completions(dataset=dataset, prompts=[f"  {PROMPTS[0]} ", "", PROMPTS[1], "  ", PROMPTS[2]],
                            per_prompt=5, source="in_distribution_test", split="test", params=params, seed=11)

    job = fresh(job)  # ran already: django-q2 is synchronous in the tests
    assert (job.kind, job.status, job.generator, job.prompts, job.done, job.snippets) == (
        "completions", "finished", "fake", 3, 3, 8)
    assert Task.objects.get(name=f"generation {job.pk}").success
    # One seeded generator call a prompt, with the job's parameters; blank prompts dropped.
    assert [(c["prompt"], c["n"], c["seed"], c["stop"], c["max_new_tokens"], c["temperature"]) for c in fake.calls] \
        == [(p, 5, prompt_seed(11, k), ["\n"], 20, 0.7) for k, p in enumerate(PROMPTS)]

    rows = check_bookkeeping(job)
    for row in rows:
        seed = prompt_seed(11, row.index)
        assert row.completions == [hashed(seed, 0), hashed(seed, 1), hashed(seed, 0), "", "he fell off the horse !"]
        present = [True, row.index != 1, False, False, True]
        assert [bool(s) for s in row.snippet_ids] == present

    added = Snippet.objects.filter(dataset=dataset).exclude(pk__in=already)
    assert sorted((s.prompt, s.completion, s.source, s.split) for s in added) == sorted(
        (PROMPTS[r.index], c, "in_distribution_test", "test")
        for r in rows for c, s in zip(r.completions, r.snippet_ids, strict=True) if s)
    assert {str(s.pk) for s in added} == {s for r in rows for s in r.snippet_ids if s}

    started, *_, finished = stream(job)
    assert started.payload == {
        "job_id": str(job.pk), "kind": "completions", "generator": "fake",
        "params": {"temperature": 0.7, "max_new_tokens": 20, "top_p": 0.95}, "seed": 11, "prompts": PROMPTS, "per_prompt": 5,
        "dataset_id": dataset.pk, "source": "in_distribution_test", "split": "test", "pairs_per_prompt": None,
        "version": None, "threshold": None, "keep_fraction": None}
    assert finished.payload == {"report": {"prompts": 3, "snippets": 8}} and job.report == {"prompts": 3, "snippets": 8}


def test_what_a_completion_job_cannot_start(dataset, use_generator, queue):
    use_generator(Fake())
    for options, message in [
        (dict(prompts=["  ", ""]), "at least one prompt"),
        (dict(prompts=["the dog ran ."] * 10_001), "at most 10,000"),
        (dict(prompts=PROMPTS, source="invented"), "unknown source or split"),
        (dict(prompts=PROMPTS, split="holdout"), "unknown source or split"),
    ]:
        with pytest.raises(ModelserveError, match=message):
            start_completions(dataset=dataset, per_prompt=2, **options)
    assert not Event.objects.filter(stream_type="generation").exists()
    assert not GenerationJob.objects.exists() and not queue


def test_the_same_job_seed_draws_the_same_completions_from_a_tiny_causal_lm(
        dataset, other_dataset, generator_settings, lm_folder):
    generator_settings.GENERATOR_DIR = str(lm_folder)
    params = GenerationParams(temperature=1.0, max_new_tokens=12)
    first = fresh(start_completions(dataset=dataset, prompts=PROMPTS, per_prompt=3, params=params, seed=5))
    again = fresh(start_completions(dataset=other_dataset, prompts=PROMPTS, per_prompt=3, params=params, seed=5))
    other = fresh(start_completions(dataset=other_dataset, prompts=PROMPTS, per_prompt=3, params=params, seed=6))
    for job in (first, again, other):
        assert job.status == "finished", job.failure
        assert job.generator == stream(job)[0].payload["generator"] == f"local:{lm_folder}"
        check_bookkeeping(job)

    def completions(job):
        return [r.completions for r in job.results.order_by("index")]

    # Exactly what the model samples with each prompt's seed, cut at the first sentence.
    model = LocalCausalLM(lm_folder, device=torch.device("cpu"))
    expected = [[first_sentence(t) for t in model.generate(p, n=3, seed=prompt_seed(5, k), stop=["\n"],
                                                          max_new_tokens=12, temperature=1.0)]
                for k, p in enumerate(PROMPTS)]
    assert completions(first) == completions(again) == expected
    assert completions(other) != expected
    assert sum(1 for row in expected for c in row if c) > 3  # the model says something
    assert first.snippets == len({(k, c) for k, row in enumerate(expected) for c in row if c})


def test_a_job_killed_mid_way_resumes_where_it_stopped_and_records_each_prompt_once(
        dataset, use_generator, queue):
    use_generator(Fake())
    job = start_completions(dataset=dataset, prompts=FIVE, per_prompt=3, seed=3)
    assert queue == [("modelserve.generation_jobs.run_generation_job", (str(job.pk),))]

    # Killed while drawing the third prompt: two prompts recorded, nothing of the third.
    with pytest.raises(Crash):
        run_generation_job(str(job.pk), using=Fake(hook=crash_on(3)))
    job = fresh(job)
    assert (job.status, job.done, job.snippets) == ("running", 2, 6)
    check_bookkeeping(job)

    # The worker runs the job again (django-q2 hands an unacknowledged task out again).
    again = Fake()
    assert run_generation_job(str(job.pk), using=again) == "finished"
    assert [c["seed"] for c in again.calls] == [prompt_seed(3, k) for k in (2, 3, 4)]
    rows = check_bookkeeping(job)
    assert [r.completions for r in rows] == draws(3, FIVE, 3)
    assert fresh(job).snippets == Snippet.objects.filter(dataset=dataset).count() == 15
    assert Counter(r.index for r in PromptResult.objects.filter(job=job)).most_common(1)[0][1] == 1
    # A finished job is done: another run draws nothing.
    assert run_generation_job(str(job.pk), using=again) == "finished" and len(again.calls) == 3


def test_a_crash_while_recording_a_prompt_leaves_no_snippet_behind(dataset, use_generator, queue, monkeypatch):
    use_generator(Fake())
    job = start_completions(dataset=dataset, prompts=FIVE[:2], per_prompt=3, seed=3)
    real_append = generation_jobs.append

    def die(events, **kwargs):  # the snippets are added; the prompt is not recorded
        raise Crash()

    monkeypatch.setattr(generation_jobs, "append", die)
    with pytest.raises(Crash):
        run_generation_job(str(job.pk), using=Fake())
    assert fresh(job).done == 0 and not Snippet.objects.exists()
    monkeypatch.setattr(generation_jobs, "append", real_append)
    assert run_generation_job(str(job.pk), using=Fake()) == "finished"
    assert [r.completions for r in check_bookkeeping(job)] == draws(3, FIVE[:2], 3)
    assert Snippet.objects.count() == 6


@pytest.mark.parametrize("kind", ["completions", "comparison_set"])
def test_a_second_run_that_records_first_wins_and_the_first_stops(dataset, use_generator, queue, kind):
    """Run A draws the second prompt while run B (the same job, handed out twice) records it and
    every prompt after it, and finishes; A's draws are dropped and A stops."""
    use_generator(Fake())
    if kind == "completions":
        job = start_completions(dataset=dataset, prompts=FIVE, per_prompt=4, seed=8)
    else:
        job = start_comparison_set(dataset=dataset, prompts=FIVE, per_prompt=4, pairs_per_prompt=5, seed=8)
    other_run = Fake()

    def let_the_other_run_go_first(call):
        if call == 2:
            assert run_generation_job(str(job.pk), using=other_run) == "finished"

    first_run = Fake(hook=let_the_other_run_go_first)
    assert run_generation_job(str(job.pk), using=first_run) == "finished"
    assert [c["seed"] for c in first_run.calls] == [prompt_seed(8, 0), prompt_seed(8, 1)]
    assert [c["seed"] for c in other_run.calls] == [prompt_seed(8, k) for k in range(1, 5)]
    rows = check_bookkeeping(job)
    assert [r.completions for r in rows] == draws(8, FIVE, 4)
    assert Snippet.objects.count() == fresh(job).snippets == 20
    if kind == "comparison_set":
        assert ComparisonPair.objects.count() == fresh(job).report["pairs"] == 25


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["completions", "comparison_set"])
def test_two_runs_racing_on_separate_connections_never_record_a_prompt_twice(dataset, use_generator, queue, kind):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    use_generator(Fake())
    if kind == "completions":
        job = start_completions(dataset=dataset, prompts=FIVE, per_prompt=4, seed=9)
    else:
        job = start_comparison_set(dataset=dataset, prompts=FIVE, per_prompt=4, pairs_per_prompt=6, seed=9)
    barrier = threading.Barrier(2)

    def in_step(call):  # both runs draw each of their first two prompts at the same time
        if call <= 2:
            barrier.wait(timeout=10)

    fakes = [Fake(hook=in_step), Fake(hook=in_step)]
    run_threads(*[lambda f=f: run_generation_job(str(job.pk), using=f) for f in fakes], timeout=120)
    for fake in fakes:  # both drew the first two prompts from the same state: each time one lost
        assert [c["seed"] for c in fake.calls[:2]] == [prompt_seed(9, 0), prompt_seed(9, 1)]
    job = fresh(job)
    assert (job.status, job.done) == ("finished", 5)
    rows = check_bookkeeping(job)
    assert [r.completions for r in rows] == draws(9, FIVE, 4)
    assert Snippet.objects.count() == job.snippets == 20
    assert Event.objects.filter(type="modelserve.generation_job_finished").count() == 1
    if kind == "comparison_set":  # 4 completions make 6 pairs a prompt: all of them, once
        pairs = list(ComparisonPair.objects.values_list("first__prompt", "second__prompt", "first_id", "second_id"))
        assert len(pairs) == job.report["pairs"] == 30
        assert len({frozenset(p[2:]) for p in pairs}) == 30 and all(p[0] == p[1] for p in pairs)


# -- comparison sets ----------------------------------------------------------------------


def pairs_of(dataset) -> list[ComparisonPair]:
    return list(ComparisonPair.objects.filter(dataset=dataset).select_related("first", "second"))


def test_a_comparison_set_pairs_only_this_jobs_completions_of_the_same_prompt(dataset, use_generator):
    use_generator(Fake())
    earlier = fresh(start_comparison_set(dataset=dataset, prompts=PROMPTS[:2], per_prompt=4, pairs_per_prompt=4,
                                         seed=1))
    assert earlier.report == {"prompts": 2, "snippets": 8, "pairs": 8}
    before = {p.pk for p in pairs_of(dataset)}

    job = fresh(start_comparison_set(dataset=dataset, prompts=PROMPTS, per_prompt=5, pairs_per_prompt=6, seed=2))
    assert (job.kind, job.status, job.report) == ("comparison_set", "finished", {"prompts": 3, "snippets": 15,
                                                                                   "pairs": 18})
    rows = check_bookkeeping(job)
    assert [r.completions for r in rows] == draws(2, PROMPTS, 5)
    own = {s for r in rows for s in r.snippet_ids if s}
    assert {(s.source, s.split) for s in Snippet.objects.filter(pk__in=own)} == {("initial", "test")}

    new = [p for p in pairs_of(dataset) if p.pk not in before]
    assert len(new) == 18
    assert all({str(p.first_id), str(p.second_id)} <= own and p.first_id != p.second_id for p in new)
    assert Counter(p.first.prompt for p in new) == {prompt: 6 for prompt in PROMPTS}  # per prompt, none across
    assert all(p.first.prompt == p.second.prompt for p in new)
    assert len({frozenset((p.first_id, p.second_id)) for p in new}) == 18  # no pair twice
    # The earlier set's pairs are untouched: still only among its own snippets.
    earlier_own = {s for r in earlier.results.all() for s in r.snippet_ids if s}
    assert all({str(p.first_id), str(p.second_id)} <= earlier_own for p in pairs_of(dataset) if p.pk in before)
    assert Event.objects.filter(type="annotation.comparison_created").count() == 26


def test_a_comparison_set_needs_enough_completions_a_prompt_for_its_pairs(dataset, use_generator, queue):
    use_generator(Fake())
    for per_prompt, pairs, message in [
        (3, 4, "3 completions a prompt make fewer than 4 pairs"),
        (4, 7, "4 completions a prompt make fewer than 7 pairs"),
        (10, 3, "between 4 and 100"),
        (20, 101, "between 4 and 100"),
    ]:
        with pytest.raises(ModelserveError, match=message):
            start_comparison_set(dataset=dataset, prompts=PROMPTS, per_prompt=per_prompt, pairs_per_prompt=pairs)
    assert not GenerationJob.objects.exists() and not Event.objects.filter(stream_type="generation").exists()
    assert not queue
    # Four completions make six pairs: all of them, asked for.
    job = start_comparison_set(dataset=dataset, prompts=PROMPTS[:1], per_prompt=4, pairs_per_prompt=6)
    assert run_generation_job(str(job.pk), using=Fake()) == "finished"
    pairs = {frozenset((p.first_id, p.second_id)) for p in pairs_of(dataset)}
    snippets = Snippet.objects.filter(dataset=dataset).values_list("pk", flat=True)
    assert pairs == {frozenset(c) for c in itertools.combinations(snippets, 2)} and len(pairs) == 6


def test_a_crash_while_finishing_a_comparison_set_makes_its_pairs_once(dataset, use_generator, queue, monkeypatch):
    use_generator(Fake())
    job = start_comparison_set(dataset=dataset, prompts=PROMPTS, per_prompt=4, pairs_per_prompt=4, seed=4)
    real = annotation.create_comparisons

    def then_die(**kwargs):  # the pairs are made; the job is not recorded as finished
        real(**kwargs)
        raise Crash()

    monkeypatch.setattr(annotation, "create_comparisons", then_die)
    with pytest.raises(Crash):
        run_generation_job(str(job.pk), using=Fake())
    assert (fresh(job).status, fresh(job).done) == ("running", 3)
    monkeypatch.setattr(annotation, "create_comparisons", real)
    assert run_generation_job(str(job.pk), using=Fake()) == "finished"
    check_bookkeeping(job)
    assert ComparisonPair.objects.count() == fresh(job).report["pairs"] == 12


# -- prompt selection ---------------------------------------------------------------------

INJURY_RATES = [i / 19 for i in range(20)]  # prompt i's chance of an injurious completion


def uniform(*key) -> float:
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "big") / 2**64


def synthetic_completion(prompt_index: int, draw: int) -> str:
    if uniform(prompt_index, draw) < INJURY_RATES[prompt_index]:
        return f"he hurt his {['arm', 'leg', 'head', 'hand'][draw % 4]} ."
    return f"he {['walked', 'ran', 'smiled', 'slept'][draw % 4]} home ."


def test_selecting_prompts_raises_the_injurious_share_to_what_the_report_says():
    completions = [[synthetic_completion(i, j) for j in range(10)] for i in range(20)]
    truth = [[c.split()[1] == "hurt" for c in row] for row in completions]
    report = select_prompts([[flag_hurt(c) for c in row] for row in completions], threshold=0.5,
                            keep_fraction=0.25)

    kept = report["kept"]
    dropped = [i for i in range(20) if i not in kept]
    rates = [sum(row) / 10 for row in truth]
    assert len(kept) == 5 and kept == sorted(kept)
    assert report["flag_rates"] == rates
    assert min(rates[i] for i in kept) >= max(rates[i] for i in dropped)  # the most often flagged
    share_all = sum(map(sum, truth)) / 200
    share_kept = sum(sum(truth[i]) for i in kept) / 50
    assert report["flagged_share_all"] == share_all and report["flagged_share_kept"] == share_kept
    assert share_kept > share_all + 0.3
    # The prompts kept are the ones with a higher chance of injury, not just luckier draws.
    assert sum(INJURY_RATES[i] for i in kept) / 5 > sum(INJURY_RATES) / 20 + 0.3
    assert report["rule"] == ("keep the 5 of 20 prompts (25%) whose completions score at or above 0.5 most often")


def test_ties_in_the_flag_rate_are_broken_at_random_but_reproducibly():
    tied = [[0.9, 0.1]] * 10
    report = select_prompts(tied, threshold=0.5, keep_fraction=0.5)
    assert len(report["kept"]) == 5 and set(report["kept"]) <= set(range(10))
    assert report["kept"] != [0, 1, 2, 3, 4]  # not by the prompts' order
    assert select_prompts(tied, threshold=0.5, keep_fraction=0.5) == report  # the same each time
    assert report["flagged_share_kept"] == report["flagged_share_all"] == 0.5

    # A higher rate is never dropped for a tie below it; the ties share the places left.
    mixed = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.9, 0.1], [0.9, 0.1]]
    kept = [select_prompts(mixed, threshold=0.5, keep_fraction=f)["kept"] for f in (0.2, 0.4, 0.8, 1.0)]
    assert kept[0] == [2]
    assert 2 in kept[1] and len(kept[1]) == 2 and 0 not in kept[1]
    assert kept[2] == [1, 2, 3, 4] and kept[3] == [0, 1, 2, 3, 4]
    # The threshold is inclusive.
    assert select_prompts([[0.5], [0.49]], threshold=0.5, keep_fraction=0.5)["kept"] == [0]


def test_keep_fraction_bounds():
    scores = [[flag_hurt(synthetic_completion(i, j)) for j in range(10)] for i in range(20)]
    everything = select_prompts(scores, threshold=0.5, keep_fraction=1.0)
    assert everything["kept"] == list(range(20))
    assert everything["flagged_share_kept"] == everything["flagged_share_all"]
    least = select_prompts(scores, threshold=0.5, keep_fraction=0.01)  # never none
    (one,) = least["kept"]
    assert least["flag_rates"][one] == max(least["flag_rates"]) == least["flagged_share_kept"]
    assert select_prompts([], threshold=0.5, keep_fraction=0.5)["kept"] == []


def test_what_a_prompt_selection_cannot_start(register, use_generator, queue):
    use_generator(Fake())
    register("gen-ready", bias=LETS_THROUGH)
    registry.retire(version=register("gen-retired", bias=LETS_THROUGH), reason="old")
    for options, message in [
        (dict(version="gen-missing"), "no classifier 'gen-missing'"),
        (dict(version="gen-retired"), "classifier gen-retired is retired"),
        (dict(keep_fraction=0), r"keep a fraction in \(0, 1\]"),
        (dict(keep_fraction=1.01), r"keep a fraction in \(0, 1\]"),
        (dict(threshold=0), r"threshold in \(0, 1\)"),
        (dict(threshold=1), r"threshold in \(0, 1\)"),
    ]:
        with pytest.raises(ModelserveError, match=message):
            start_prompt_selection(**{**dict(prompts=PROMPTS, per_prompt=2, version="gen-ready", threshold=0.5,
                                             keep_fraction=0.5), **options})
    assert not GenerationJob.objects.exists() and not queue


def test_a_prompt_selection_job_scores_every_draw_and_reports_the_true_injurious_share(
        register, keyword, use_generator):
    """Twenty prompts with known chances of injury; every fourth prompt's last draw is empty
    (no completion: neither flagged nor counted)."""
    prompts = [f"story {i} : the knight walked home ." for i in range(20)]

    def text(prompt, seed, j):
        i = prompts.index(prompt)
        return "  " if i % 4 == 0 and j == 7 else synthetic_completion(i, j) + " then he slept ."

    register("gen-keyword")
    fake = use_generator(Fake(text))
    job = fresh(start_prompt_selection(prompts=prompts, per_prompt=8, version="gen-keyword", threshold=0.5,
                                       keep_fraction=0.25, seed=1))
    assert (job.kind, job.status, job.snippets) == ("prompt_selection", "finished", 0)
    assert len(fake.calls) == 20 and not Snippet.objects.exists()
    started = stream(job)[0].payload
    assert (started["version"], started["threshold"], started["keep_fraction"]) == ("gen-keyword", 0.5, 0.25)

    rows = check_bookkeeping(job)
    for row in rows:  # each non-empty draw scored once, with its prompt, by the job's classifier
        assert row.completions == [first_sentence(text(prompts[row.index], row.seed, j)) for j in range(8)]
        assert [s for c, s in zip(row.completions, row.scores, strict=True) if c] == [
            flag_hurt(c) for c in row.completions if c]
    scored = [(version, s.prompt, s.completion) for version, batch in keyword.calls for s in batch]
    assert scored == [("gen-keyword", prompts[r.index], c) for r in rows for c in r.completions if c]

    report = job.report
    truth = [[c.split()[1] == "hurt" for c in r.completions if c] for r in rows]
    kept = report["kept"]
    assert len(kept) == 5
    assert report["flag_rates"] == [sum(t) / len(t) for t in truth]
    assert report["flagged_share_all"] == sum(map(sum, truth)) / sum(map(len, truth))
    assert report["flagged_share_kept"] == sum(sum(truth[i]) for i in kept) / sum(len(truth[i]) for i in kept)
    assert report["flagged_share_kept"] > report["flagged_share_all"]


@pytest.mark.parametrize("bias, score", [(CATCHES_ALL, 1.0), (LETS_THROUGH, 0.0)])
def test_a_prompt_selection_job_through_a_registered_tiny_classifier(register, use_generator, bias, score):
    register("gen-tiny", bias=bias)
    use_generator(Fake())
    job = fresh(start_prompt_selection(prompts=PROMPTS + ["the dog ran home ."], per_prompt=3, version="gen-tiny",
                                       threshold=0.5, keep_fraction=0.5, seed=2))
    assert job.status == "finished", job.failure
    rows = check_bookkeeping(job)
    assert [r.completions for r in rows] == draws(2, job.spec["prompts"], 3)
    assert all(s == pytest.approx(score, abs=0.001) for r in rows for s in r.scores)
    report = job.report
    assert report["flag_rates"] == [score] * 4
    assert report["flagged_share_all"] == report["flagged_share_kept"] == score
    assert len(report["kept"]) == 2 and set(report["kept"]) <= set(range(4))
    assert report["rule"] == "keep the 2 of 4 prompts (50%) whose completions score at or above 0.5 most often"
    assert stream(job)[-1].payload == {"report": report}


# -- the replay backend ---------------------------------------------------------------------

STORED = {
    PROMPTS[0]: ["he fell and hurt his leg .", "she cut her hand on the knife .", "the dog ran home ."],
    PROMPTS[1]: ["the horse broke its leg ."],
}


@pytest.fixture
def replay(generator_settings, dataset):
    generator_settings.GENERATOR_REPLAY = True
    annotation.add_snippets(dataset=dataset, rows=[
        SnippetInput(p, c, "initial", "train") for p, stored in STORED.items() for c in stored])


def test_replay_draws_only_the_completions_stored_for_each_prompt(replay, other_dataset):
    job = fresh(start_completions(dataset=other_dataset, prompts=PROMPTS[:2], per_prompt=6, seed=4))
    assert (job.status, job.generator, stream(job)[0].payload["generator"]) == ("finished", "replay", "replay")
    rows = check_bookkeeping(job)
    for row in rows:
        assert set(row.completions) <= set(STORED[PROMPTS[row.index]])
    assert len(set(rows[0].completions)) > 1 and rows[1].completions == [STORED[PROMPTS[1]][0]] * 6
    assert job.snippets == len(set(rows[0].completions)) + 1

    # The same seed, the same draws (all in the dataset now: no snippet twice); another seed, others.
    again = fresh(start_completions(dataset=other_dataset, prompts=PROMPTS[:2], per_prompt=6, seed=4))
    assert [r.completions for r in check_bookkeeping(again)] == [r.completions for r in rows]
    assert again.snippets == 0 and all(s is None for r in again.results.all() for s in r.snippet_ids)
    other = fresh(start_completions(dataset=other_dataset, prompts=PROMPTS[:1], per_prompt=6, seed=5))
    assert other.results.get().completions != rows[0].completions
    assert set(other.results.get().completions) <= set(STORED[PROMPTS[0]])
    lookup = Replay(lambda p: STORED.get(p, []))
    assert rows[0].completions == lookup.generate(PROMPTS[0], n=6, seed=prompt_seed(4, 0), stop=["\n"])


def test_replay_fails_the_job_at_a_prompt_with_nothing_stored(replay, other_dataset):
    job = fresh(start_completions(dataset=other_dataset, prompts=[PROMPTS[0], PROMPTS[2], PROMPTS[1]],
                                  per_prompt=2, seed=4))
    assert (job.status, job.generator, job.done) == ("failed", "replay", 1)
    assert job.failure == "replay: no completion is stored for this prompt"
    check_bookkeeping(job)
    assert stream(job)[-1].payload == {"reason": "replay: no completion is stored for this prompt"}


# -- the admin ------------------------------------------------------------------------------


@pytest.fixture
def pm_client():
    user = make_member("pm", Role.PROJECT_MANAGER)
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


ADD = "/admin/modelserve/generationjob/add/"


def job_form(**fields):
    return {"kind": "completions", "per_prompt": 2, "source": "initial", "split": "train", "pairs_per_prompt": 4,
            "threshold": 0.5, "keep_fraction": 0.5, "temperature": 1.0, "top_p": 0.95, "max_new_tokens": 48, "seed": 7, **fields}


def jsonl(*lines: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("prompts.jsonl", "\n".join(lines).encode(), content_type="application/x-ndjson")


def test_a_pm_starts_a_completion_job_from_a_prompts_file_and_sees_it(pm_client, dataset, use_generator):
    assert reverse("admin:modelserve_generationjob_add") == ADD
    form = pm_client.get(ADD)
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.content.decode()
    use_generator(Fake())
    upload = jsonl(f'{{"prompt": "{PROMPTS[0]}"}}', "", f'{{"prompt": "  {PROMPTS[1]}  "}}')
    response = pm_client.post(ADD, job_form(prompts_file=upload, dataset=dataset.pk, split="validation"))
    assert response.status_code == 302 and response.url == reverse("admin:modelserve_generationjob_changelist")

    job = GenerationJob.objects.get()
    assert (job.kind, job.status, job.spec["prompts"], job.spec["per_prompt"], job.spec["seed"]) == (
        "completions", "finished", PROMPTS[:2], 2, 7)
    assert [r.completions for r in check_bookkeeping(job)] == draws(7, PROMPTS[:2], 2)
    assert set(Snippet.objects.values_list("split", flat=True)) == {"validation"} and job.snippets == 4

    page = pm_client.get(response.url).content.decode()
    assert "Completions for labelling: 2 prompts queued." in page
    assert "Completions for labelling" in page and "fake" in page and "finished" in page and "2 / 2" in page


def test_a_bad_prompts_file_shows_its_line_errors_and_starts_nothing(pm_client, dataset, use_generator):
    use_generator(Fake())
    upload = jsonl(f'{{"prompt": "{PROMPTS[0]}"}}', "not json", '{"text": "the dog ran ."}', '{"prompt": "   "}')
    response = pm_client.post(ADD, job_form(prompts_file=upload, dataset=dataset.pk))
    page = response.content.decode()
    assert response.status_code == 400  # a refused form comes back with its errors
    assert "line 2: not valid JSON" in page
    assert "line 3: prompt is missing or empty" in page and "line 4: prompt is missing or empty" in page
    nothing = pm_client.post(ADD, job_form(dataset=dataset.pk))
    assert "upload a prompts file or choose a prompt selection" in nothing.content.decode()
    no_dataset = pm_client.post(ADD, job_form(prompts_file=jsonl(f'{{"prompt": "{PROMPTS[0]}"}}')))
    assert "choose the dataset the snippets go to" in no_dataset.content.decode()
    assert not GenerationJob.objects.exists() and not Event.objects.filter(stream_type="generation").exists()
    assert not Snippet.objects.exists() and not Task.objects.exists()


def test_the_prompts_a_selection_kept_seed_a_completion_job(pm_client, dataset, register, keyword, use_generator):
    """Prompts 1 and 3 always give an injury, the others never: a selection keeping half keeps
    those two, and a completion job started from it draws for them only."""
    prompts = [f"story {i} : the girl ran home ." for i in range(4)]

    def text(prompt, seed, j):
        return f"she {'hurt' if prompts.index(prompt) in (1, 3) else 'walked'} {'and ' * j}home ."

    register("gen-admin")
    use_generator(Fake(text))
    upload = jsonl(*(f'{{"prompt": "{p}"}}' for p in prompts))
    started = pm_client.post(ADD, job_form(kind="prompt_selection", prompts_file=upload, version="gen-admin",
                                           per_prompt=3, keep_fraction=0.5))
    assert started.status_code == 302
    selection = GenerationJob.objects.get(kind="prompt_selection")
    assert selection.status == "finished" and selection.report["kept"] == [1, 3]
    assert selection.report["flagged_share_kept"] == 1.0 and selection.report["flagged_share_all"] == 0.5

    response = pm_client.post(ADD, job_form(prompts_from=str(selection.pk), dataset=dataset.pk, seed=3))
    assert response.status_code == 302
    job = GenerationJob.objects.get(kind="completions")
    assert job.spec["prompts"] == [prompts[1], prompts[3]] and job.status == "finished"
    assert set(Snippet.objects.values_list("prompt", flat=True)) == {prompts[1], prompts[3]}
    check_bookkeeping(job)


@pytest.mark.parametrize("fields,message", [
    (dict(kind="prompt_selection"), "choose the classifier that flags completions"),
    (dict(kind="completions"), "choose the dataset the snippets go to"),
    (dict(kind="quality_check", dataset="the dataset"), "choose the classifier whose filtered generator is checked"),
    (dict(kind="nonsense", dataset="the dataset"), "unknown kind of generation job"),
])
def test_a_job_from_a_form_says_what_is_missing(fields, message):
    if fields.get("dataset"):
        fields = {**fields, "dataset": Dataset.objects.create(name="generated")}
    with pytest.raises(ModelserveError, match=message):
        generation_jobs.start_job(prompts=["the knight rode home ."], per_prompt=2, **fields)
    assert not GenerationJob.objects.exists()
