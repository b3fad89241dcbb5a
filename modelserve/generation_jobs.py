"""Generation jobs (django-q2): completions for labelling, quality-comparison sets, prompt selection.

A job draws `per_prompt` completions for each of its prompts, one generator call a prompt,
seeded from the job's seed and the prompt's index so a draw can be reproduced where the
backend allows. Each prompt's draws are one `prompt_completed` event, appended with the
snippets they create, at the job stream's version they were drawn from: a job that crashed,
or runs twice, resumes after its last recorded prompt and records none twice.

- completions: each draw becomes a snippet for labelling (how initial training data and the
  in-distribution test set are made);
- comparison_set: i.i.d. draws become snippets, then pairs of them per prompt become
  comparison tasks (the input of threshold selection);
- prompt_selection: each draw is scored; prompts whose draws the classifier flags most often
  are kept, and the report says what that does to the share of flagged completions.
"""

import hashlib
import logging
import random
from uuid import UUID

from django.db import IntegrityError, transaction
from django_q.tasks import async_task
from uuid_utils.compat import uuid7

from annotation import services as annotation_services
from annotation.errors import AnnotationError
from annotation.models import Dataset, Source, Split
from eventlog.errors import ConcurrencyConflict
from eventlog.projections import catch_up
from eventlog.store import NO_STREAM, NewEvent, append
from modelserve import filtering
from modelserve.errors import ModelserveError
from modelserve.events import (
    GenerationJobFailed,
    GenerationJobFinished,
    GenerationJobStarted,
    GenerationParams,
    PromptCompleted,
    generation_stream,
)
from modelserve.generation import Generator, draw, first_sentence
from modelserve.interface import SnippetText, generator, generator_name, inference
from modelserve.models import GenerationJob
from modelserve.selectors import ready_classifier
from modelserve.types import InvalidInput

logger = logging.getLogger(__name__)

DEFAULT_PARAMS = GenerationParams(temperature=1.0, max_new_tokens=48)





def _clean_prompts(prompts: list[str]) -> list[str]:
    cleaned = [p.strip() for p in prompts if p and p.strip()]
    if not cleaned:
        raise ModelserveError("give at least one prompt")
    if len(cleaned) > 10_000:
        raise ModelserveError("at most 10,000 prompts a job")
    return cleaned


def _start(**fields) -> GenerationJob:
    job_id = uuid7()
    started = GenerationJobStarted(job_id=job_id, generator=generator_name(), **fields)
    with transaction.atomic():
        append([NewEvent(generation_stream(job_id), started)], expected={generation_stream(job_id): NO_STREAM})
        # Enqueued in the same transaction (ORM broker): no job without its record, or the reverse.
        async_task("modelserve.generation_jobs.run_generation_job", str(job_id), task_name=f"generation {job_id}")
    return GenerationJob.objects.get(pk=job_id)


def start_completions(
    *, dataset: Dataset, prompts: list[str], per_prompt: int, source: str = Source.INITIAL,
    split: str = Split.TRAIN, params: GenerationParams = DEFAULT_PARAMS, seed: int = 0,
) -> GenerationJob:
    if source not in Source.values or split not in Split.values:
        raise ModelserveError("unknown source or split")
    return _start(kind="completions", params=params, seed=seed, prompts=_clean_prompts(prompts),
                  per_prompt=per_prompt, dataset_id=dataset.pk, source=source, split=split)


def start_comparison_set(
    *, dataset: Dataset, prompts: list[str], per_prompt: int, pairs_per_prompt: int,
    params: GenerationParams = DEFAULT_PARAMS, seed: int = 0,
) -> GenerationJob:
    if not 4 <= pairs_per_prompt <= 100:
        raise ModelserveError("pairs per prompt must be between 4 and 100")
    if per_prompt * (per_prompt - 1) // 2 < pairs_per_prompt:
        raise ModelserveError(f"{per_prompt} completions a prompt make fewer than {pairs_per_prompt} pairs")
    return _start(kind="comparison_set", params=params, seed=seed, prompts=_clean_prompts(prompts),
                  per_prompt=per_prompt, dataset_id=dataset.pk, source=Source.INITIAL, split=Split.TEST,
                  pairs_per_prompt=pairs_per_prompt)


def start_prompt_selection(
    *, prompts: list[str], per_prompt: int, version: str, threshold: float, keep_fraction: float,
    params: GenerationParams = DEFAULT_PARAMS, seed: int = 0,
) -> GenerationJob:
    ready_classifier(version)
    if not 0 < keep_fraction <= 1 or not 0 < threshold < 1:
        raise ModelserveError("keep a fraction in (0, 1] of the prompts, with a threshold in (0, 1)")
    return _start(kind="prompt_selection", params=params, seed=seed, prompts=_clean_prompts(prompts),
                  per_prompt=per_prompt, version=version, threshold=threshold, keep_fraction=keep_fraction)


