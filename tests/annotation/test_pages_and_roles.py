"""Pages, partials, API and admin of labelling: the role matrix, CSRF, escaping, keyboard."""

import re

import pytest
from django.test import Client

from annotation import services
from annotation.models import Assignment, Role
from annotation.services import SnippetInput, import_snippets, next_task, submit_label
from tests.annotation.conftest import make_member

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def world(dataset, vendor, other_vendor, pm, monkeypatch):
    import_snippets(
        dataset=dataset,
        rows=[SnippetInput(f"Prompt {i} {XSS}", f"Completion {i} {XSS}", "initial", "train", i) for i in range(30)],
        filename="w.jsonl",
    )
    people = {
        "contractor": make_member("alice", Role.CONTRACTOR, vendor),
        "other_vendor_contractor": make_member("oscar", Role.CONTRACTOR, other_vendor),
        "vendor_manager": make_member("victor", Role.VENDOR_MANAGER, vendor),
        "pm": pm,
    }
    colleague = make_member("bob", Role.CONTRACTOR, vendor)
    # Serve in queue order (no random pick): bob and then alice get the oldest snippet.
    with monkeypatch.context() as patch:
        patch.setattr(services, "CANDIDATES", 1)
        first = next_task(user=colleague, dataset=dataset)
        submit_label(user=colleague, task_id=first.task_id, label="not_injurious")
        task = next_task(user=people["contractor"], dataset=dataset)
    assert task.work_item_id == first.work_item_id  # alice holds the snippet bob labelled
    return {"dataset": dataset, "people": people, "task": task}


