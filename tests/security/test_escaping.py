"""HTML and JavaScript in every text a page shows are shown as text: escaped, never markup.

Each text field a person can fill (snippet prompts and completions, attack text, campaign,
dataset and vendor names, usernames, prompts of the filtered generator and its draws, a base
model path and a training run's failure message) holds a payload that would run script if a
page printed it raw, each with its own tag, so a page that shows a field is checked for
that field's escaped form. No page may contain the raw payload, in any context (text,
attribute, textarea, JSON in a <pre>). JSON and other data responses are served as what
they are, never as text/html, with `nosniff`, so a browser does not run what they contain.
"""

import json
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from annotation import services as annotation
from annotation.models import Dataset, Member, Role, Snippet, Vendor
from attacks import services as attacks
from eventlog.models import Event
from modelserve import registry, training_jobs
from tests.api.conftest import client_for, fresh_throttles, member  # noqa: F401 - fixtures
from tests.tiny_models import LETS_THROUGH

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
VERSION = "esc-tiny"  # a name of its own: each process keeps the classifiers it loaded, by name
RAW = ("<script>alert_", "<img src=x onerror", "\"'><img")  # no page may hold these


def payload(tag: str) -> str:
    return f"<script>alert_{tag}()</script>\"'><img src=x onerror=alert_{tag}()>"


def escaped(tag: str) -> str:
    """The start of the payload as an autoescaping template (or format_html) shows it."""
    return f"&lt;script&gt;alert_{tag}()&lt;/script&gt;"


def assert_escaped(response, *tags: str, page: str = "", status: int = 200) -> str:
    assert response.status_code == status, f"{page}: {response.status_code}"
    assert response["Content-Type"].startswith("text/html"), f"{page}: {response['Content-Type']}"
    html = response.content.decode()
    for raw in RAW:
        assert raw not in html, f"{page}: the raw payload {raw!r} at {html.find(raw)}: {html[html.find(raw) - 200:][:400]}"
    for tag in tags:
        assert escaped(tag) in html, f"{page}: {tag} is not shown (escaped)"
    return html


class PayloadGenerator:
    """The filtered generator's draws: payloads."""

    name = "payload"

    def generate(self, prompt, *, n=1, seed=None, **kwargs):
        return [f"{payload('draw')} {(seed or 0) + i}" for i in range(n)]


@dataclass
class Shown:
    users: dict
    dataset: Dataset
    campaign_id: str
    session_id: str
    run_id: str
    snippet_id: str

    def client(self, role: str) -> Client:
        client = Client()
        client.force_login(self.users[role])
        return client


@pytest.fixture
def shown(db, register, monkeypatch, settings, tmp_path) -> Shown:
    settings.MODELSERVE_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    monkeypatch.setattr(training_jobs, "async_task", lambda *args, **kwargs: None)
    monkeypatch.setattr("modelserve.filtering.generator", PayloadGenerator)
    vendor = Vendor.objects.create(name=payload("vendor"))
    alice = User.objects.create_user(payload("user"), password="pw")  # not through a form: any name
    Member.objects.create(user=alice, role=Role.CONTRACTOR, vendor=vendor)
    users = {"contractor": alice, "colleague": member("bob", Role.CONTRACTOR, vendor),
             "vendor_manager": member("vera", Role.VENDOR_MANAGER, vendor), "pm": member("petra", Role.PROJECT_MANAGER)}
    users["pm"].is_staff = users["pm"].is_superuser = True
    users["pm"].save()

    dataset = Dataset.objects.create(name=payload("dataset"))
    rows = [annotation.SnippetInput(payload("prompt"), f"{payload('completion')} {i}", "initial", "train", i + 1)
            for i in range(3)]
    annotation.import_snippets(dataset=dataset, rows=rows, filename="payload.jsonl")
    for user in (alice, users["colleague"]):  # both label the first three: settled, a manifest to train on
        while task := annotation.next_task(user=user, dataset=dataset):
            annotation.submit_answer(user=user, task_id=task.task_id, raw="injurious")
    annotation.import_snippets(dataset=dataset, filename="more.jsonl", rows=[
        annotation.SnippetInput(payload("prompt"), f"{payload('completion')} more {i}", "initial", "train", i + 1)
        for i in range(2)])
    annotation.create_comparisons(dataset=dataset, pairs_per_prompt=4)
    annotation.request_ratings(dataset=dataset, snippet_ids=list(Snippet.objects.values_list("pk", flat=True)))

    register(VERSION, bias=LETS_THROUGH)
    registry.promote(version=VERSION)
    registry.choose_threshold(version=VERSION, threshold=0.999999, method="test")
    campaign = attacks.open_campaign(name=payload("campaign"), kind="tool_assisted", dataset=dataset,
                                     target_version=VERSION)
    session = attacks.start_session(user=alice, campaign=campaign)
    submission = attacks.submit_attack(user=alice, session_id=session.pk, prompt=payload("attackp"),
                                       completion=payload("attack"), asserted_injurious=True)

    run = training_jobs.start_training(version="esc-run", base_model=payload("model"), dataset_ids=[dataset.pk])

    def fails(run):
        raise RuntimeError(payload("failure"))  # a message that echoes a path or an input

    monkeypatch.setattr(training_jobs, "_train", fails)
    with pytest.raises(RuntimeError):
        training_jobs.run_training(run.run_id)
    return Shown(users, dataset, str(campaign.pk), str(session.pk), run.run_id, str(submission.snippet_id))


