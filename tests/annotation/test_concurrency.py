"""Many contractors asking for work at the same instant, on separate connections."""

import threading
from collections import Counter

import pytest

from annotation.models import Assignment, Role
from annotation.services import next_task, submit_label
from tests.annotation.conftest import add_snippets, make_member
from tests.conftest import run_threads

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_concurrent_next_task_never_hands_out_a_slot_beyond_the_labels_needed(dataset, vendor):
    add_snippets(dataset, 5)  # 5 snippets x 2 labels = 10 slots
    people = [make_member(f"w{i}", Role.CONTRACTOR, vendor) for i in range(20)]
    barrier = threading.Barrier(len(people))
    served = []

    def ask(user):
        barrier.wait()
        task = next_task(user=user, dataset=dataset)
        if task is not None:
            served.append((user.pk, task.work_item.subject_id))

    run_threads(*[lambda u=u: ask(u) for u in people], timeout=120)

    per_snippet = Counter(subject for _, subject in served)
    assert all(count <= 2 for count in per_snippet.values()), per_snippet
    assert len(set(served)) == len(served)  # nobody holds the same snippet twice
    held = Assignment.objects.filter(state="held")
    assert held.count() == len(served)
    # Retries after lost races mean almost every slot is filled in one round.
    assert len(served) >= 6


def test_concurrent_labelling_settles_every_snippet_with_distinct_labellers(dataset, vendor):
    add_snippets(dataset, 6)
    people = [make_member(f"l{i}", Role.CONTRACTOR, vendor) for i in range(6)]

    def work(user):
        while (task := next_task(user=user, dataset=dataset)) is not None:
            submit_label(user=user, task_id=task.task_id, label="injurious")

    run_threads(*[lambda u=u: work(u) for u in people], timeout=120)
    rows = list(Assignment.objects.filter(state="submitted").values_list("work_item_id", "user_id"))
    assert len(rows) == 12 and len(set(rows)) == 12
    assert Counter(item for item, _ in rows) == {item: 2 for item, _ in rows}