def start_quality_check(
    *, dataset: Dataset, prompts: list[str], version: str, threshold: float | None = None,
    params: GenerationParams = DEFAULT_PARAMS, seed: int = 0,
) -> GenerationJob:
    """The direct quality check: for each prompt, the filtered generator's completion (at the
    classifier's chosen threshold) and an unfiltered one, compared by labellers."""
    row = ready_classifier(version)
    threshold = threshold if threshold is not None else row.threshold
    if threshold is None:
        raise ModelserveError(f"no threshold is chosen for classifier {version}")
    return _start(kind="quality_check", params=params, seed=seed, prompts=_clean_prompts(prompts), per_prompt=2,
                  dataset_id=dataset.pk, source=Source.INITIAL, split=Split.TEST, pairs_per_prompt=4,
                  version=version, threshold=threshold)


def start_job(
    *, kind: str, prompts: list[str], per_prompt: int, params: GenerationParams = DEFAULT_PARAMS, seed: int = 0,
    dataset: Dataset | None = None, source: str = Source.INITIAL, split: str = Split.TRAIN,
    pairs_per_prompt: int | None = None, version: str | None = None, threshold: float | None = None,
    keep_fraction: float | None = None,
) -> GenerationJob:
    """A job of any kind from the fields a person fills in (the admin's form): says what is missing."""
    common = dict(prompts=prompts, per_prompt=per_prompt, params=params, seed=seed)
    if kind == GenerationJob.Kind.PROMPT_SELECTION:
        if not version:
            raise ModelserveError("choose the classifier that flags completions")
        return start_prompt_selection(version=version, threshold=threshold, keep_fraction=keep_fraction, **common)
    if dataset is None:
        raise ModelserveError("choose the dataset the snippets go to")
    if kind == GenerationJob.Kind.QUALITY_CHECK:
        if not version:
            raise ModelserveError("choose the classifier whose filtered generator is checked")
        return start_quality_check(dataset=dataset, version=version, prompts=prompts, params=params, seed=seed)
    if kind == GenerationJob.Kind.COMPARISON_SET:
        return start_comparison_set(dataset=dataset, pairs_per_prompt=pairs_per_prompt or 4, **common)
    if kind != GenerationJob.Kind.COMPLETIONS:
        raise ModelserveError(f"unknown kind of generation job {kind!r}")
    return start_completions(dataset=dataset, source=source, split=split, **common)


