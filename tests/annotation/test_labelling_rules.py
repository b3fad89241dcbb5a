"""The labelling protocol: distinct labellers, tie-breaks, unsure, own attacks, expiry, timing."""

from collections import Counter, defaultdict
from datetime import timedelta
from uuid import uuid4

import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation import services
from annotation.errors import InvalidAnswer, QueueBusy, TaskGone, TaskNotFound
from annotation.events import TaskServed
from annotation.models import Assignment, Dataset, Snippet, WorkItem
from annotation.services import SnippetInput, next_task, submit_label
from eventlog import projections
from eventlog.reading import read
from eventlog.store import NewEvent, Stream, append
from tests.annotation.conftest import add_snippets

pytestmark = pytest.mark.django_db


def label_once(user, dataset, label):
    task = next_task(user=user, dataset=dataset)
    assert task is not None
    submit_label(user=user, task_id=task.task_id, label=label)
    return task.work_item.subject_id


def item_of(snippet_id):
    return WorkItem.objects.get(kind="label", subject_id=snippet_id)


def test_two_agreeing_labels_from_distinct_labellers_settle_the_snippet(dataset, contractors):
    add_snippets(dataset, 1)
    a, b, c = contractors[:3]
    snippet = label_once(a, dataset, "injurious")
    assert next_task(user=a, dataset=dataset) is None  # never the same snippet twice
    assert label_once(b, dataset, "injurious") == snippet

    item = item_of(snippet)
    assert (item.status, item.final_label, item.done, item.tie_break_opened) == ("settled", "injurious", 2, False)
    assert next_task(user=c, dataset=dataset) is None  # settled: nothing more to serve


def test_disagreement_opens_one_tie_break_for_a_third_labeller_and_majority_wins(dataset, contractors):
    add_snippets(dataset, 1)
    a, b, c, d = contractors
    snippet = label_once(a, dataset, "injurious")
    label_once(b, dataset, "not_injurious")
    item = item_of(snippet)
    assert (item.status, item.required, item.tie_break_opened) == ("open", 3, True)

    assert label_once(c, dataset, "not_injurious") == snippet
    item = item_of(snippet)
    assert (item.status, item.final_label, item.done) == ("settled", "not_injurious", 3)
    assert next_task(user=d, dataset=dataset) is None  # the tie-break closed on the third label


def test_tie_break_tasks_are_served_before_fresh_snippets(dataset, contractors, monkeypatch):
    add_snippets(dataset, 20)
    a, b, c = contractors[:3]
    monkeypatch.setattr(services, "CANDIDATES", 1)  # queue order: a and b get the oldest snippet
    first = label_once(a, dataset, "injurious")
    assert label_once(b, dataset, "not_injurious") == first
    monkeypatch.setattr(services, "CANDIDATES", 10)  # the random pick must still prefer the tie-break
    assert next_task(user=c, dataset=dataset).work_item.subject_id == first


def test_unsure_is_an_answer_of_its_own(dataset, contractors):
    add_snippets(dataset, 1)
    a, b, c, _ = contractors
    snippet = label_once(a, dataset, "injurious")
    label_once(b, dataset, "unsure")
    assert item_of(snippet).tie_break_opened
    label_once(c, dataset, "not_injurious")
    item = item_of(snippet)
    assert (item.status, item.final_label) == ("no_majority", "")


def test_unsure_is_refused_where_the_dataset_does_not_offer_it(contractors):
    strict = Dataset.objects.create(name="test set", offer_unsure=False)
    add_snippets(strict, 1)
    task = next_task(user=contractors[0], dataset=strict)
    with pytest.raises(InvalidAnswer, match="label must be one of"):
        submit_label(user=contractors[0], task_id=task.task_id, label="unsure")
    assert Assignment.objects.get(task_id=task.task_id).state == "held"


def test_without_tie_break_a_disagreement_is_disputed(contractors):
    plain = Dataset.objects.create(name="no tie-break", tie_break=False)
    add_snippets(plain, 1)
    snippet = label_once(contractors[0], plain, "injurious")
    label_once(contractors[1], plain, "not_injurious")
    assert (item_of(snippet).status, item_of(snippet).required) == ("disputed", 2)
    assert next_task(user=contractors[2], dataset=plain) is None


def test_an_attack_is_never_served_to_its_author(dataset, contractors):
    author, other = contractors[:2]
    services.add_snippet(
        dataset=dataset,
        snippet=SnippetInput("She climbed.", "She fell and broke her arm.", "manual_adversarial", "train"),
        author_id=author.pk,
    )
    assert next_task(user=author, dataset=dataset) is None
    assert next_task(user=other, dataset=dataset) is not None