def test_the_contractor_pages_show_every_text_escaped(shown):
    client, ds = shown.client("contractor"), shown.dataset.pk
    assert_escaped(client.get("/"), "user", page="home (the header names the user)")
    assert_escaped(client.get("/work/"), "dataset", page="work home")
    for kind in ("label", "comparison", "rating"):
        for headers in ({}, HTMX):
            page = f"/work/{ds}/{kind}/ {headers}"
            html = assert_escaped(client.get(f"/work/{ds}/{kind}/", **headers), "prompt", "completion", page=page)
            if not headers:
                assert escaped("dataset") in html, page
    task = client.get(f"/work/{ds}/label/").content.decode().split("/work/task/")[1].split("/")[0]
    assert_escaped(client.post(f"/work/task/{task}/answer", {"answer": "maybe"}, **HTMX), "prompt", "completion",
                   page="a refused answer", status=400)
    assert_escaped(client.post(f"/work/task/{task}/answer", {"answer": "injurious"}, **HTMX), "prompt", "completion",
                   page="the next task after an answer")

    assert_escaped(client.get("/attack/"), "campaign", page="attack home")
    html = assert_escaped(client.get(f"/attack/{shown.campaign_id}/"), "campaign", page="attack page")
    session = html.split("/attack/session/")[1].split("/")[0]
    text = {"prompt": payload("typedp"), "completion": payload("typed")}
    for route, status, tags in (("score", 200, ()), ("apply", 200, ("typedp", "typed")),
                                ("submit", 400, ("typedp", "typed")), ("suggest", 200, ())):
        data = {**text, "tool": "edit_map"}
        for headers in ({}, HTMX):  # score and suggest show the words as written
            response = client.post(f"/attack/session/{session}/{route}", data, **headers)
            if route == "submit" and headers:  # a refusal answered as a message: plain text, never sniffed as HTML
                assert response.status_code == 400 and response["Content-Type"].startswith("text/plain")
                assert response["X-Content-Type-Options"] == "nosniff"
                continue
            assert_escaped(response, *tags, page=f"attack {route} {headers}", status=status)


def test_the_talk_page_shows_prompts_and_draws_escaped(shown):
    for role in ("contractor", "pm"):
        client = shown.client(role)
        for headers, tags in (({}, ("talk", "draw")), (HTMX, ("draw",))):  # the partial: the answer alone
            assert_escaped(client.post("/talk/", {"prompt": payload("talk")}, **headers), *tags,
                           page=f"talk ({role}, {headers})")
    registry.choose_threshold(version=VERSION, threshold=1e-9, method="test")  # every draw is rejected
    html = assert_escaped(shown.client("pm").post("/talk/", {"prompt": payload("talk")}), "talk", "draw",
                          page="talk: a PM sees the rejected draws")
    assert html.count(escaped("draw")) >= 100


def test_the_oversight_and_evaluation_pages_show_every_text_escaped(shown):
    ds = shown.dataset.pk
    for role in ("vendor_manager", "pm"):
        client = shown.client(role)
        assert_escaped(client.get("/oversee/"), "dataset", page=f"oversee ({role})")
        assert_escaped(client.get(f"/oversee/{ds}/"), "dataset", "user", "vendor", page=f"oversee dataset ({role})")
    client = shown.client("pm")
    assert_escaped(client.get("/evaluation/"), "dataset", "campaign", page="evaluation report form")
    assert_escaped(client.get("/evaluation/thresholds/"), "dataset", page="threshold selection form")


