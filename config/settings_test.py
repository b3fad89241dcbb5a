"""Test settings: run django-q2 tasks in-process, fast hashing, flush allowed."""

from config.settings import *  # noqa: F401,F403
from config.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EVENTLOG_ALLOW_FLUSH = True
GENERATOR_REPLAY = False  # tests choose their generator
# Login throttling off: tests log in with client.login (no request for axes to see) or
# force_login; tests/security/test_login_throttling.py turns it on.
AXES_ENABLED = False

INSTALLED_APPS = [*INSTALLED_APPS, "tests.fixture_app"]  # noqa: F405

# An on-disk SQLite test database, so that subprocesses (a killed consumer) can share it.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
