from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from annotation.models import Dataset, Role
from tests.annotation.conftest import make_member
from tests.tiny_models import CATCHES_ALL, LETS_THROUGH

__all__ = ["CATCHES_ALL", "LETS_THROUGH"]  # the `register` fixture is in tests/conftest.py


@pytest.fixture
def vendor():
    from annotation.models import Vendor

    return Vendor.objects.create(name="Acme Labelling")


@pytest.fixture
def attackers(vendor):
    return [make_member(f"a{i}", Role.CONTRACTOR, vendor) for i in range(3)]


@pytest.fixture
def labellers(vendor):
    return [make_member(f"l{i}", Role.CONTRACTOR, vendor) for i in range(3)]


@pytest.fixture
def dataset():
    return Dataset.objects.create(name="adversarial")


class Clock:
    """The server's clock, moved by the test: `timezone.now()` everywhere, event times included."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock
