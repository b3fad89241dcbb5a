"""A small world for the API tests: two vendors, their people, a PM client, labelled data,
a served classifier and a training run."""

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation import services as annotation
from annotation.models import Assignment, Dataset, Member, Role, Vendor
from modelserve import registry, training_jobs
from modelserve.models import TrainingRun
from tests.annotation.conftest import add_snippets


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Throttle counts live in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


class FakeGenerator:
    """A deterministic generator for the filtered-generation endpoint."""

    name = "fake"

    def generate(self, prompt, *, n=1, seed=None, **kwargs):
        return [f"the knight walked home {(seed or 0) + i}." for i in range(n)]


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def member(username: str, role: str, vendor: Vendor | None = None) -> User:
    user = User.objects.create_user(username, password="pw")
    Member.objects.create(user=user, role=role, vendor=vendor)
    return user


@dataclass
class World:
    vendor: Vendor
    other_vendor: Vendor
    users: dict  # role name in the matrix -> User, or None for anonymous
    dataset: Dataset
    held: dict  # role name -> the task id that contractor holds
    version: str
    run: TrainingRun

    def client(self, role: str) -> APIClient:
        return client_for(self.users[role])


@pytest.fixture
def no_job_queue(monkeypatch, settings, tmp_path):
    """Training runs are recorded, their job is not run; checkpoints go to a temporary folder."""
    settings.MODELSERVE_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    monkeypatch.setattr(training_jobs, "async_task", lambda *args, **kwargs: None)


@pytest.fixture
def world(db, register, no_job_queue, monkeypatch) -> World:
    vendor, other_vendor = Vendor.objects.create(name="Acme"), Vendor.objects.create(name="Other")
    contractor = member("alice", Role.CONTRACTOR, vendor)
    other_contractor = member("bob", Role.CONTRACTOR, other_vendor)
    manager = member("vera", Role.VENDOR_MANAGER, vendor)
    pm = member("petra", Role.PROJECT_MANAGER)
    # A PM's client reads the event log: PMs hold the permission the event feed asks for.
    pm.user_permissions.add(Permission.objects.get(codename="view_event"))

    dataset = Dataset.objects.create(name="stories")
    add_snippets(dataset, 3)
    for user in (contractor, other_contractor):  # each labels every snippet: all settled
        while task := annotation.next_task(user=user, dataset=dataset):
            annotation.submit_answer(user=user, task_id=task.task_id, raw="injurious")
    add_snippets(dataset, 3, prefix="q")
    held = {role: annotation.next_task(user=user, dataset=dataset).task_id
            for role, user in (("contractor", contractor), ("other_contractor", other_contractor))}
    assert Assignment.objects.filter(state=Assignment.State.HELD).count() == 2

    version = "tiny"
    register(version)
    registry.promote(version=version)
    registry.choose_threshold(version=version, threshold=0.999999, method="test")
    monkeypatch.setattr("modelserve.filtering.generator", FakeGenerator)
    run = training_jobs.start_training(version="tiny-trained", base_model="tiny-bert", dataset_ids=[dataset.pk])

    users = {"anonymous": None, "contractor": contractor, "other_contractor": other_contractor,
             "vendor_manager": manager, "pm": pm}
    return World(vendor, other_vendor, users, dataset, held, version, run)
