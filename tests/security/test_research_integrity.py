"""Research integrity: what a contractor tries, through the API and the pages, to learn their
assigned classifier, label their own attack, submit above the threshold or see another
labeller's answer, is refused. (Every attack-page response under two blinded classifiers is
checked in tests/attacks/test_assignment_and_blinding.py.)"""

import re

import pytest
from django.test import Client
from django.urls import reverse

from annotation import services as annotation
from annotation.models import Dataset, Snippet
from attacks import services as attacks
from eventlog.models import Event
from tests.annotation.conftest import add_snippets
from tests.api.conftest import client_for, member
from tests.api.test_role_matrix import MATRIX, ROLES
from tests.tiny_models import CATCHES_ALL, LETS_THROUGH

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
TEXT = {"prompt": "the knight walked home on the road .", "completion": "he fell and broke his arm ."}
SECRET_VERSION = "secret-target-4d2"
# What a contractor may write through the API: their own labelling, and the public generator.
CONTRACTOR_API_WRITES = {"api_next_task", "api_answer", "api_skip", "filtered_generation"}


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def open_session(client, campaign) -> str:
    page = client.get(reverse("attacks:attack_page", args=[campaign.pk])).content.decode()
    return re.search(r"/attack/session/([0-9a-f-]{36})/score", page).group(1)


@pytest.fixture
def target(world, register):
    register(SECRET_VERSION, bias=LETS_THROUGH, base_model="secret-backbone")
    return attacks.open_campaign(name="Rewrite", kind="tool_assisted", dataset=world.dataset,
                                 target_version=SECRET_VERSION)


def test_no_api_route_tells_a_contractor_the_classifier(world, target):
    alice = world.users["contractor"]
    open_session(browser(alice), target)  # assigned and recorded
    api = client_for(alice)
    values = {"dataset": world.dataset.pk, "task": world.held["contractor"], "version": SECRET_VERSION,
              "run": world.run.run_id}
    for name, row in MATRIX.items():
        path = row.path.format(**values)
        response = api.post(path, row.body, format="json") if row.method == "post" else api.get(path)
        exposed = response.content.decode(errors="replace") + str(sorted(response.items()))
        assert SECRET_VERSION not in exposed and "secret-backbone" not in exposed, name
        if row.method == "post" and response.status_code < 300:
            assert name in CONTRACTOR_API_WRITES, f"{name} lets a contractor write"
    for path in (f"/api/v1/models/{SECRET_VERSION}/score", "/api/v1/events?limit=1000",
                 f"/api/v1/evaluation/report?classifiers={SECRET_VERSION}"):
        assert api.get(path).status_code in (403, 405)
    assert {"api_next_task", "api_answer", "api_skip"} <= {n for n, r in MATRIX.items() if r.method == "post"}
    assert all(MATRIX[n].expect["contractor"] >= 400 for n in MATRIX
               if MATRIX[n].method == "post" and n not in CONTRACTOR_API_WRITES), "the matrix lets a contractor write"
    assert set(ROLES) >= {"contractor", "other_contractor"}


def test_a_contractor_never_labels_their_own_attack(world, target):
    alice, bob = world.users["contractor"], world.users["other_contractor"]
    page = browser(alice)
    session = open_session(page, target)
    submitted = page.post(reverse("attacks:submit", args=[session]), {**TEXT, "injurious": "on"}, **HTMX)
    assert submitted.status_code == 200
    attack = Snippet.objects.get(completion=TEXT["completion"])

    served = []
    api = client_for(alice)
    while (response := api.post(f"/api/v1/work/{world.dataset.pk}/label/next", {}, format="json")).status_code == 200:
        task = response.json()
        served.append(task["completions"][0])
        assert api.post(f"/api/v1/tasks/{task['task_id']}/answer", {"answer": "injurious"},
                        format="json").status_code == 200
    assert response.status_code == 204 and served and attack.completion not in served
    assert "Nothing is waiting for you" in page.get(
        reverse("annotation:task_page", args=[world.dataset.pk, "label"])).content.decode()

    # Someone else holds it: its task id answers a 404 to the author, on the API and the page.
    annotation.submit_answer(user=bob, task_id=world.held["other_contractor"], raw="injurious")
    bobs = annotation.next_task(user=bob, dataset=world.dataset)
    while bobs and bobs.work_item.subject_id != attack.pk:
        annotation.submit_answer(user=bob, task_id=bobs.task_id, raw="injurious")
        bobs = annotation.next_task(user=bob, dataset=world.dataset)
    assert bobs is not None, "the attack was never served to another labeller"
    before = Event.objects.count()
    assert api.post(f"/api/v1/tasks/{bobs.task_id}/answer", {"answer": "unsure"}, format="json").status_code == 404
    assert page.post(reverse("annotation:answer", args=[bobs.task_id]), {"answer": "unsure"},
                     **HTMX).status_code == 404
    assert Event.objects.count() == before


