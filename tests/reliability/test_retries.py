"""Retries after a dropped response: every write route, pages and API alike, takes an
Idempotency-Key; the same request sent again with it gets the first response back and writes
nothing; the same key with a different request is refused (422) and writes nothing.

The routes are read from the URL configuration, so a new route that writes fails here until
it is made idempotent (or shown to be a read)."""

import re
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from attacks import services as attacks
from eventlog.idempotency import IDEMPOTENT_VIEWS
from eventlog.models import Event
from tests.api.conftest import client_for
from tests.tiny_models import LETS_THROUGH

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
TEXT = {"prompt": "the knight walked home on the road .", "completion": "he fell and broke his arm ."}
OTHER_TEXT = {"prompt": "the knight rode home on the road .", "completion": "he fell and hurt his arm ."}

# Routes that record nothing, whatever the method (POST here only carries an input too big for a
# query string), and routes whose GET records an event that a repeated GET does not duplicate.
READS = {
    "home", "annotation:work_home", "annotation:oversee_home", "annotation:oversee_dataset",
    "attacks:attack_home", "evaluation:report", "evaluation:thresholds", "evaluation:data", "evaluation:table",
    "evaluation:figure", "api_schema", "api_docs", "api_progress", "api_agreement", "training_run",
    "evaluation_report", "dataset_export", "event_feed",
    "model_score", "model_saliency", "model_substitutions", "model_insertions", "model_edit_map",
}
GET_RECORDS_ONCE = {
    "annotation:task_page": "serves a task; asked again, it returns the task already held",
    "attacks:attack_page": "one attack session per page load; a session without activity adds no time",
}
OUTSIDE = ("admin/", "accounts/")  # Django's own: admin forms redirect after a post; login sets a session


def routes() -> dict[str, object]:
    """Route name (namespaced) -> view callback, for every route of the project but Django's own."""
    found = {}

    def walk(patterns, prefix, namespace):
        for entry in patterns:
            pattern = prefix + str(entry.pattern)
            if pattern.startswith(OUTSIDE):
                continue
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, pattern, ":".join(filter(None, [namespace, entry.namespace])))
            elif isinstance(entry, URLPattern):
                found[":".join(filter(None, [namespace, entry.name]))] = entry.callback

    walk(get_resolver().url_patterns, "", "")
    return found


def view_path(callback) -> str:
    view = getattr(callback, "cls", callback)  # a DRF function view is a generated class of its name
    return f"{view.__module__}.{view.__name__}"


def test_every_route_that_writes_takes_an_idempotency_key():
    unkeyed = [name for name, callback in routes().items()
               if name not in READS | set(GET_RECORDS_ONCE) and view_path(callback) not in IDEMPOTENT_VIEWS]
    assert not unkeyed, f"routes that write without taking an Idempotency-Key: {unkeyed}"
    keyed_reads = [name for name in READS if view_path(routes()[name]) in IDEMPOTENT_VIEWS]
    assert not keyed_reads, "listed as reads but idempotent: take them out of READS"


@dataclass
class Retry:
    first: object
    again: object
    written: int


def retried(send, body, other_body=None, *, key="key-1") -> Retry:
    """Send, send again with the same key (the client lost the first answer), then the same key
    with another body: the retry is the first response replayed, the reuse refused."""
    before = Event.objects.count()
    first = send(body, key)
    assert first.status_code < 400, first.content[:500]
    written = Event.objects.count() - before
    again = send(body, key)
    assert again.status_code == first.status_code
    assert body_of(again) == body_of(first)
    assert again["Idempotent-Replayed"] == "true"
    assert Event.objects.count() == before + written
    if other_body is not None:
        reused = send(other_body, key)
        assert reused.status_code == 422 and "different request" in reused.content.decode()
        assert Event.objects.count() == before + written
    return Retry(first, again, written)


def body_of(response):
    return response.json() if response.get("Content-Type", "").startswith("application/json") else response.content


def page_sender(client, path, **extra):
    return lambda body, key: client.post(path, body, HTTP_IDEMPOTENCY_KEY=key, **HTMX, **extra)


def api_sender(client, path):
    return lambda body, key: client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def events_of(type_) -> int:
    return Event.objects.filter(type=type_).count()


@pytest.fixture
def alice(world):
    client = Client()
    client.force_login(world.users["contractor"])
    return client


def test_a_label_answer_page_retried_is_one_label(world, alice):
    task = world.held["contractor"]
    retry = retried(page_sender(alice, reverse("annotation:answer", args=[task])),
                    {"answer": "injurious"}, {"answer": "not_injurious"})
    assert retry.written >= 1 and events_of("annotation.label_submitted") == 7  # 6 before: 3 snippets x 2
    assert "You have answered" in retry.again.content.decode()  # the next task, as first served


