"""While the database is unreachable, a request is answered 503 with Retry-After (nothing was
committed; the same request can be sent again), on the pages and the API alike."""

import pytest
from django.db import OperationalError
from django.test import Client

from annotation import selectors
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_gone(monkeypatch):
    def lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(selectors, "own_progress", lost)


def test_an_api_request_is_answered_503_with_retry_after(world, database_gone):
    response = client_for(world.users["contractor"]).get("/api/v1/progress")
    assert response.status_code == 503 and response["Retry-After"] == "2"
    assert "send the request again" in response.json()["detail"]


def test_a_page_is_answered_503_with_retry_after(world, database_gone):
    browser = Client()
    browser.force_login(world.users["contractor"])
    response = browser.get("/work/")
    assert response.status_code == 503 and response["Retry-After"] == "2"
    assert response["Content-Type"].startswith("text/plain")


def test_other_errors_are_not_taken_for_an_outage(world, monkeypatch):
    monkeypatch.setattr(selectors, "own_progress", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        client_for(world.users["contractor"]).get("/api/v1/progress")
