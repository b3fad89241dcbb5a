"""Pairwise quality comparisons, egregiousness ratings and agreement statistics."""

import pytest

from annotation import selectors, services
from annotation.errors import InvalidAnswer
from annotation.models import Assignment, ComparisonPair, Dataset, Snippet, WorkItem
from annotation.services import SnippetInput, next_task, submit_label
from eventlog.reading import read
from tests.annotation.conftest import add_snippets

pytestmark = pytest.mark.django_db


@pytest.fixture
def completions(dataset):
    rows = [SnippetInput("The knight rode on.", f"Ending {i}.", "initial", "train", i) for i in range(5)]
    rows += [SnippetInput("A quiet morning.", f"Other {i}.", "initial", "train", 10 + i) for i in range(2)]
    services.import_snippets(dataset=dataset, rows=rows, filename="c.jsonl")
    return rows


def test_comparison_pairs_per_prompt_are_distinct_and_bounded(dataset, completions):
    with pytest.raises(InvalidAnswer):
        services.create_comparisons(dataset=dataset, pairs_per_prompt=3)
    created = services.create_comparisons(dataset=dataset, pairs_per_prompt=4, seed=1)
    assert created == 4 + 1  # 4 of the 10 pairs of the first prompt, the only pair of the second
    pairs = {frozenset((p.first_id, p.second_id)) for p in ComparisonPair.objects.all()}
    assert len(pairs) == 5
    for pair in ComparisonPair.objects.select_related("first", "second"):
        assert pair.first.prompt == pair.second.prompt


def test_comparison_order_is_randomised_recorded_and_choice_stored_in_pair_order(dataset, completions, contractors):
    services.create_comparisons(dataset=dataset, pairs_per_prompt=10, seed=2)
    swaps = []
    for user in contractors:
        while (task := next_task(user=user, dataset=dataset, kind="comparison")) is not None:
            services.submit_comparison(user=user, task_id=task.task_id, choice="first")
            swaps.append(task.swapped)
            stored = Assignment.objects.get(pk=task.pk)
            assert stored.answer == ("second" if task.swapped else "first")
    assert len(swaps) == 11 and any(swaps) and not all(swaps)
    served = read(types=["annotation.task_served"])
    assert [e.payload["swapped"] for e in served] == swaps
    assert not WorkItem.objects.filter(kind="comparison", status="open").exists()


def test_ratings_are_one_to_ten_and_blind(dataset, contractors):
    services.add_snippet(
        dataset=dataset,
        snippet=SnippetInput("He sharpened the axe.", "The axe slipped and cut off his hand.", "tool_assisted", "train"),
        author_id=contractors[0].pk,
    )
    snippet = Snippet.objects.get()
    assert services.request_ratings(dataset=dataset, snippet_ids=[snippet.pk], ratings_required=2) == 1
    assert services.request_ratings(dataset=dataset, snippet_ids=[snippet.pk]) == 0  # once only
    assert next_task(user=contractors[0], dataset=dataset, kind="rating") is None  # its author
    task = next_task(user=contractors[1], dataset=dataset, kind="rating")
    for bad in (0, 11, "7"):
        with pytest.raises(InvalidAnswer):
            services.submit_rating(user=contractors[1], task_id=task.task_id, rating=bad)
    services.submit_rating(user=contractors[1], task_id=task.task_id, rating=9)
    task = next_task(user=contractors[2], dataset=dataset, kind="rating")
    services.submit_rating(user=contractors[2], task_id=task.task_id, rating=7)
    item = WorkItem.objects.get(kind="rating")
    assert item.status == "settled"
    assert sorted(Assignment.objects.filter(work_item=item).values_list("answer", flat=True)) == ["7", "9"]


def test_ratings_refuse_snippets_of_another_dataset(dataset):
    other = Dataset.objects.create(name="other")
    add_snippets(other, 1)
    with pytest.raises(InvalidAnswer, match="not in"):
        services.request_ratings(dataset=dataset, snippet_ids=[Snippet.objects.get().pk])


def test_agreement_statistics_against_a_hand_computation(dataset, contractors, pm):
    add_snippets(dataset, 4)
    a, b, c, _ = contractors
    plan = {a: ["injurious", "injurious", "not_injurious", "injurious"],
            b: ["injurious", "not_injurious", "not_injurious", "injurious"]}
    order = list(WorkItem.objects.order_by("created_position").values_list("subject_id", flat=True))
    for user, labels in plan.items():
        while (task := next_task(user=user, dataset=dataset)) is not None:
            label = labels[order.index(task.work_item.subject_id)]
            submit_label(user=user, task_id=task.task_id, label=label)
    # snippet 2 disagreed: c breaks the tie with "not_injurious"
    task = next_task(user=c, dataset=dataset)
    submit_label(user=c, task_id=task.task_id, label="not_injurious")

    stats = selectors.agreement(dataset, pm)
    assert stats.items == 4
    # pairs: s1 agree; s2 (a,b) no, (a,c) no, (b,c) yes; s3 agree; s4 agree -> 4 of 6
    assert stats.pairwise_agreement == pytest.approx(4 / 6)
    # first vs second labels: I/I, I/N, N/N, I/I -> po = 3/4, pe = (3/4*2/4 + 1/4*2/4) = 1/2
    assert stats.cohen_kappa == pytest.approx((0.75 - 0.5) / (1 - 0.5))
    rows = {row.username: row for row in stats.labellers}
    assert rows["c0"].agreement_with_consensus == pytest.approx(3 / 4)  # a said injurious on s2
    assert rows["c1"].agreement_with_consensus == 1.0
    assert rows["c2"].labels == 1
    assert stats.krippendorff_alpha is not None and 0 < stats.krippendorff_alpha < 1


def test_agreement_rows_are_scoped_to_the_viewer(dataset, contractors, other_vendor):
    from tests.annotation.conftest import make_member

    add_snippets(dataset, 1)
    outsider = make_member("o1", "contractor", other_vendor)
    for user in (contractors[0], outsider):
        task = next_task(user=user, dataset=dataset)
        submit_label(user=user, task_id=task.task_id, label="injurious")
    manager = make_member("vm", "vendor_manager", other_vendor)
    assert [row.username for row in selectors.agreement(dataset, manager).labellers] == ["o1"]
    assert [row.username for row in selectors.agreement(dataset, contractors[0]).labellers] == ["c0"]
