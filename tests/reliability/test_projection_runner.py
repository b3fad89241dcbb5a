"""`manage.py run_projections --follow` outlives a database that goes away (bench/load.py
--restart-postgres found it exiting at the first failed query, leaving the asynchronous read
models behind until someone restarted it)."""

import os
import signal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError

from eventlog import projections
from eventlog.management.commands import run_projections

pytestmark = pytest.mark.django_db


def test_the_follower_waits_out_a_lost_database_and_goes_on(monkeypatch):
    calls = []

    def run_all(names=None):
        calls.append(names)
        if len(calls) <= 2:
            raise OperationalError("connection failed: the database system is shutting down")
        os.kill(os.getpid(), signal.SIGTERM)  # the runner's own stop signal: return after this pass
        return {"eventlog.type_counts": 0}

    monkeypatch.setattr(projections, "run_all", run_all)
    monkeypatch.setattr(run_projections.time, "sleep", lambda seconds: None)
    previous = signal.getsignal(signal.SIGTERM)
    err = StringIO()
    try:
        call_command("run_projections", "--follow", stdout=StringIO(), stderr=err)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert len(calls) == 3
    assert err.getvalue().count("database unavailable, retrying") == 2


def test_without_follow_a_database_error_still_fails_the_command(monkeypatch):
    def run_all(names=None):
        raise OperationalError("connection refused")

    monkeypatch.setattr(projections, "run_all", run_all)
    with pytest.raises(OperationalError):
        call_command("run_projections", stdout=StringIO())
