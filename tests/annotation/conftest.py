import pytest
from django.contrib.auth.models import User

from annotation.models import Dataset, Member, Role, Vendor
from annotation.services import SnippetInput, import_snippets


@pytest.fixture
def vendor():
    return Vendor.objects.create(name="Acme Labelling")


@pytest.fixture
def other_vendor():
    return Vendor.objects.create(name="Other Vendor")


def make_member(username, role, vendor=None):
    user = User.objects.create_user(username, password="pw")
    Member.objects.create(user=user, role=role, vendor=vendor)
    return user


@pytest.fixture
def contractors(vendor):
    return [make_member(f"c{i}", Role.CONTRACTOR, vendor) for i in range(4)]


@pytest.fixture
def pm():
    user = make_member("pm", Role.PROJECT_MANAGER)
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def dataset():
    return Dataset.objects.create(name="stories")


def add_snippets(dataset, count, *, prefix="p"):
    rows = [SnippetInput(f"{prefix} prompt {i}", f"completion {i}.", "initial", "train", i + 1) for i in range(count)]
    import_snippets(dataset=dataset, rows=rows, filename="test.jsonl")