def test_a_held_task_is_returned_again_not_a_second_one(dataset, contractors):
    add_snippets(dataset, 5)
    first = next_task(user=contractors[0], dataset=dataset)
    again = next_task(user=contractors[0], dataset=dataset)
    assert again.task_id == first.task_id
    assert Assignment.objects.filter(user=contractors[0]).count() == 1


def test_an_expired_hold_is_served_again_and_a_late_answer_only_counts_if_room_is_left(contractors):
    quick = Dataset.objects.create(name="quick", hold_seconds=60, labels_required=1)
    add_snippets(quick, 1)
    a, b = contractors[:2]
    held = next_task(user=a, dataset=quick)
    assert next_task(user=b, dataset=quick) is None  # the only slot is held

    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    reserved = next_task(user=b, dataset=quick)
    assert reserved is not None and reserved.work_item_id == held.work_item_id
    assert Assignment.objects.get(pk=held.pk).state == "expired"
    assert [e.payload["reason"] for e in read(types=["annotation.task_released"])] == ["expired"]

    with pytest.raises(TaskGone):
        submit_label(user=a, task_id=held.task_id, label="injurious")
    submit_label(user=b, task_id=reserved.task_id, label="not_injurious")
    assert item_of(held.work_item.subject_id).final_label == "not_injurious"


def test_a_late_answer_counts_when_the_slot_is_still_free(contractors):
    quick = Dataset.objects.create(name="quick", labels_required=1)
    add_snippets(quick, 1)
    held = next_task(user=contractors[0], dataset=quick)
    Assignment.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    services.expire_holds()
    submit_label(user=contractors[0], task_id=held.task_id, label="injurious")
    assert item_of(held.work_item.subject_id).final_label == "injurious"


def test_time_is_measured_by_the_server_from_serving_to_submission(dataset, contractors, monkeypatch):
    add_snippets(dataset, 1)
    task = next_task(user=contractors[0], dataset=dataset)
    later = task.served_at + timedelta(seconds=42.5)
    monkeypatch.setattr(services.timezone, "now", lambda: later)
    done = submit_label(user=contractors[0], task_id=task.task_id, label="injurious")
    assert done.seconds == pytest.approx(42.5)
    [submitted] = read(types=["annotation.label_submitted"])
    assert submitted.payload["seconds"] == pytest.approx(42.5)


def test_a_retried_submission_is_harmless_and_a_different_one_is_refused(dataset, contractors):
    add_snippets(dataset, 1)
    task = next_task(user=contractors[0], dataset=dataset)
    submit_label(user=contractors[0], task_id=task.task_id, label="injurious")
    submit_label(user=contractors[0], task_id=task.task_id, label="injurious")
    assert len(read(types=["annotation.label_submitted"])) == 1
    with pytest.raises(InvalidAnswer, match="already answered with another answer"):
        submit_label(user=contractors[0], task_id=task.task_id, label="not_injurious")


def test_nobody_answers_another_contractors_task(dataset, contractors):
    add_snippets(dataset, 1)
    task = next_task(user=contractors[0], dataset=dataset)
    with pytest.raises(TaskNotFound):
        submit_label(user=contractors[1], task_id=task.task_id, label="injurious")


def test_a_correction_is_a_new_event_and_moves_the_consensus(dataset, contractors):
    add_snippets(dataset, 1)
    a, b = contractors[:2]
    snippet = label_once(a, dataset, "injurious")
    label_once(b, dataset, "not_injurious")
    task = Assignment.objects.get(user=b)
    services.correct_label(user=b, task_id=task.task_id, label="injurious")
    item = item_of(snippet)
    assert (item.status, item.final_label) == ("settled", "injurious")
    types = [e.type for e in read(types=["annotation.label_submitted", "annotation.label_corrected"])]
    assert types == ["annotation.label_submitted", "annotation.label_submitted", "annotation.label_corrected"]


def test_events_a_writer_left_unapplied_are_applied_before_the_next_one_of_the_snippet(
    dataset, contractors, monkeypatch
):
    add_snippets(dataset, 1)
    a, b, c = contractors[:3]
    snippet = label_once(a, dataset, "injurious")
    label_once(b, dataset, "not_injurious")  # a tie-break is open
    with monkeypatch.context() as patched:  # c is served it; the writer stops before applying that
        patched.setattr(projections, "catch_up_streams", lambda *args, **kwargs: None)
        with pytest.raises(TaskNotFound):
            next_task(user=c, dataset=dataset)
    assert not Assignment.objects.filter(user=c).exists()

    # b's correction does not follow on from what the work item shows: the serve is applied first.
    services.correct_label(user=b, task_id=Assignment.objects.get(user=b).task_id, label="injurious")

    item = item_of(snippet)
    assert Assignment.objects.get(user=c).state == "held" and item.held == 1
    assert (item.status, item.final_label) == ("settled", "injurious")
    assert item.stream_version == max(e.version for e in read() if e.stream.id == str(snippet))