def test_a_submission_above_the_threshold_is_refused_whatever_the_form_claims(world, register):
    register("catches-all", bias=CATCHES_ALL)
    campaign = attacks.open_campaign(name="Hard", kind="manual", dataset=world.dataset, target_version="catches-all")
    page = browser(world.users["contractor"])
    session = open_session(page, campaign)
    forged = {**TEXT, "injurious": "on", "score": "0.0", "below_threshold": "true", "threshold": "1.0"}
    before = Event.objects.count()
    response = page.post(reverse("attacks:submit", args=[session]), forged, **HTMX)
    assert response.status_code == 400 and "at or above the threshold" in response.content.decode()
    assert not Snippet.objects.filter(completion=TEXT["completion"]).exists()
    assert not Event.objects.filter(type="attacks.attack_submitted").exists()
    assert Event.objects.count() - before <= 1  # at most the scoring of the text, never a submission


def _normalised(html: str, texts: list[str]) -> str:
    for text in texts:
        html = html.replace(text, "TEXT")
    html = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", html)
    html = re.sub(r'value="[A-Za-z0-9]{32,64}"', 'value="TOKEN"', html)  # CSRF token and idempotency key
    return re.sub(r'<strong id="progress">\d+</strong>', "", html)


def test_a_labeller_sees_nothing_of_anothers_answer(world):
    alice, bob = world.users["contractor"], world.users["other_contractor"]
    dataset = Dataset.objects.create(name="fresh")
    add_snippets(dataset, 2, prefix="f")
    labelled = annotation.next_task(user=bob, dataset=dataset)
    annotation.submit_answer(user=bob, task_id=labelled.task_id, raw="not_injurious")
    bobs_snippet = Snippet.objects.get(pk=labelled.work_item.subject_id).completion
    carol = member("carol", "contractor", world.vendor)

    page, api, texts, seen = browser(alice), client_for(alice), [], {}
    for _ in range(2):
        task = api.post(f"/api/v1/work/{dataset.pk}/label/next", {}, format="json").json()
        html = page.get(reverse("annotation:task_page", args=[dataset.pk, "label"]), **HTMX).content.decode()
        texts += [task["prompt"], task["completions"][0]]
        answered = api.post(f"/api/v1/tasks/{task['task_id']}/answer", {"answer": "injurious"}, format="json")
        assert answered.json()["answer"] == "injurious"  # her own, nothing of bob's
        seen[task["completions"][0] == bobs_snippet] = (html, sorted(task), answered.json())
    assert set(seen) == {True, False}, "alice got both snippets, one labelled by bob"
    (html_labelled, keys_labelled, _), (html_fresh, keys_fresh, _) = seen[True], seen[False]
    assert keys_labelled == keys_fresh
    assert _normalised(html_labelled, texts) == _normalised(html_fresh, texts)
    assert "bob" not in html_labelled and "not_injurious</" not in html_labelled

    # The disagreement opens a tie-break for carol: she sees the snippet as any other task.
    tie_break = client_for(carol).post(f"/api/v1/work/{dataset.pk}/label/next", {}, format="json").json()
    assert tie_break["completions"][0] == bobs_snippet
    assert sorted(tie_break) == keys_fresh
