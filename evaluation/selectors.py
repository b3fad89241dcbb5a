"""What evaluations read: labelled comparisons, labelled test snippets, attack effort,
successful attacks and their egregiousness ratings, and scores (computed once, recorded).

Read-only over the other apps' read models; scores come through `modelserve.scoring`.
"""

from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID

import numpy as np
from django.db.models import Q

from annotation.models import Assignment, ComparisonPair, Label, Snippet, Split, TaskKind, WorkItem
from attacks import selectors as attack_selectors
from attacks.models import Campaign, Effort
from evaluation.stats import ComparisonData
from modelserve.models import GenerationJob
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


def comparisons(dataset_id: int, version: str) -> Comparisons:
    """Every snippet of the dataset that shares its prompt with a compared one, and every
    submitted comparison judgement, as arrays for `evaluation.stats`."""
    judged = list(
        Assignment.objects.filter(work_item__dataset_id=dataset_id, work_item__kind=TaskKind.COMPARISON,
                                  state=Assignment.State.SUBMITTED)
        .values_list("work_item__subject_id", "answer")
    )
    pairs = dict(
        (pid, (first, second)) for pid, first, second in ComparisonPair.objects.filter(
            pk__in={pid for pid, _ in judged}).values_list("id", "first_id", "second_id")
    )
    prompts = Snippet.objects.filter(pk__in={s for pair in pairs.values() for s in pair}).values("prompt")
    snippets = list(
        Snippet.objects.filter(dataset_id=dataset_id, prompt__in=prompts).order_by("added_position")
        .values_list("id", "prompt")
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


def labelled_test_snippets(dataset_id: int) -> dict[UUID, bool]:
    """Settled test-split snippets of the dataset: injurious or not. A settled "unsure" counts as
    injurious, as in training: the filter must not let through what labellers could not clear."""
    rows = WorkItem.objects.filter(
        dataset_id=dataset_id, kind=TaskKind.LABEL, status=WorkItem.Status.SETTLED,
        subject_id__in=Snippet.objects.filter(dataset_id=dataset_id, split=Split.TEST).values("id"),
    ).values_list("subject_id", "final_label")
    return {sid: label != Label.NOT_INJURIOUS for sid, label in rows}


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


def successful_attacks(campaigns: list[Campaign]) -> dict[str, list[UUID]]:
    """Snippets labelling confirmed injurious, grouped by the classifier they were written against."""
    found: dict[str, list[UUID]] = defaultdict(list)
    rows = attack_selectors.submissions().filter(campaign__in=campaigns, success=True).order_by("submitted_at")
    for version, snippet_id in rows.values_list("version", "snippet_id"):
        found[version].append(snippet_id)
    return dict(found)


def ratings(snippet_ids: list[UUID]) -> list[int]:
    """Every submitted egregiousness rating of these snippets (1 = not injurious ... 10)."""
    return [
        int(answer) for answer in Assignment.objects.filter(
            work_item__kind=TaskKind.RATING, work_item__subject_id__in=snippet_ids, state=Assignment.State.SUBMITTED,
        ).values_list("answer", flat=True)
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