def test_the_admin_shows_every_text_escaped(shown):
    client, ds = shown.client("pm"), shown.dataset.pk
    snippet = Snippet.objects.filter(prompt=payload("prompt")).first()
    event = Event.objects.filter(type="annotation.snippet_added").first()
    attack = Event.objects.filter(type="attacks.attack_submitted").first()
    pages = [
        ("/admin/annotation/snippet/", ("completion", "attack", "dataset")),
        (f"/admin/annotation/snippet/{snippet.pk}/change/", ("prompt", "completion", "dataset")),
        (f"/admin/annotation/snippet/{shown.snippet_id}/change/", ("attackp", "attack")),
        (f"/admin/annotation/snippet/?q={payload('search')}", ("search",)),
        ("/admin/annotation/dataset/", ("dataset",)),
        (f"/admin/annotation/dataset/{ds}/change/", ("dataset",)),
        (f"/admin/annotation/dataset/{ds}/import/", ("dataset",)),
        (f"/admin/annotation/dataset/{ds}/comparisons/", ("dataset",)),
        ("/admin/annotation/vendor/", ("vendor",)),
        ("/admin/annotation/member/", ("user", "vendor")),
        ("/admin/annotation/assignment/", ("dataset", "user")),
        ("/admin/eventlog/event/", ()),
        (f"/admin/eventlog/event/{event.pk}/change/", ("prompt", "completion")),
        (f"/admin/eventlog/event/{attack.pk}/change/", ()),
        ("/admin/attacks/campaign/", ("campaign",)),
        (f"/admin/attacks/campaign/{shown.campaign_id}/change/", ("campaign",)),
        ("/admin/attacks/submission/", ("campaign",)),
        ("/admin/modelserve/trainingrun/", ()),
        (f"/admin/modelserve/trainingrun/{shown.run_id}/change/", ("model", "failure")),
        ("/admin/modelserve/classifierversion/", ("model",)),
        ("/admin/modelserve/classifierversion/esc-run/change/", ("model",)),
    ]
    for path, tags in pages:
        assert_escaped(client.get(path), *tags, page=path)

    # Refusals that repeat what was typed, and the message after a success.
    refused = client.post(f"/admin/annotation/dataset/{ds}/import/", {
        "file": _upload(json.dumps({"prompt": "a", "completion": "b", "source": payload("source")})),
        "source": "initial", "split": "train"})
    assert_escaped(refused, "source", page="an import refused for its source", status=400)
    form = {"name": "Spring", "kind": "manual", "dataset": ds, "split": "train", "target_version": VERSION,
            "seed": 0, "threshold": 0.05, "idle_cap_seconds": 600, "time_zone": payload("zone")[:64]}
    assert_escaped(client.post("/admin/attacks/campaign/add/", form), "zone", page="an unknown time zone",
                   status=400)
    opened = client.post("/admin/attacks/campaign/add/", {**form, "name": payload("opened"), "time_zone": "UTC"},
                         follow=True)
    assert_escaped(opened, "opened", page="the message after opening a campaign")


def _upload(text: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("payload.jsonl", text.encode())


def computed_report(client, url):
    client.post(url.replace("/evaluation/report.json", "/evaluation/"))  # computes it (a job, synchronous here)
    return client.get(url)


def assert_json(response, *tags: str, page: str, status: int = 200):
    assert response.status_code == status, f"{page}: {response.status_code} {response.content[:300]!r}"
    kind = response["Content-Type"]
    assert not kind.startswith("text/html"), f"{page}: {kind}"
    assert response["X-Content-Type-Options"] == "nosniff", page
    body = b"".join(response.streaming_content) if response.streaming else response.content
    for tag in tags:  # "": any payload
        assert f"alert_{tag}".encode() in body, f"{page}: {tag} missing"
    return kind


def test_json_and_data_are_never_served_as_html(shown):
    pm = client_for(shown.users["pm"])
    colleague = client_for(shown.users["colleague"])
    Token.objects.get_or_create(user=shown.users["pm"])
    checks = [
        (colleague.post(f"/api/v1/work/{shown.dataset.pk}/label/next"), ("",), "next task"),
        (pm.get("/api/v1/events?after=0&limit=1000"), ("prompt", "campaign", "attack", "failure"), "event feed"),
        (pm.get(f"/api/v1/datasets/{shown.dataset.pk}/agreement"), ("user", "vendor"), "agreement"),
        (pm.get(f"/api/v1/training-runs/{shown.run_id}"), ("failure",), "training run"),
        (pm.get(f"/api/v1/datasets/{shown.dataset.pk}/export.jsonl"), ("prompt", "completion"), "export (JSONL)"),
        (pm.get(f"/api/v1/datasets/{shown.dataset.pk}/export.csv"), ("prompt", "completion"), "export (CSV)"),
        (client_for(None).post("/api/v1/generate/filtered", {"prompt": payload("api")}, format="json"), ("draw",),
         "filtered generator"),
        (computed_report(shown.client("pm"), f"/evaluation/report.json?classifiers={VERSION}"), (),
         "the report's JSON (a page)"),
    ]
    kinds = {page: assert_json(response, *tags, page=page) for response, tags, page in checks}
    assert kinds["export (JSONL)"].startswith("application/jsonl")
    assert kinds["export (CSV)"].startswith("text/csv")
    assert all(kind.startswith("application/json") for page, kind in kinds.items() if "export" not in page)

    # Errors that repeat the input are JSON too.
    refused = pm.post("/api/v1/training-runs", {"version": "x-run", "base_model": "m", "dataset_ids": [shown.dataset.pk],
                                                "splits": [payload("split")]}, format="json")
    assert_json(refused, "split", page="a refused choice", status=400)
    assert isinstance(refused.json()["detail"], str)