def test_a_form_posted_again_without_htmx_sends_its_key_as_a_field(world, alice):
    task = world.held["contractor"]
    page = alice.get(reverse("annotation:task_page", args=[world.dataset.pk, "label"])).content.decode()
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', page).group(1)
    path = reverse("annotation:answer", args=[task])
    first = alice.post(path, {"answer": "unsure", "idempotency_key": key})
    again = alice.post(path, {"answer": "unsure", "idempotency_key": key})
    assert first.status_code == again.status_code == 302 and again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert events_of("annotation.label_submitted") == 7


def test_skip_retried_releases_once(world, alice):
    task = world.held["contractor"]
    retried(page_sender(alice, reverse("annotation:skip", args=[task])), {})
    assert events_of("annotation.task_released") == 1


def test_asking_for_the_task_page_again_serves_no_second_task(world, alice):
    path = reverse("annotation:task_page", args=[world.dataset.pk, "label"])
    before = Event.objects.count()
    first, again = (set(re.findall(r"/work/task/[0-9a-f-]{36}/answer", alice.get(path).content.decode()))
                    for _ in "12")
    assert first == again == {reverse("annotation:answer", args=[world.held["contractor"]])}
    assert Event.objects.count() == before


@pytest.fixture
def attack_session(world, alice, register):
    register("lets-through", bias=LETS_THROUGH)
    campaign = attacks.open_campaign(name="Rewrite", kind="tool_assisted", dataset=world.dataset,
                                     target_version="lets-through")
    page = alice.get(reverse("attacks:attack_page", args=[campaign.pk])).content.decode()
    return re.search(r"/attack/session/([0-9a-f-]{36})/score", page).group(1)


@pytest.mark.parametrize(("action", "body", "other", "event"), [
    ("score", TEXT, OTHER_TEXT, "attacks.attempt_scored"),
    ("apply", TEXT, OTHER_TEXT, "attacks.attempt_scored"),
    ("suggest", {**TEXT, "tool": "substitutions", "index": "1"}, {**TEXT, "tool": "substitutions", "index": "2"},
     "attacks.tool_queried"),
    ("submit", {**TEXT, "injurious": "on"}, {**OTHER_TEXT, "injurious": "on"}, "attacks.attack_submitted"),
    ("leave", {}, None, "attacks.session_left"),
])
def test_an_attack_page_action_retried_is_recorded_once(alice, attack_session, action, body, other, event):
    retry = retried(page_sender(alice, reverse(f"attacks:{action}", args=[attack_session])), body, other)
    assert retry.written >= 1 and events_of(event) == 1


def test_the_public_generator_page_retried_draws_once(world):
    anyone = Client()
    retry = retried(page_sender(anyone, reverse("talk")), {"prompt": "the knight walked home"},
                    {"prompt": "the knight rode home"})
    assert retry.written >= 1 and "the knight walked home" in retry.again.content.decode()


def test_labelling_through_the_api_retried_is_one_event_per_action(world):
    alice = client_for(world.users["contractor"])
    task = world.held["contractor"]
    retried(api_sender(alice, f"/api/v1/tasks/{task}/answer"), {"answer": "injurious"}, {"answer": "unsure"})
    assert events_of("annotation.label_submitted") == 7
    served = retried(api_sender(alice, f"/api/v1/work/{world.dataset.pk}/label/next"), {}, key="key-2")
    assert served.written == 1 and served.again.json() == served.first.json()
    retried(api_sender(alice, f"/api/v1/tasks/{served.first.json()['task_id']}/skip"), {}, key="key-3")
    assert events_of("annotation.task_released") == 1


def test_training_runs_started_and_cancelled_through_the_api_retried_are_one_each(world):
    pm = client_for(world.users["pm"])
    body = {"version": "retried", "base_model": "tiny-bert", "dataset_ids": [world.dataset.pk]}
    started = retried(api_sender(pm, "/api/v1/training-runs"), body, {**body, "version": "another"})
    assert started.first.status_code == 201 and events_of("modelserve.training_started") == 2  # and the world's
    run = started.first.json()["run_id"]
    retried(api_sender(pm, f"/api/v1/training-runs/{run}/cancel"), {}, key="key-2")
    assert events_of("modelserve.training_cancel_requested") == 1


def test_the_filtered_generator_api_retried_draws_once(world):
    pm = client_for(world.users["pm"])  # not rate-limited: three requests in a row
    retry = retried(api_sender(pm, "/api/v1/generate/filtered"), {"prompt": "the knight walked home", "seed": 1},
                    {"prompt": "the knight walked home", "seed": 2})
    assert retry.written >= 1 and retry.again.json()["request_id"] == retry.first.json()["request_id"]


def test_an_overlong_key_is_refused_and_writes_nothing(world, alice):
    before = Event.objects.count()
    response = alice.post(reverse("annotation:answer", args=[world.held["contractor"]]), {"answer": "injurious"},
                          HTTP_IDEMPOTENCY_KEY="k" * 256, **HTMX)
    assert response.status_code == 400 and Event.objects.count() == before
