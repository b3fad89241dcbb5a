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


def labelled_by_two(plan: dict[str, tuple[str, str, str]], *, name: str = "train") -> Dataset:
    """A dataset of one snippet per completion in `plan` (completion -> (source, split, label)),
    each labelled `label` by two contractors through the services: consensus is that label."""
    from annotation.selectors import task_content
    from annotation.services import next_task, submit_label

    vendor = Vendor.objects.create(name="v")
    people = [make_member(f"l{i}", Role.CONTRACTOR, vendor) for i in range(2)]
    dataset = Dataset.objects.create(name=name)
    import_snippets(dataset=dataset, filename="t.jsonl", rows=[
        SnippetInput("the day went on .", text, source, split, i) for i, (text, (source, split, _)) in enumerate(plan.items())
    ])
    for user in people:
        while (task := next_task(user=user, dataset=dataset)) is not None:
            submit_label(user=user, task_id=task.task_id, label=plan[task_content(task)["completions"][0]][2])
    return dataset
