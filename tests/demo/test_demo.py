"""The demo setup `make run` performs: once, through the normal services, and again in seconds."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from annotation.models import Snippet, WorkItem
from attacks.models import Campaign
from eventlog.models import Event
from modelserve.models import ClassifierVersion
from tests.tiny_models import save_checkpoint

pytestmark = pytest.mark.django_db


def test_the_demo_loads_labels_trains_and_reuses_what_exists(tmp_path, tokenizer, settings, capsys):
    settings.VAR_DIR = tmp_path / "var"
    base = save_checkpoint(tmp_path / "base", tokenizer, positions=256)  # the demo's stories are long
    call_command("demo", base_model=str(base), epochs=1)
    out = capsys.readouterr().out
    passwords = json.loads((tmp_path / "var" / "demo-accounts.txt").read_text())
    assert set(passwords) == {"pm", "manager", "alice", "bob", "carol"}
    assert all(passwords[name] in out for name in passwords)  # the credentials are printed

    records = [json.loads(line) for line in open("demo/data/snippets.jsonl")]
    stories = Snippet.objects.filter(dataset__name="Demo stories")
    assert stories.count() == len(records)
    settled = dict(WorkItem.objects.filter(kind="label", subject_id__in=stories.values("id"), status="settled")
                   .values_list("subject_id", "final_label"))
    expected = {(r["prompt"], r["completion"]): r["label"] for r in records}
    assert all(settled[s.pk] == expected[(s.prompt, s.completion)] for s in stories)
    assert WorkItem.objects.filter(kind="comparison", status="settled").count() > 0

    baseline = ClassifierVersion.objects.get(promoted=True)
    assert baseline.status == "ready" and baseline.threshold is not None
    assert Campaign.objects.get().target_version == baseline.version
    client = Client()
    assert client.login(username="alice", password=passwords["alice"])
    assert client.get("/work/").status_code == 200

    before = Event.objects.count()
    call_command("demo", base_model=str(base), epochs=1)
    assert Event.objects.count() == before  # a second run changes nothing
    assert get_user_model().objects.count() == 5