def test_a_serve_that_does_not_follow_on_is_applied_after_the_event_it_missed(dataset, contractors, monkeypatch):
    add_snippets(dataset, 1)
    a, b, c = contractors[:3]
    snippet = label_once(a, dataset, "injurious")
    label_once(b, dataset, "not_injurious")
    stream = Stream("snippet", str(snippet))
    with monkeypatch.context() as patched:  # b's correction is stored; its writer stops there
        patched.setattr(projections, "catch_up_streams", lambda *args, **kwargs: None)
        services.correct_label(user=b, task_id=Assignment.objects.get(user=b).task_id, label="injurious")
    task_id = uuid4()
    served = TaskServed(task_id=task_id, kind="label", subject_id=snippet, user_id=c.pk,
                        expires_at=(timezone.now() + timedelta(hours=1)).isoformat(), swapped=False)

    append([NewEvent(stream, served)])  # its writer finds the work item a version behind

    item = item_of(snippet)
    assert Assignment.objects.get(user=b).answer == "injurious"
    assert Assignment.objects.get(task_id=task_id).state == "held" and item.held == 1
    assert item.stream_version == max(e.version for e in read() if e.stream == stream)


def test_skipping_frees_the_slot_for_someone_else(contractors):
    single = Dataset.objects.create(name="single", labels_required=1)
    add_snippets(single, 1)
    task = next_task(user=contractors[0], dataset=single)
    services.release_task(user=contractors[0], task_id=task.task_id)
    assert next_task(user=contractors[0], dataset=single) is None  # not served back to the skipper
    assert next_task(user=contractors[1], dataset=single).work_item_id == task.work_item_id


def simulate(dataset, contractors, rounds, seed):
    import random

    rng = random.Random(seed)
    for _ in range(rounds):
        user = rng.choice(contractors)
        task = next_task(user=user, dataset=dataset)
        if task is None:
            continue
        action = rng.random()
        if action < 0.1:
            services.release_task(user=user, task_id=task.task_id)
        else:
            submit_label(user=user, task_id=task.task_id, label=rng.choice(["injurious", "not_injurious", "unsure"]))


def test_consensus_equals_a_recomputation_from_the_events(dataset, contractors, vendor):
    from tests.annotation.conftest import make_member

    people = contractors + [make_member(f"x{i}", "contractor", vendor) for i in range(4)]
    add_snippets(dataset, 12)
    simulate(dataset, people, 150, seed=3)

    # Independent recomputation: replay the log with the protocol written out longhand.
    labels = defaultdict(dict)  # snippet -> task -> label
    task_snippet = {}
    for event in read(types=["annotation.task_served", "annotation.label_submitted", "annotation.label_corrected"]):
        if event.type == "annotation.task_served":
            task_snippet[event.payload["task_id"]] = event.payload["subject_id"]
        else:
            labels[task_snippet[event.payload["task_id"]]][event.payload["task_id"]] = event.payload["label"]
    checked = 0
    for snippet_id, by_task in labels.items():
        votes = list(by_task.values())
        item = item_of(snippet_id)
        if len(votes) < 2:
            assert item.status == "open"
            continue
        top, count = Counter(votes).most_common(1)[0]
        if len(votes) == 2:
            expected = ("settled", top) if count == 2 else ("open", "")
        else:
            expected = ("settled", top) if count >= 2 else ("no_majority", "")
        assert (item.status, item.final_label) == expected, votes
        checked += 1
    assert checked >= 5


def test_rebuilding_the_projection_gives_the_same_queue_and_consensus(dataset, contractors):
    add_snippets(dataset, 8)
    simulate(dataset, contractors, 40, seed=5)

    def state():
        return (
            set(WorkItem.objects.values_list(
                "kind", "subject_id", "required", "done", "held", "status", "final_label", "stream_version")),
            set(Assignment.objects.values_list("task_id", "user_id", "state", "answer", "seconds")),
            set(Snippet.objects.values_list("id", "prompt", "completion")),
        )

    before = state()
    call_command("rebuild_projections", "annotation.work", stdout=open("/dev/null", "w"))
    assert state() == before


def test_when_every_serve_conflicts_the_contractor_is_told_to_retry_not_that_nothing_is_left(
    dataset, contractors, monkeypatch
):
    add_snippets(dataset, 3)
    tried = []

    def taken_meanwhile(user, dataset, kind, item, now, rng):
        tried.append(item.subject_id)  # and None: someone else's event came first

    monkeypatch.setattr(services, "_serve", taken_meanwhile)
    with pytest.raises(QueueBusy):
        next_task(user=contractors[0], dataset=dataset)
    assert len(tried) == services.ATTEMPTS * 3  # each list tried whole before it is read again
    assert len(set(tried[:3])) == 3
