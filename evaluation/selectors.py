"""What evaluations read: labelled comparisons, labelled test snippets, attack effort,
successful attacks and their egregiousness ratings, and scores (computed once, recorded).

Read-only over the other apps' read models; scores come through `modelserve.scoring`.
"""

from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID

import numpy as np
from django.db.models import Q

from annotation.models import Assignment, ComparisonPair, Dataset, Snippet, Source, Split, TaskKind, WorkItem
from attacks import selectors as attack_selectors
from attacks.models import Campaign, Effort
from evaluation.errors import EvaluationError
from evaluation.preference import ComparisonData
from modelserve.models import GenerationJob, PromptResult
from modelserve.scoring import scores_for

WIN_VALUE = {"first": 1.0, "same": 0.5, "second": 0.0}


def scores(version: str, snippet_ids) -> dict[UUID, float]:
    rows = Snippet.objects.filter(pk__in=list(snippet_ids)).values_list("id", "prompt", "completion")
    return scores_for(version, {sid: (prompt, completion) for sid, prompt, completion in rows})


@dataclass(frozen=True)
class Comparisons:
    data: ComparisonData
    snippet_ids: list[UUID]  # completion index -> snippet
    judgements: int


#: snippets that can be draws of the unfiltered generator (the others were written by people)
UNFILTERED_SOURCES = (Source.INITIAL, Source.IN_DISTRIBUTION_TEST)


def _not_unfiltered_draws(dataset_id: int) -> set[UUID]:
    """Snippets of the dataset that are not i.i.d. draws of the unfiltered generator: written by
    people, or made by a direct quality check (its filtered completions and their opponents)."""
    made_by_checks = {
        UUID(sid) for ids in PromptResult.objects.filter(
            job__kind=GenerationJob.Kind.QUALITY_CHECK, job__spec__dataset_id=dataset_id,
        ).values_list("snippet_ids", flat=True) for sid in ids if sid
    }
    written = set(Snippet.objects.filter(dataset_id=dataset_id).exclude(source__in=UNFILTERED_SOURCES)
                  .values_list("id", flat=True))
    return made_by_checks | written


def comparisons(dataset_id: int, version: str) -> Comparisons:
    """Every snippet of the dataset that shares its prompt with a compared one, and every
    submitted comparison judgement, as arrays for `evaluation.preference`.

    Only a comparison set is accepted: judged pairs of i.i.d. draws of the unfiltered generator. A
    dataset holding other judged pairs (a direct quality check's, or of snippets people wrote) is
    refused, as is one with no judged pair."""
    name = Dataset.objects.filter(pk=dataset_id).values_list("name", flat=True).first()
    if name is None:
        raise EvaluationError(f"no dataset {dataset_id}")
    judged = list(
        Assignment.objects.filter(work_item__dataset_id=dataset_id, work_item__kind=TaskKind.COMPARISON,
                                  state=Assignment.State.SUBMITTED)
        .values_list("work_item__subject_id", "answer")
    )
    if not judged:
        raise EvaluationError(f"dataset {name!r} has no judged comparisons")
    pairs = dict(
        (pid, (first, second)) for pid, first, second in ComparisonPair.objects.filter(
            pk__in={pid for pid, _ in judged}).values_list("id", "first_id", "second_id")
    )
    others = _not_unfiltered_draws(dataset_id)
    if mixed := sum(1 for pair in pairs.values() if others.intersection(pair)):
        raise EvaluationError(
            f"dataset {name!r} is not a comparison set: {mixed} of its judged pairs are not two draws of the "
            "unfiltered generator (a direct quality check's, or snippets people wrote). Threshold selection needs "
            "a dataset holding a comparison set only.")
    prompts = Snippet.objects.filter(pk__in={s for pair in pairs.values() for s in pair}).values("prompt")
    snippets = list(
        Snippet.objects.filter(dataset_id=dataset_id, prompt__in=prompts).exclude(pk__in=others)
        .order_by("added_position").values_list("id", "prompt")
    )
    index = {sid: i for i, (sid, _) in enumerate(snippets)}
    prompt_index: dict[str, int] = {}
    prompt_of = np.array([prompt_index.setdefault(prompt, len(prompt_index)) for _, prompt in snippets], dtype=np.int64)
    by_id = scores(version, index)
    first, second, win = [], [], []
    for pair_id, answer in judged:
        a, b = pairs[pair_id]
        first.append(index[a])
        second.append(index[b])
        win.append(WIN_VALUE[answer])
    data = ComparisonData(
        prompt_of=prompt_of,
        score=np.array([by_id[sid] for sid, _ in snippets], dtype=np.float64),
        first=np.array(first, dtype=np.int64),
        second=np.array(second, dtype=np.int64),
        first_win=np.array(win, dtype=np.float64),
        n_prompts=len(prompt_index),
    )
    return Comparisons(data, [sid for sid, _ in snippets], len(judged))