def client_for(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


ROLES = ["anonymous", "contractor", "other_vendor_contractor", "vendor_manager", "pm"]


def routes(world):
    ds, task = world["dataset"].pk, world["task"].task_id
    login = 302
    return [
        # (method, url, headers/data, expected status per role in ROLES order)
        ("get", "/", {}, [200, 200, 200, 200, 200]),
        ("get", "/work/", {}, [login, 200, 200, 403, 403]),
        ("get", f"/work/{ds}/label/", {}, [login, 200, 200, 403, 403]),
        # An HTMX request that needs a login is told so in a message (config/htmx_errors.py).
        ("get", f"/work/{ds}/label/", {"HTTP_HX_REQUEST": "true"}, [401, 200, 200, 403, 403]),
        ("get", f"/work/{ds}/comparison/", {}, [login, 200, 200, 403, 403]),
        ("get", f"/work/{ds}/rating/", {}, [login, 200, 200, 403, 403]),
        ("get", f"/work/{ds}/nonsense/", {}, [login, 404, 404, 403, 403]),
        ("post", f"/work/task/{task}/answer", {"answer": "injurious"}, [login, 302, 404, 403, 403]),
        ("post", f"/work/task/{task}/skip", {}, [login, 302, 404, 403, 403]),
        ("get", "/oversee/", {}, [login, 403, 403, 200, 200]),
        ("get", f"/oversee/{ds}/", {}, [login, 403, 403, 200, 200]),
        ("post", f"/api/v1/work/{ds}/label/next", {}, [401, 200, 200, 403, 403]),
        ("post", f"/api/v1/tasks/{task}/answer", {"answer": "injurious"}, [401, 200, 404, 403, 403]),
        ("post", f"/api/v1/tasks/{task}/skip", {}, [401, 204, 404, 403, 403]),
        ("get", "/api/v1/progress", {}, [401, 200, 200, 403, 403]),
        ("get", f"/api/v1/datasets/{ds}/agreement", {}, [401, 403, 403, 200, 200]),
        ("get", "/admin/annotation/dataset/", {}, [login, login, login, login, 200]),
        ("get", f"/admin/annotation/dataset/{ds}/import/", {}, [login, login, login, login, 200]),
        ("get", f"/admin/annotation/dataset/{ds}/comparisons/", {}, [login, login, login, login, 200]),
        ("get", "/admin/annotation/assignment/", {}, [login, login, login, login, 200]),
        ("get", "/admin/annotation/member/", {}, [login, login, login, login, 200]),
        ("get", "/admin/annotation/snippet/", {}, [login, login, login, login, 200]),
        ("get", "/admin/eventlog/event/", {}, [login, login, login, login, 200]),
    ]


def test_role_matrix_over_every_labelling_route(world):
    failures = []
    for method, url, extra, expected in routes(world):
        for role, status in zip(ROLES, expected):
            client = client_for(world["people"].get(role))
            if method == "get":
                response = client.get(url, **extra)
            elif role == "contractor" and "/task" in url:
                continue  # the owner's answer changes the world: test_the_owner_may_answer_or_skip
            else:
                response = client.post(url, extra)
            if response.status_code != status:
                failures.append(f"{role} {method.upper()} {url}: {response.status_code}, expected {status}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "url_template,data,status",
    [
        ("/work/task/{task}/answer", {"answer": "injurious"}, 302),
        ("/work/task/{task}/skip", {}, 302),
        ("/api/v1/tasks/{task}/answer", {"answer": "injurious"}, 200),
        ("/api/v1/tasks/{task}/skip", {}, 204),
    ],
)
def test_the_owner_may_answer_or_skip_their_task(world, url_template, data, status):
    client = client_for(world["people"]["contractor"])
    assert client.post(url_template.format(task=world["task"].task_id), data).status_code == status


def test_htmx_posts_need_the_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["people"]["contractor"])
    url = f"/work/task/{world['task'].task_id}/answer"
    assert client.post(url, {"answer": "injurious"}, HTTP_HX_REQUEST="true").status_code == 403
    page = client.get(f"/work/{world['dataset'].pk}/label/")
    token = page.cookies["csrftoken"].value
    assert '"x-csrftoken": "' in page.content.decode()  # htmx sends it from the body's hx-headers
    response = client.post(url, {"answer": "injurious"}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert Assignment.objects.get(pk=world["task"].pk).state == "submitted"


def test_snippet_text_is_escaped_everywhere_it_is_shown(world):
    client = client_for(world["people"]["contractor"])
    for response in (
        client.get(f"/work/{world['dataset'].pk}/label/"),
        client.get(f"/work/{world['dataset'].pk}/label/", HTTP_HX_REQUEST="true"),
    ):
        html = response.content.decode()
        assert "Completion" in html
        assert XSS not in html and "<script>alert" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    pm = client_for(world["people"]["pm"])
    html = pm.get("/admin/annotation/snippet/").content.decode()
    assert "Completion" in html and "<script>alert" not in html


def test_a_contractor_never_sees_another_labellers_label(world):
    client = client_for(world["people"]["contractor"])
    for response in (
        client.get(f"/work/{world['dataset'].pk}/label/"),
        client.post(f"/api/v1/work/{world['dataset'].pk}/label/next"),
        client.get("/api/v1/progress"),
    ):
        body = response.content.decode()
        assert "not_injurious\"" not in body.replace('value="not_injurious"', "")
        assert not re.search(r"\bbob\b", body)  # a word: random tokens on the page may hold the letters


def test_the_page_is_keyboard_driven_and_htmx_gets_only_the_partial(world):
    client = client_for(world["people"]["contractor"])
    full = client.get(f"/work/{world['dataset'].pk}/label/").content.decode()
    partial = client.get(f"/work/{world['dataset'].pk}/label/", HTTP_HX_REQUEST="true").content.decode()
    for key, value in (("1", "injurious"), ("2", "not_injurious"), ("3", "unsure"), ("s", None)):
        assert f'data-key="{key}"' in partial
        if value:
            assert f'value="{value}" data-key="{key}"' in partial
    assert "addEventListener(\"keydown\"" in full and "<html" in full
    assert "<html" not in partial and "keydown" not in partial
    assert 'hx-post="/work/task/' in partial and 'hx-target="#task"' in partial


def test_answering_over_htmx_returns_the_next_task_and_the_new_count(world):
    client = client_for(world["people"]["contractor"])
    response = client.post(
        f"/work/task/{world['task'].task_id}/answer", {"answer": "injurious"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert '<strong id="progress">1</strong>' in html
    new_task = Assignment.objects.get(user=world["people"]["contractor"], state="held")
    assert str(new_task.task_id) in html


def test_a_bad_answer_is_a_clear_400_and_nothing_is_written(world):
    client = client_for(world["people"]["contractor"])
    response = client.post(f"/work/task/{world['task'].task_id}/answer", {"answer": "maybe"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "Label must be one of" in response.content.decode()
    api = client.post(f"/api/v1/tasks/{world['task'].task_id}/answer", {"answer": "maybe"})
    assert api.status_code == 400 and "label must be one of" in api.json()["detail"]
    assert Assignment.objects.get(pk=world["task"].pk).state == "held"


def test_vendor_manager_sees_only_their_vendor(world):
    other = world["people"]["other_vendor_contractor"]
    task = next_task(user=other, dataset=world["dataset"])
    submit_label(user=other, task_id=task.task_id, label="injurious")
    html = client_for(world["people"]["vendor_manager"]).get(f"/oversee/{world['dataset'].pk}/").content.decode()
    assert "bob" in html and "oscar" not in html
    html = client_for(world["people"]["pm"]).get(f"/oversee/{world['dataset'].pk}/").content.decode()
    assert "bob" in html and "oscar" in html


def test_admin_import_refuses_a_bad_file_whole_and_accepts_a_good_one(world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotation.models import Snippet

    client = client_for(world["people"]["pm"])
    url = f"/admin/annotation/dataset/{world['dataset'].pk}/import/"
    before = Snippet.objects.count()
    bad = SimpleUploadedFile("bad.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": 1}\n')
    response = client.post(url, {"file": bad, "source": "initial", "split": "train"})
    assert response.status_code == 400 and "line 2: prompt is missing" in response.content.decode()
    assert Snippet.objects.count() == before
    good = SimpleUploadedFile("good.csv", b"prompt,completion\nNew prompt,New completion.\n")
    response = client.post(url, {"file": good, "source": "initial", "split": "test"})
    assert response.status_code == 302
    assert Snippet.objects.filter(split="test", prompt="New prompt").exists()


def test_pm_takes_back_held_tasks_and_expires_overdue_holds_from_the_admin(world, vendor, monkeypatch):
    from annotation.models import Assignment, WorkItem

    client = client_for(world["people"]["pm"])
    url = "/admin/annotation/assignment/"
    held = world["task"]
    response = client.post(url, {"action": "reassign", "_selected_action": [str(held.task_id)]})
    assert response.status_code == 302
    assert Assignment.objects.get(task_id=held.task_id).state == "released"
    item = WorkItem.objects.get(pk=held.work_item_id)
    assert item.held == 0 and item.required - item.done == 1  # the slot is served again
    carol = make_member("carol", Role.CONTRACTOR, vendor)
    monkeypatch.setattr(services, "CANDIDATES", 1)  # queue order: the oldest snippet with a free slot
    assert next_task(user=carol, dataset=world["dataset"]).work_item_id == held.work_item_id

    overdue = Assignment.objects.get(user=carol, state="held")
    Assignment.objects.filter(pk=overdue.pk).update(expires_at=overdue.served_at)  # its hold ran out
    response = client.post(url, {"action": "expire_overdue", "_selected_action": [str(overdue.task_id)]})
    assert response.status_code == 302
    assert Assignment.objects.get(pk=overdue.pk).state == "expired"
    assert WorkItem.objects.get(pk=held.work_item_id).held == 0


def test_api_writes_honour_idempotency_keys(world):
    from eventlog.models import Event

    client = client_for(world["people"]["contractor"])
    url = f"/api/v1/tasks/{world['task'].task_id}/answer"
    before = Event.objects.filter(type="annotation.label_submitted").count()
    first = client.post(url, {"answer": "injurious"}, HTTP_IDEMPOTENCY_KEY="k-1")
    retry = client.post(url, {"answer": "injurious"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert Event.objects.filter(type="annotation.label_submitted").count() == before + 1

    changed = client.post(url, {"answer": "not_injurious"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert changed.status_code == 422 and "different request" in changed.json()["detail"]

    served = client.post(f"/api/v1/work/{world['dataset'].pk}/label/next", HTTP_IDEMPOTENCY_KEY="n-1")
    again = client.post(f"/api/v1/work/{world['dataset'].pk}/label/next", HTTP_IDEMPOTENCY_KEY="n-1")
    assert served.json()["task_id"] == again.json()["task_id"]

    refused = client.post(f"/api/v1/tasks/{served.json()['task_id']}/answer", {"answer": "maybe"},
                          HTTP_IDEMPOTENCY_KEY="k-2")
    assert refused.status_code == 400  # not stored: the corrected retry goes through
    fixed = client.post(f"/api/v1/tasks/{served.json()['task_id']}/answer", {"answer": "injurious"},
                        HTTP_IDEMPOTENCY_KEY="k-2")
    assert fixed.status_code == 200
