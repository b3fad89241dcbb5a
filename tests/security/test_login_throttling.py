"""Password guessing on the login pages is throttled (django-axes, config/settings.py): after
AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is refused
(429) even with the right password, until the cool-off ends or a PM deletes the lockout in the
admin. Other users and other addresses are not locked; sessions and API tokens are not touched.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.test import Client
from rest_framework.authtoken.models import Token

from annotation.models import Role, Vendor
from tests.annotation.conftest import make_member

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


@pytest.fixture(autouse=True)
def axes_on(settings):
    """The test settings turn axes off for the rest of the suite; here it runs as configured."""
    settings.AXES_ENABLED = True
    assert settings.AXES_FAILURE_LIMIT >= 3 and settings.AXES_COOLOFF_TIME >= timedelta(minutes=1)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


@pytest.fixture
def people():
    """A contractor and a PM (staff, superuser: the admin login accepts both of them only for the PM)."""
    alice = make_member("alice", Role.CONTRACTOR, Vendor.objects.create(name="Acme"))
    pm = make_member("petra", Role.PROJECT_MANAGER)
    pm.is_staff = pm.is_superuser = True
    pm.save()
    for user in (alice, pm):
        user.set_password(PASSWORD)
        user.save()
    return {"alice": alice, "petra": pm}


def browser(address: str = "10.0.0.1") -> Client:
    return Client(REMOTE_ADDR=address)


def log_in(client: Client, page: str, username: str, password: str):
    return client.post(page, {"username": username, "password": password})


def logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def guess(page: str, username: str, times: int, address: str = "10.0.0.1") -> list[int]:
    return [log_in(browser(address), page, username, "wrong password").status_code for _ in range(times)]


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_wrong_passwords_lock_the_username_from_that_address_out(page, people, settings):
    user = "petra" if page.startswith("/admin/") else "alice"
    limit = settings.AXES_FAILURE_LIMIT
    statuses = guess(page, user, limit + 2)
    assert statuses[: limit - 1] == [200] * (limit - 1)  # the form again, with its error
    assert statuses[limit - 1:] == [429] * 3  # the last allowed failure locks

    client = browser()
    refused = log_in(client, page, user, PASSWORD)  # the right password, too late
    assert refused.status_code == 429 and b"Too many failed logins" in refused.content
    assert not logged_in(client)

    for other_user, address in (("petra" if user == "alice" else "alice", "10.0.0.1"), (user, "10.0.0.2")):
        other = browser(address)
        response = log_in(other, page, other_user, PASSWORD)
        if page.startswith("/admin/") and other_user == "alice":  # no staff: the admin form refuses her
            assert response.status_code == 200 and not logged_in(other)
        else:
            assert response.status_code == 302 and logged_in(other), (other_user, address)


def test_a_successful_login_forgets_the_failures_before_it(people, settings):
    limit = settings.AXES_FAILURE_LIMIT
    assert guess("/accounts/login/", "alice", limit - 1) == [200] * (limit - 1)
    assert log_in(browser(), "/accounts/login/", "alice", PASSWORD).status_code == 302
    assert guess("/accounts/login/", "alice", limit - 1) == [200] * (limit - 1)
    assert log_in(browser(), "/accounts/login/", "alice", PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(people, settings):
    guess("/accounts/login/", "alice", settings.AXES_FAILURE_LIMIT)
    assert log_in(browser(), "/accounts/login/", "alice", PASSWORD).status_code == 429
    attempt = AccessAttempt.objects.get(username="alice")
    AccessAttempt.objects.filter(pk=attempt.pk).update(
        attempt_time=attempt.attempt_time - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert log_in(browser(), "/accounts/login/", "alice", PASSWORD).status_code == 302


def test_pms_see_the_lockout_in_the_admin_and_lift_it(people, settings):
    guess("/accounts/login/", "alice", settings.AXES_FAILURE_LIMIT)
    attempt = AccessAttempt.objects.get(username="alice", ip_address="10.0.0.1")
    assert attempt.failures_since_start == settings.AXES_FAILURE_LIMIT

    pm = Client()
    pm.force_login(people["petra"])
    listing = pm.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert b"alice" in listing.content and b"10.0.0.1" in listing.content
    assert b"wrong password" not in listing.content  # axes masks the password it records
    deleted = pm.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not AccessAttempt.objects.exists()
    assert log_in(browser(), "/accounts/login/", "alice", PASSWORD).status_code == 302


def test_a_locked_out_user_keeps_their_session_and_api_token(people, settings):
    """force_login sessions and DRF's TokenAuthentication never go through the password check."""
    guess("/accounts/login/", "alice", settings.AXES_FAILURE_LIMIT)
    assert log_in(browser(), "/accounts/login/", "alice", PASSWORD).status_code == 429

    session = browser()
    session.force_login(people["alice"])
    assert session.get("/").status_code == 200 and session.get("/work/").status_code == 200
    token = Token.objects.create(user=people["alice"])
    api = browser()
    response = api.get("/api/v1/progress", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert api.get("/api/v1/progress", HTTP_AUTHORIZATION="Token " + "0" * 40).status_code == 401
