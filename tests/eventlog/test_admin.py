"""The read-only event browser in the admin."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from eventlog import context
from eventlog.models import Event
from eventlog.store import NewEvent, Stream, append
from tests.fixture_app.events import ItemAdded, Tick

pytestmark = pytest.mark.django_db


@pytest.fixture
def pm_client(client):
    user = User.objects.create_user("pm", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_event"))
    client.force_login(user)
    return client


@pytest.fixture
def events():
    with context.bind(actor="user:41"):
        append([NewEvent(Stream("item", "x"), ItemAdded(name="<b>lamp</b>", quantity=1))])
    with context.bind(actor="user:42"):
        append([NewEvent(Stream("tick", "y"), Tick(n=3))])
    return list(Event.objects.order_by("position"))


def test_pm_browses_and_filters_events(pm_client, events):
    url = reverse("admin:eventlog_event_changelist")

    def listed(**params):
        response = pm_client.get(url, params)
        assert response.status_code == 200
        return [event.type for event in response.context["cl"].result_list]

    assert listed() == ["fixture.tick", "fixture.item_added"]  # newest first
    assert listed(type="fixture.tick") == ["fixture.tick"]
    assert listed(actor="user:41") == ["fixture.item_added"]
    assert listed(q="y") == ["fixture.tick"]
    assert listed(stream_type="item") == ["fixture.item_added"]


def test_event_detail_shows_the_payload_escaped(pm_client, events):
    page = pm_client.get(reverse("admin:eventlog_event_change", args=[events[0].pk])).content.decode()
    assert "&lt;b&gt;lamp&lt;/b&gt;" in page
    assert "<b>lamp</b>" not in page


def test_events_cannot_be_added_changed_or_deleted_from_the_admin(pm_client, events):
    event = events[0]
    assert pm_client.get(reverse("admin:eventlog_event_add")).status_code == 403
    assert pm_client.post(reverse("admin:eventlog_event_change", args=[event.pk]), {"type": "x"}).status_code == 403
    assert pm_client.post(reverse("admin:eventlog_event_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert Event.objects.get(pk=event.pk).type == "fixture.item_added"


@pytest.mark.parametrize("staff", [False, True])
def test_users_without_the_view_permission_see_no_events(client, events, staff):
    client.force_login(User.objects.create_user("c", password="pw", is_staff=staff))
    response = client.get(reverse("admin:eventlog_event_changelist"))
    assert response.status_code in {302, 403}
    assert b"fixture.tick" not in response.content


def test_anonymous_is_sent_to_login(client, events):
    response = client.get(reverse("admin:eventlog_event_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
