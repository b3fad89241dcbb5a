"""Dataset exports: streamed JSONL and CSV, filters, resumption, pseudonyms, the position reflected."""

import csv
import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from annotation import selectors as annotation_selectors
from annotation import services as annotation
from annotation.models import Dataset, Role, Snippet, Vendor, WorkItem
from attacks import services as attacks
from evaluation import exports
from eventlog.reading import head_position
from modelserve.scoring import scores_for
from tests.annotation.conftest import make_member
from tests.conftest import commit_without_flush, on_disk
from tests.tiny_models import LETS_THROUGH

pytestmark = pytest.mark.django_db

HURT = "he fell and broke his arm ."


@pytest.fixture
def world(register, clock):
    vendor = Vendor.objects.create(name="Acme")
    labellers = [make_member(f"l{i}", Role.CONTRACTOR, vendor) for i in range(3)]
    attacker = make_member("attacker", Role.CONTRACTOR, vendor)
    dataset = Dataset.objects.create(name="stories")
    rows = [annotation.SnippetInput(f"story {i} .", HURT if i % 3 == 0 else f"they smiled {i} .", "initial",
                                    "test" if i % 2 else "train") for i in range(12)]
    annotation.import_snippets(dataset=dataset, filename="s.jsonl", rows=rows)
    clock.advance(days=2, microseconds=123400)  # a fraction of a second with trailing zeros
    register("v1", bias=LETS_THROUGH)
    campaign = attacks.open_campaign(name="Round", kind="manual", dataset=dataset, target_version="v1")
    session = attacks.start_session(user=attacker, campaign=campaign)
    attacks.submit_attack(user=attacker, session_id=session.pk, prompt="the dog ran .", completion="it bled badly .",
                          asserted_injurious=True)
    for labeller in labellers[:2]:
        for _ in range(10):  # the last snippets stay unlabelled
            task = annotation.next_task(user=labeller, dataset=dataset)
            if task is None:
                break
            text = annotation_selectors.task_content(task)["completions"][0]
            annotation.submit_label(user=labeller, task_id=task.task_id,
                                    label="injurious" if "broke" in text or "bled" in text else "not_injurious")
    scores_for("v1", {s.pk: (s.prompt, s.completion) for s in Snippet.objects.all()})
    pm = make_member("pm", Role.PROJECT_MANAGER)
    client = APIClient()
    client.force_authenticate(pm)
    return dataset, campaign, client, attacker


def fetch(client, dataset, fmt="jsonl", **params):
    response = client.get(f"/api/v1/datasets/{dataset.pk}/export.{fmt}", params)
    assert response.status_code == 200, response.content
    return response, b"".join(response.streaming_content).decode()


def test_a_jsonl_export_loads_with_the_datasets_library_as_the_database_has_it(world, tmp_path, monkeypatch):
    from datasets import load_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dataset, campaign, client, attacker = world
    response, text = fetch(client, dataset, scores="v1")
    path = tmp_path / "export.jsonl"
    path.write_text(text)
    loaded = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    snippets = {str(s.pk): s for s in Snippet.objects.filter(dataset=dataset)}
    items = {str(w.subject_id): w for w in WorkItem.objects.filter(kind="label", dataset=dataset)}
    assert sorted(loaded["id"]) == loaded["id"] == sorted(snippets)
    for row in loaded:
        snippet, item = snippets[row["id"]], items[row["id"]]
        assert (row["prompt"], row["completion"], row["source"], row["split"]) == (
            snippet.prompt, snippet.completion, snippet.source, snippet.split)
        assert row["label"] == (item.final_label or None) and row["status"] == item.status
        assert len(row["labels"]) == item.done and row["scores"]["v1"] is not None
    attacked = [r for r in loaded if r["attack"]]
    assert len(attacked) == 1 and attacked[0]["attack"]["target"] == "v1"
    assert attacked[0]["attack"]["campaign"] == str(campaign.pk)
    people = [r["attack"]["author"] for r in attacked] + [label["labeller"] for r in loaded for label in r["labels"]]
    assert all(p.startswith("p") and len(p) == 13 for p in people)  # pseudonyms, never user ids or names
    assert "attacker" not in text and '"user_id"' not in text
    assert int(response["Export-Position"]) == head_position()  # every read model is current


