"""Settings: production passes check --deploy; the home page is served."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, **env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="k" * 64 + "-not-a-real-secret-but-long-and-varied-0123456789",
        DJANGO_ALLOWED_HOSTS="annotate.example.org",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check", DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="0")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_home_page_is_served_with_htmx_and_request_id(client):
    response = client.get("/", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert b"htmx" in response.content
    assert response["X-Request-ID"] == "abc-123"


PRODUCTION = {"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "0",
              "DJANGO_SECRET_KEY": "p" * 40 + "-not-a-real-secret-but-long-and-varied-9876543210",
              "DJANGO_ALLOWED_HOSTS": "annotate.example.org"}


def test_production_cookies_are_secure_and_http_only_and_logins_are_throttled():
    names = ["DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SECURE_SSL_REDIRECT",
             "AXES_ENABLED", "AXES_FAILURE_LIMIT", "AUTHENTICATION_BACKENDS", "MIDDLEWARE"]
    code = f"import json; from django.conf import settings as s; print(json.dumps({{n: getattr(s, n) for n in {names}}}))"
    result = manage("shell", "-c", code, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False and values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_SECURE"] is values["CSRF_COOKIE_SECURE"] is values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["AXES_ENABLED"] is True and values["AXES_FAILURE_LIMIT"] == int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
    assert values["AUTHENTICATION_BACKENDS"][0] == "axes.backends.AxesStandaloneBackend"
    assert values["MIDDLEWARE"][-1] == "axes.middleware.AxesMiddleware"
