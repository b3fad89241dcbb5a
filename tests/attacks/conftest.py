import pytest

from annotation.models import Dataset, Role
from tests.annotation.conftest import make_member
from tests.tiny_models import CATCHES_ALL, LETS_THROUGH

__all__ = ["CATCHES_ALL", "LETS_THROUGH"]  # `register` and `clock` are in tests/conftest.py


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
