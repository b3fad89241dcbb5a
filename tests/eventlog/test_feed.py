"""The event feed: pages after a position, filtered by type, never missing or repeating an event."""

import json
import random
import threading
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import transaction
from rest_framework.test import APIClient

from eventlog import feed
from eventlog.models import Event
from eventlog.store import NewEvent, Stream, append
from tests.conftest import run_threads
from tests.fixture_app.events import ItemAdded, Tick


@pytest.fixture
def reader_client(db):
    user = User.objects.create_user("mirror")
    user.user_permissions.add(Permission.objects.get(codename="view_event"))
    client = APIClient()
    client.force_authenticate(User.objects.get(pk=user.pk))
    return client


def get(client, **params):
    response = client.get("/api/v1/events", params)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db(transaction=True)
def test_a_consumer_paging_while_writers_append_sees_every_event_once_in_order(reader_client, postgres_only):
    done = threading.Event()
    seen: list[int] = []

    def writer(w):
        rng = random.Random(w)
        for i in range(20):
            with transaction.atomic():
                append([NewEvent(Stream("feed", str(w)), Tick(n=i)) for _ in range(3)])
                time.sleep(rng.uniform(0, 0.003))

    def consumer():
        after = 0
        while True:
            finished = done.is_set()
            found = feed.page(after=after, limit=7)
            seen.extend(e.position for e in found.events)
            after = found.next_after
            if finished and not found.has_more and not found.events:
                return

    def writers_then_done():
        run_threads(*[lambda w=w: writer(w) for w in range(5)])
        done.set()

    run_threads(writers_then_done, consumer, timeout=120)
    assert seen == list(Event.objects.order_by("position").values_list("position", flat=True))
    assert len(seen) == 5 * 20 * 3


@pytest.mark.django_db
def test_pages_filtered_by_type_move_past_the_events_they_skip(reader_client):
    for i in range(5):
        append([NewEvent(Stream("feed", "a"), Tick(n=i)), NewEvent(Stream("feed", f"b{i}"), ItemAdded(name=f"x{i}", quantity=1))])
    first = get(reader_client, types="fixture.item_added", limit=3)
    assert [e["payload"]["name"] for e in first["events"]] == ["x0", "x1", "x2"] and first["has_more"]
    second = get(reader_client, types="fixture.item_added", after=first["next_after"], limit=3)
    assert [e["payload"]["name"] for e in second["events"]] == ["x3", "x4"]
    assert second["next_after"] == second["head"] and not second["has_more"]
    assert get(reader_client, after=second["next_after"])["events"] == []
    assert reader_client.get("/api/v1/events", {"limit": 0}).status_code == 400


@pytest.mark.django_db
def test_only_readers_of_the_log_may_use_the_feed():
    assert APIClient().get("/api/v1/events").status_code == 401
    client = APIClient()
    client.force_authenticate(User.objects.create_user("someone"))
    assert client.get("/api/v1/events").status_code == 403


@pytest.mark.django_db
def test_the_command_writes_jsonl_and_says_where_to_continue(tmp_path, capsys):
    append([NewEvent(Stream("feed", "a"), Tick(n=i)) for i in range(3)])
    out = tmp_path / "events.jsonl"
    call_command("export_events", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["payload"]["n"] for e in lines if e["type"] == "fixture.tick"] == [0, 1, 2]
    assert f"--after {lines[-1]['position']}" in capsys.readouterr().out
