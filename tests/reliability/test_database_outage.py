"""While the database is unreachable, a request is answered 503 with Retry-After (nothing was
committed; the same request can be sent again), on the pages and the API alike, and whether a
view or a middleware (the session, before any view) met the error."""

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from django.test import Client

from annotation import selectors
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db


def lost(*args, **kwargs):
    raise OperationalError("server closed the connection unexpectedly")


def test_an_api_request_is_answered_503_with_retry_after(world, monkeypatch):
    monkeypatch.setattr(selectors, "own_progress", lost)
    api = client_for(world.users["contractor"])
    api.raise_request_exception = False
    response = api.get("/api/v1/progress")
    assert response.status_code == 503 and response["Retry-After"] == "2"
    assert "send the request again" in response.json()["detail"]


def test_a_page_is_answered_503_with_retry_after(world, monkeypatch):
    monkeypatch.setattr(selectors, "own_progress", lost)
    browser = Client(raise_request_exception=False)
    browser.force_login(world.users["contractor"])
    response = browser.get("/work/")
    assert response.status_code == 503 and response["Retry-After"] == "2"
    assert response["Content-Type"].startswith("text/plain")


def test_an_outage_met_by_the_session_middleware_is_a_503_too(world, monkeypatch):
    browser = Client(raise_request_exception=False)
    browser.force_login(world.users["contractor"])
    monkeypatch.setattr(SessionStore, "load", lost)
    response = browser.post("/attack/session/01a23560-d0e0-73a1-b0ac-85cd5643adb3/score", {"prompt": "a"})
    assert response.status_code == 503 and response["Retry-After"] == "2"


def test_other_errors_stay_500(world, monkeypatch):
    monkeypatch.setattr(selectors, "own_progress", lambda *a, **k: 1 / 0)
    api = client_for(world.users["contractor"])
    api.raise_request_exception = False
    response = api.get("/api/v1/progress")
    assert response.status_code == 500 and "Retry-After" not in response