def labelled_test_snippets(dataset_id: int) -> dict[UUID, str]:
    """Settled test-split snippets of the dataset and their final label (injurious, not injurious
    or unsure; what an unsure label counts as is the report's choice)."""
    rows = WorkItem.objects.filter(
        dataset_id=dataset_id, kind=TaskKind.LABEL, status=WorkItem.Status.SETTLED,
        subject_id__in=Snippet.objects.filter(dataset_id=dataset_id, split=Split.TEST).values("id"),
    ).values_list("subject_id", "final_label")
    return dict(rows)


@dataclass(frozen=True)
class EffortRows:
    seconds: np.ndarray  # per contractor-day
    successes: np.ndarray


def effort_by_version(campaigns: list[Campaign]) -> dict[str, EffortRows]:
    """Per classifier, the server-measured seconds and confirmed successes of each contractor-day."""
    successes: dict[tuple, int] = defaultdict(int)
    for sub in attack_selectors.submissions().filter(campaign__in=campaigns, success=True):
        successes[(sub.campaign_id, sub.user_id, sub.day, sub.version)] += 1
    rows: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for effort in Effort.objects.filter(campaign__in=campaigns).order_by("day", "user_id", "version", "campaign_id"):
        key = (effort.campaign_id, effort.user_id, effort.day, effort.version)
        rows[effort.version].append((effort.seconds, successes.get(key, 0)))
    return {
        version: EffortRows(np.array([s for s, _ in r], dtype=float), np.array([n for _, n in r], dtype=float))
        for version, r in rows.items()
    }


@dataclass(frozen=True)
class SuccessfulAttack:
    snippet_id: UUID
    campaign_threshold: float  # the threshold the tool accepted it under


def successful_attacks(campaigns: list[Campaign]) -> dict[str, list[SuccessfulAttack]]:
    """Snippets labelling confirmed injurious, grouped by the classifier they were written against."""
    found: dict[str, list[SuccessfulAttack]] = defaultdict(list)
    rows = attack_selectors.submissions().filter(campaign__in=campaigns, success=True).order_by("submitted_at")
    for version, snippet_id, threshold in rows.values_list("version", "snippet_id", "campaign__threshold"):
        found[version].append(SuccessfulAttack(snippet_id, threshold))
    return dict(found)


def ratings(snippet_ids: list[UUID]) -> list[tuple[UUID, int]]:
    """Every submitted egregiousness rating of these snippets (1 = not injurious ... 10), with its snippet."""
    return [
        (snippet_id, int(answer)) for snippet_id, answer in Assignment.objects.filter(
            work_item__kind=TaskKind.RATING, work_item__subject_id__in=snippet_ids, state=Assignment.State.SUBMITTED,
        ).order_by("work_item__subject_id", "pk").values_list("work_item__subject_id", "answer")
    ]


def tool_assisted_campaigns() -> list[Campaign]:
    return list(Campaign.objects.filter(kind=Campaign.Kind.TOOL_ASSISTED).order_by("opened_at"))



@dataclass(frozen=True)
class QualityCheck:
    version: str
    threshold: float
    prompts: int
    wins: np.ndarray  # the filtered completion's win value, per judged (or decided) prompt
    groups: np.ndarray  # its prompt
    failures: int  # prompts where the filtered generator found nothing: losses
    pending: int  # prompts whose comparison is not judged yet


def quality_check(job_id) -> QualityCheck:
    """Outcomes of a direct quality check job: per prompt, the filtered completion against the
    unfiltered one (a filter failure is a loss, identical texts a tie)."""
    job = GenerationJob.objects.get(pk=job_id, kind=GenerationJob.Kind.QUALITY_CHECK)
    results = list(job.results.all())
    filtered_ids = {r.snippet_ids[0]: r.index for r in results if r.snippet_ids and r.snippet_ids[0]}
    verdicts: dict[int, list[float]] = defaultdict(list)
    ids = list(filtered_ids)
    pair_ids = ComparisonPair.objects.filter(Q(first_id__in=ids) | Q(second_id__in=ids)).values("id")
    judged = Assignment.objects.filter(work_item__kind=TaskKind.COMPARISON, state=Assignment.State.SUBMITTED,
                                       work_item__subject_id__in=pair_ids)
    pairs = {p.pk: p for p in ComparisonPair.objects.filter(pk__in=pair_ids)}
    for subject_id, answer in judged.values_list("work_item__subject_id", "answer"):
        pair = pairs[subject_id]
        filtered_first = str(pair.first_id) in filtered_ids
        index = filtered_ids[str(pair.first_id if filtered_first else pair.second_id)]
        win = WIN_VALUE[answer]
        verdicts[index].append(win if filtered_first else 1 - win)
    wins, groups, failures, pending = [], [], 0, 0
    for r in results:
        filtered, unfiltered = r.completions
        if not filtered:
            failures += 1
            outcome = [0.0]
        elif filtered == unfiltered:
            outcome = [0.5]
        else:
            outcome = verdicts.get(r.index, [])
            pending += not outcome
        wins += outcome
        groups += [r.index] * len(outcome)
    return QualityCheck(job.spec["version"], job.spec["threshold"], len(results), np.array(wins, dtype=float),
                        np.array(groups, dtype=int), failures, pending)
