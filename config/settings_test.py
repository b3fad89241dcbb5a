"""Test settings: run django-q2 tasks in-process, fast hashing, flush allowed."""

from config.settings import *  # noqa: F401,F403
from config.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EVENTLOG_ALLOW_FLUSH = True
GENERATOR_REPLAY = False  # tests choose their generator

INSTALLED_APPS = [*INSTALLED_APPS, "tests.fixture_app"]  # noqa: F405

# An on-disk SQLite test database, so that subprocesses (a killed consumer) can share it.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
