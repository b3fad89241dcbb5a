"""Training runs: the manifest against hand computations, a full run on a tiny model, failures."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from transformers import AutoModelForSequenceClassification

from eventlog.reading import read
from modelserve import training_jobs
from modelserve.errors import ModelserveError
from modelserve.manifest import build_manifest
from modelserve.models import ClassifierVersion, TrainingRun
from tests.annotation.conftest import labelled_by_two
from tests.modelserve.conftest import tiny

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled(db):
    """A dataset whose snippets carry known consensus labels."""
    plan = {  # completion -> (source, split, label)
        "he broke his arm": ("initial", "train", "injurious"),
        "she cut her hand": ("initial", "train", "unsure"),
        "the knight smiled": ("initial", "train", "not_injurious"),
        "the dog slept": ("initial", "train", "not_injurious"),
        "they walked home": ("initial", "train", "not_injurious"),
        "he bled badly": ("manual_adversarial", "train", "injurious"),
        "she fell and broke her leg": ("initial", "validation", "injurious"),
        "he laughed": ("initial", "validation", "not_injurious"),
    }
    return labelled_by_two(plan), plan


def test_manifest_against_a_hand_computation(labelled):
    dataset, plan = labelled
    manifest = build_manifest(dataset_ids=[dataset.pk], splits=["train"])
    from annotation.models import Snippet

    by_text = {s.completion: s for s in Snippet.objects.all()}
    expected = sorted(
        (str(by_text[text].pk), label in ("injurious", "unsure"))  # unsure counts as injurious
        for text, (_, split, label) in plan.items() if split == "train"
    )
    assert sorted((e.snippet_id, e.injurious) for e in manifest.entries) == expected
    assert all(e.label_version == 5 for e in manifest.entries)  # added, 2 served, 2 submitted
    canonical = "\n".join(json.dumps([e.snippet_id, int(e.injurious), e.label_version]) for e in
                          sorted(manifest.entries, key=lambda e: e.snippet_id))
    assert manifest.digest == hashlib.sha256(canonical.encode()).hexdigest()

    equal = build_manifest(dataset_ids=[dataset.pk], splits=["train"], equal_size=True, seed=1)
    assert len(equal.entries) == 5  # one adversarial in, one initial out
    assert sum(e.source != "initial" for e in equal.entries) == 1
    assert equal.digest != manifest.digest
    with pytest.raises(ModelserveError, match="no settled labels"):
        build_manifest(dataset_ids=[dataset.pk], splits=["test"])


@pytest.fixture
def base_model(tmp_path, tokenizer):
    folder = tmp_path / "base"
    tiny("bert").save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_a_training_run_ends_with_a_ready_classifier_that_reloads(labelled, base_model, settings, tmp_path):
    settings.MODELSERVE_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    dataset, _ = labelled
    run = training_jobs.start_training(version="tiny-run", base_model=base_model, dataset_ids=[dataset.pk],
                                       hyperparameters={"epochs": 2, "batch_size": 2, "learning_rate": 1e-3})
    run.refresh_from_db()
    assert run.status == "finished" and run.step == run.steps > 0
    classifier = ClassifierVersion.objects.get(version="tiny-run")
    assert classifier.status == "ready" and classifier.manifest_size == 6
    assert classifier.metrics["validation_size"] == 2 and "validation_accuracy" in classifier.metrics
    folder = settings.MODELSERVE_CHECKPOINT_ROOT / "tiny-run"
    assert len((folder / "manifest.jsonl").read_text().splitlines()) == 6
    assert AutoModelForSequenceClassification.from_pretrained(folder).config.num_labels == 1
    progress = [e for e in read(types=["modelserve.training_progressed"])]
    assert progress and progress[-1].payload["step"] == progress[-1].payload["steps"]
    # 6 examples, 3 injurious: factor 1, no upsampling; 2 epochs of batches of 2
    assert run.steps == 6


def test_a_job_that_dies_leaves_a_failed_run_and_no_ready_model(labelled, base_model, settings, tmp_path, monkeypatch):
    settings.MODELSERVE_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    monkeypatch.setattr(training_jobs, "async_task", lambda *args, **kwargs: None)  # the worker never reports
    run = training_jobs.start_training(version="dies", base_model=base_model, dataset_ids=[labelled[0].pk])
    assert training_jobs.fail_stale_runs() == 0  # fresh heartbeat
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=11))
    assert training_jobs.fail_stale_runs() == 1
    assert TrainingRun.objects.get(pk=run.pk).status == "failed"
    assert ClassifierVersion.objects.get(version="dies").status == "failed"


def test_an_error_or_a_cancel_fails_the_run(labelled, base_model, settings, tmp_path, monkeypatch):
    settings.MODELSERVE_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    monkeypatch.setattr(training_jobs, "async_task", lambda *args, **kwargs: None)
    run = training_jobs.start_training(version="cancelled", base_model=base_model, dataset_ids=[labelled[0].pk])
    training_jobs.cancel_training(run_id=run.run_id)
    assert training_jobs.run_training(run.run_id) == "cancelled"
    assert TrainingRun.objects.get(pk=run.pk).failure.startswith("cancelled")
    assert ClassifierVersion.objects.get(version="cancelled").status == "failed"

    broken = training_jobs.start_training(version="broken", base_model=str(tmp_path / "missing"),
                                          dataset_ids=[labelled[0].pk])
    with pytest.raises(OSError):
        training_jobs.run_training(broken.run_id)
    assert TrainingRun.objects.get(pk=broken.pk).status == "failed"
    assert ClassifierVersion.objects.get(version="broken").status == "failed"
    with pytest.raises(ModelserveError, match="already exists"):
        training_jobs.start_training(version="broken", base_model=base_model, dataset_ids=[labelled[0].pk])


def test_a_pm_starts_training_in_the_admin_and_watches_its_progress(labelled, base_model, settings, tmp_path,
                                                                    client, django_user_model, monkeypatch):
    settings.MODELSERVE_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    pm = django_user_model.objects.create_user("pm", is_staff=True, is_superuser=True)
    client.force_login(pm)
    response = client.post("/admin/modelserve/trainingrun/start/", {
        "version": "from-admin", "base_model": base_model, "datasets": [labelled[0].pk], "splits": ["train"],
        "epochs": 1, "learning_rate": 0.001, "batch_size": 2, "seed": 0,
    })
    assert response.status_code == 302
    run = TrainingRun.objects.get(version="from-admin")
    assert run.status == "finished"
    done = client.get(f"/admin/modelserve/trainingrun/{run.pk}/progress/", HTTP_HX_REQUEST="true")
    assert done.status_code == 286 and 'value="100"' in done.content.decode()  # polling stops

    monkeypatch.setattr(training_jobs, "async_task", lambda *args, **kwargs: None)
    running = training_jobs.start_training(version="still-running", base_model=base_model,
                                           dataset_ids=[labelled[0].pk])
    poll = client.get(f"/admin/modelserve/trainingrun/{running.pk}/progress/", HTTP_HX_REQUEST="true")
    assert poll.status_code == 200 and 'hx-trigger="every 2s"' in poll.content.decode()
    page = client.get("/admin/modelserve/trainingrun/").content.decode()
    assert "Start training" in page and "<progress" in page and "htmx" in page
    client.post("/admin/modelserve/trainingrun/", {"action": "cancel", "_selected_action": [running.pk]})
    assert TrainingRun.objects.get(pk=running.pk).cancel_requested

    bad = client.post("/admin/modelserve/trainingrun/start/", {
        "version": "from-admin", "base_model": base_model, "datasets": [labelled[0].pk], "splits": ["train"],
        "epochs": 1, "learning_rate": 0.001, "batch_size": 2, "seed": 0,
    })
    assert bad.status_code == 400 and "already exists" in bad.content.decode()

    contractor = django_user_model.objects.create_user("someone")
    client.force_login(contractor)
    assert client.get("/admin/modelserve/trainingrun/start/").status_code == 302


def test_training_through_the_api(labelled, base_model, settings, tmp_path, django_user_model, monkeypatch):
    from rest_framework.test import APIClient

    settings.MODELSERVE_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    monkeypatch.setattr(training_jobs, "async_task", lambda *args, **kwargs: None)
    api = APIClient()
    api.force_authenticate(django_user_model.objects.create_user("pm", is_superuser=True))
    body = {"version": "api-run", "base_model": base_model, "dataset_ids": [labelled[0].pk], "epochs": 1}
    started = api.post("/api/v1/training-runs", body, format="json")
    assert started.status_code == 201 and started.json()["manifest_size"] == 6
    run_id = started.json()["run_id"]
    assert api.get(f"/api/v1/training-runs/{run_id}").json()["status"] == "running"
    assert api.post(f"/api/v1/training-runs/{run_id}/cancel").json()["cancel_requested"] is True
    assert api.post("/api/v1/training-runs", body, format="json").status_code == 400  # version taken
    assert api.post("/api/v1/training-runs", {**body, "version": "x", "epochs": 0}, format="json").status_code == 400
    assert api.get("/api/v1/training-runs/unknown").status_code == 404
    api.force_authenticate(django_user_model.objects.create_user("c"))
    assert api.get(f"/api/v1/training-runs/{run_id}").status_code == 403
