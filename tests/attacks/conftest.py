from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from annotation.models import Dataset, Role
from modelserve import services as registry
from tests.annotation.conftest import make_member
from tests.tiny_models import save_checkpoint

LETS_THROUGH = -8.0  # a logit bias under which every snippet scores about 0.0003
CATCHES_ALL = 8.0  # ... about 0.9997


@pytest.fixture
def register(tmp_path, tokenizer):
    """Register a tiny classifier checkpoint under `version`; returns its folder."""

    def make(version, *, bias=None, seed=7, base_model="tiny-bert"):
        folder = save_checkpoint(tmp_path / f"ckpt-{version}", tokenizer, seed=seed, bias=bias)
        registry.register_checkpoint(version=version, checkpoint_dir=str(folder), base_model=base_model)
        return folder

    return make


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