def prompt_seed(job_seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{job_seed}:{index}".encode()).digest()[:6], "big")


# -- the job --------------------------------------------------------------------------------


def run_generation_job(job_id: str, *, using: Generator | None = None) -> str:
    job = GenerationJob.objects.get(pk=job_id)
    spec = job.spec
    try:
        writer = using or generator()
        while True:
            job.refresh_from_db()
            if job.status != GenerationJob.Status.RUNNING:
                return job.status
            if job.done >= job.prompts:
                _finish_once(job)
                return GenerationJob.Status.FINISHED
            index = job.done
            seed = prompt_seed(spec["seed"], index)
            if job.kind == GenerationJob.Kind.QUALITY_CHECK:
                completions = _filtered_and_unfiltered(job, writer, spec["prompts"][index], seed)
            else:
                params = spec["params"]
                texts = draw(writer, spec["prompts"][index], n=spec["per_prompt"], seed=seed, stop=["\n"],
                             max_new_tokens=params["max_new_tokens"], temperature=params["temperature"],
                             top_p=params.get("top_p", 0.95))
                completions = [first_sentence(t) for t in texts]
            _record_prompt(job, index, seed, completions)
    except (ModelserveError, InvalidInput, AnnotationError, ValueError) as exc:
        logger.warning("generation job %s failed: %s", job_id, exc)
        _append(job, GenerationJobFailed(reason=str(exc)[:2000]))
        return GenerationJob.Status.FAILED


def _filtered_and_unfiltered(job: GenerationJob, writer: Generator, prompt: str, seed: int) -> list[str]:
    """The direct quality check's two completions of a prompt: the filtered generator's (empty
    when it found none in 100 draws: a loss) and one unfiltered draw."""
    spec = job.spec
    params = GenerationParams(**spec["params"])
    filtered = filtering.filtered_completion(prompt, version=spec["version"], threshold=spec["threshold"],
                                             seed=seed, params=params, using=writer)
    [unfiltered] = draw(writer, prompt, n=1, seed=seed + 10**9, stop=["\n"], max_new_tokens=params.max_new_tokens,
                        temperature=params.temperature, top_p=params.top_p)
    return [filtered.completion or "", first_sentence(unfiltered)]


def _append(job: GenerationJob, payload) -> None:
    try:
        append([NewEvent(generation_stream(job.pk), payload)], expected={generation_stream(job.pk): job.stream_version})
    except ConcurrencyConflict:  # another run of this job moved it on
        catch_up("modelserve.generation")


def _record_prompt(job: GenerationJob, index: int, seed: int, completions: list[str]) -> None:
    spec = job.spec
    prompt = spec["prompts"][index]
    scores, snippet_ids = [], []
    if job.kind == GenerationJob.Kind.PROMPT_SELECTION:
        scorable = [c for c in completions if c]
        found = iter(inference().score(spec["version"], [SnippetText(prompt, c) for c in scorable]) if scorable else [])
        scores = [next(found) if c else 1.0 for c in completions]  # an empty draw: a placeholder, never counted
    try:
        with transaction.atomic():
            if job.kind != GenerationJob.Kind.PROMPT_SELECTION:
                snippet_ids = _add_snippets(job, prompt, completions)
            event = PromptCompleted(index=index, seed=seed, completions=completions, snippet_ids=snippet_ids,
                                    scores=scores)
            append([NewEvent(generation_stream(job.pk), event)], expected={generation_stream(job.pk): job.stream_version})
    except (ConcurrencyConflict, IntegrityError):  # another run recorded this prompt (and its snippets) first
        catch_up("modelserve.generation", "annotation.work")


def _add_snippets(job: GenerationJob, prompt: str, completions: list[str]) -> list[UUID | None]:
    spec = job.spec
    dataset = Dataset.objects.get(pk=spec["dataset_id"])
    rows = [annotation_services.SnippetInput(prompt, c, spec["source"], spec["split"]) for c in completions if c]
    created = iter(annotation_services.add_snippets(dataset=dataset, rows=rows))
    return [next(created) if c else None for c in completions]


def _finish_once(job: GenerationJob) -> None:
    """The report's work (a comparison set's pairs) and the finished event commit together: a
    run that crashes in between, or a second run finishing the job too, leaves no pairs behind."""
    try:
        with transaction.atomic():
            report = _finish(job)
            append([NewEvent(generation_stream(job.pk), GenerationJobFinished(report=report))],
                   expected={generation_stream(job.pk): job.stream_version})
    except ConcurrencyConflict:  # another run finished it first
        catch_up("modelserve.generation", "annotation.work")


def _finish(job: GenerationJob) -> dict:
    results = list(job.results.all())
    if job.kind == GenerationJob.Kind.PROMPT_SELECTION:
        # An empty draw is no completion: neither flagged nor counted (its stored score is a placeholder).
        scores = [[s for s, c in zip(r.scores, r.completions, strict=True) if c] for r in results]
        return select_prompts(scores, threshold=job.spec["threshold"], keep_fraction=job.spec["keep_fraction"])
    report = {"prompts": len(results), "snippets": sum(1 for r in results for s in r.snippet_ids if s)}
    if job.kind in (GenerationJob.Kind.COMPARISON_SET, GenerationJob.Kind.QUALITY_CHECK):
        ids = {UUID(s) for r in results for s in r.snippet_ids if s}
        dataset = Dataset.objects.get(pk=job.spec["dataset_id"])
        report["pairs"] = annotation_services.create_comparisons(
            dataset=dataset, pairs_per_prompt=job.spec["pairs_per_prompt"], seed=job.spec["seed"], snippet_ids=ids)
    if job.kind == GenerationJob.Kind.QUALITY_CHECK:
        report["filter_failures"] = sum(1 for r in results if not r.completions[0])
    return report


def select_prompts(scores_per_prompt: list[list[float]], *, threshold: float, keep_fraction: float) -> dict:
    """Keep the prompts whose draws the classifier flags most often (score >= threshold).

    Ties in the flag rate are broken at random with a fixed seed, so the choice does not lean
    on the prompts' order. The report gives the rule, the kept prompts' indexes, and the share
    of flagged draws over all prompts and over the kept ones.
    """
    rates = [sum(s >= threshold for s in scores) / len(scores) if scores else 0.0 for scores in scores_per_prompt]
    keep = max(1, round(keep_fraction * len(rates))) if rates else 0
    tie_break = random.Random(0)
    order = sorted(range(len(rates)), key=lambda i: (-rates[i], tie_break.random()))
    kept = sorted(order[:keep])

    def share(indexes):
        draws = [s for i in indexes for s in scores_per_prompt[i]]
        return sum(s >= threshold for s in draws) / len(draws) if draws else 0.0

    return {
        "rule": f"keep the {keep} of {len(rates)} prompts ({keep_fraction:.0%}) whose completions score at or above "
                f"{threshold:g} most often",
        "kept": kept,
        "flag_rates": rates,
        "flagged_share_all": share(range(len(rates))),
        "flagged_share_kept": share(kept),
    }