def test_csv_round_trips_through_dictreader(world, tmp_path):
    dataset, *_ = world
    out = tmp_path / "export.csv"
    call_command("export_dataset", str(dataset.pk), str(out), "--scores", "v1")
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == sorted(str(s.pk) for s in Snippet.objects.filter(dataset=dataset))
    first = Snippet.objects.get(pk=rows[0]["id"])
    assert (rows[0]["prompt"], rows[0]["completion"]) == (first.prompt, first.completion)
    assert all(isinstance(json.loads(r["labels"]), list) for r in rows)
    assert json.loads((tmp_path / "export.csv.meta.json").read_text())["format"] == "csv"


def test_filters_select_what_they_say(world):
    dataset, campaign, client, _ = world
    ids = lambda text: [json.loads(line)["id"] for line in text.splitlines()]  # noqa: E731
    by_split = ids(fetch(client, dataset, split="test")[1])
    assert set(by_split) == {str(s.pk) for s in Snippet.objects.filter(dataset=dataset, split="test")}
    injurious = ids(fetch(client, dataset, label="injurious")[1])
    assert set(injurious) == {str(w.subject_id) for w in WorkItem.objects.filter(
        dataset=dataset, kind="label", status="settled", final_label="injurious")}
    unsettled = ids(fetch(client, dataset, label="none")[1])
    assert set(unsettled) == {str(w.subject_id) for w in WorkItem.objects.filter(dataset=dataset, kind="label")
                              .exclude(status="settled")}
    assert len(ids(fetch(client, dataset, campaign=str(campaign.pk))[1])) == 1
    assert len(ids(fetch(client, dataset, since="2026-03-03")[1])) == 1  # the attack, two days later
    assert len(ids(fetch(client, dataset, until="2026-03-03")[1])) == 12
    bad = client.get(f"/api/v1/datasets/{dataset.pk}/export.jsonl", {"source": "nope"})
    assert bad.status_code == 400 and "unknown source" in bad.json()["detail"]


def test_an_interrupted_export_resumes_with_the_same_pseudonyms(world):
    dataset, _, client, _ = world
    response, whole = fetch(client, dataset)
    rows = [json.loads(line) for line in whole.splitlines()]
    export_id = response["Export-Id"]
    _, rest = fetch(client, dataset, export_id=export_id, after=rows[4]["id"])
    assert [json.loads(line) for line in rest.splitlines()] == rows[5:]
    _, other = fetch(client, dataset)
    names = {label["labeller"] for r in rows for label in r["labels"]}
    other_names = {label["labeller"] for line in other.splitlines() for label in json.loads(line)["labels"]}
    assert len(names) == 2 and not names & other_names  # another export: unlinkable pseudonyms


def test_exports_are_for_project_managers(world):
    dataset, *_ = world
    contractor = APIClient()
    contractor.force_authenticate(make_member("c9", Role.CONTRACTOR, Vendor.objects.get()))
    assert contractor.get(f"/api/v1/datasets/{dataset.pk}/export.jsonl").status_code == 403
    assert APIClient().get(f"/api/v1/datasets/{dataset.pk}/export.jsonl").status_code == 401


def test_keyset_chunks_cover_every_row_once(world, monkeypatch):
    dataset, *_ = world
    whole = [r["id"] for r in exports.rows(exports.ExportSpec(dataset_id=dataset.pk))]
    monkeypatch.setattr(exports, "CHUNK", 5)  # several chunks for a small dataset
    chunked = [r["id"] for r in exports.rows(exports.ExportSpec(dataset_id=dataset.pk))]
    assert chunked == whole == sorted(set(whole)) and len(whole) == 13


def test_postgresql_builds_the_same_rows_as_the_portable_path(world, postgres_only):
    dataset, campaign, *_ = world
    for spec in (exports.ExportSpec(dataset_id=dataset.pk, scores=["v1"]),
                 exports.ExportSpec(dataset_id=dataset.pk, labels=["injurious", "none"], splits=["test"]),
                 exports.ExportSpec(dataset_id=dataset.pk, campaign=campaign.pk)):
        in_sql = [json.loads(line) for lines in exports.json_chunks(spec) for line in lines]
        in_python = list(exports.rows_by_queries(spec))
        assert in_sql == in_python and in_sql


def test_an_export_holds_nothing_a_crash_could_take_back(world, postgres_only):
    dataset = world[0]
    committed_to = commit_without_flush()  # a writer between its commit and its flush
    export = exports.Export(exports.ExportSpec(dataset_id=dataset.pk), "jsonl")
    try:
        assert on_disk(committed_to)
    finally:
        export.close()
