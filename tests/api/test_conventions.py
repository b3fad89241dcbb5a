"""Conventions every API route keeps: JSON error bodies with a `detail`, per-user throttling."""

import pytest
from rest_framework.throttling import UserRateThrottle

from tests.api.conftest import client_for, member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/tasks/not-a-uuid/answer", "/api/v1/progress/",
                                  "/api/v2/progress"])
def test_a_route_that_matches_nothing_under_api_is_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_pages_outside_the_api_keep_html_404s(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


def test_an_error_no_view_handled_is_a_json_500_under_the_api(world, monkeypatch):
    from django.test import Client

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("annotation.selectors.dataset_progress", boom)
    client = Client(raise_request_exception=False)
    client.force_login(world.users["pm"])
    response = client.get(f"/api/v1/datasets/{world.dataset.pk}/agreement")
    assert response.status_code == 500
    assert response.json() == {"detail": "A server error occurred."}


def test_validation_errors_keep_their_field_errors_and_carry_a_detail(world):
    response = world.client("contractor").post(f"/api/v1/tasks/{world.held['contractor']}/answer", {},
                                               format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["answer"] == ["This field is required."]
    assert body["detail"] == "answer: This field is required."

    response = world.client("pm").post(f"/api/v1/models/{world.version}/score", {"snippets": [{"prompt": "x"}]},
                                       format="json")
    body = response.json()
    assert response.status_code == 400 and "completion" in str(body["snippets"])
    assert body["detail"].startswith("snippets: ") and "completion: This field is required." in body["detail"]


def test_a_refusal_is_a_json_detail(world):
    response = world.client("pm").get("/api/v1/events?limit=0")
    assert response.status_code == 400 and isinstance(response.json()["detail"], str)
    response = world.client("pm").get("/api/v1/events?after=x")
    assert response.status_code == 400 and response.json() == {"detail": "after: a whole number",
                                                                 "after": "a whole number"}
    response = world.client("pm").delete("/api/v1/events")
    assert response.status_code == 405 and "detail" in response.json()


def test_each_user_has_a_rate_of_their_own(db, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "rate", "3/min", raising=False)
    alice, bob = (client_for(member(name, "contractor", _vendor())) for name in ("alice", "bob"))
    statuses = [alice.get("/api/v1/progress").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = alice.get("/api/v1/progress")
    assert limited.status_code == 429 and "detail" in limited.json() and limited["Retry-After"]
    assert bob.get("/api/v1/progress").status_code == 200


def test_the_filtered_generator_keeps_its_own_scope(db, monkeypatch):
    from modelserve.api import FilteredGenerationThrottle

    monkeypatch.setattr(FilteredGenerationThrottle, "rate", "1/min", raising=False)
    monkeypatch.setattr(UserRateThrottle, "rate", "1000/min", raising=False)
    anonymous = client_for(None)
    first = anonymous.post("/api/v1/generate/filtered", {"prompt": "hello"}, format="json")
    second = anonymous.post("/api/v1/generate/filtered", {"prompt": "hello"}, format="json")
    assert first.status_code != 429 and second.status_code == 429


def _vendor():
    from annotation.models import Vendor

    return Vendor.objects.get_or_create(name="Acme")[0]
