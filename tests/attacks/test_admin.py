"""Project managers run campaigns from the admin; contractors cannot."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from annotation import services as annotation
from annotation.models import Role
from attacks import services
from attacks.models import Campaign, ParaphraseJob, TargetHistory
from tests.annotation.conftest import make_member
from tests.attacks.conftest import LETS_THROUGH

pytestmark = pytest.mark.django_db


@pytest.fixture
def pm_client():
    user = make_member("pm", Role.PROJECT_MANAGER)
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def versions(register):
    register("adm-a", bias=LETS_THROUGH)
    register("adm-b", bias=LETS_THROUGH, seed=3)
    return ["adm-a", "adm-b"]


def open_form(pm_client, dataset, **fields):
    data = {"name": "Round one", "kind": "manual", "dataset": dataset.pk, "split": "train", "seed": 0,
            "threshold": 0.05, "idle_cap_seconds": 600, "time_zone": "UTC", **fields}
    return pm_client.post(reverse("admin:attacks_campaign_add"), data)


def test_a_pm_opens_a_campaign_switches_its_target_and_sees_the_effort(pm_client, dataset, versions, attackers):
    response = open_form(pm_client, dataset, target_version="adm-a")
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:attacks_campaign_change",
                                                                   args=[campaign.pk])
    session = services.start_session(user=attackers[0], campaign=campaign)
    services.submit_attack(user=attackers[0], session_id=session.pk, prompt="the dog ran home .",
                           completion="it hurt its leg .", asserted_injurious=True)
    page = pm_client.get(response.url)
    assert page.status_code == 200 and "adm-a" in page.content.decode()
    switched = pm_client.post(response.url, {"version": "adm-b"})
    assert switched.status_code == 302
    assert list(TargetHistory.objects.values_list("version", flat=True)) == ["adm-a", "adm-b"]


def test_the_form_shows_refusals_and_opens_nothing(pm_client, dataset, versions):
    both = open_form(pm_client, dataset, target_version="adm-a", experiment_classifiers=versions)
    assert both.status_code == 400 and "not both" in both.content.decode()
    named = open_form(pm_client, dataset, name="beat adm-a", target_version="adm-a")
    assert "must not name a classifier" in named.content.decode()
    assert not Campaign.objects.exists()
    experiment = open_form(pm_client, dataset, experiment_classifiers=versions, seed=4)
    assert experiment.status_code == 302 and Campaign.objects.get().experiment_classifiers == versions


def test_a_pm_queues_paraphrases_of_confirmed_successes(pm_client, dataset, versions, attackers, labellers,
                                                        monkeypatch):
    manual = services.open_campaign(name="Manual", kind="manual", dataset=dataset, target_version="adm-a")
    services.open_campaign(name="Paraphrases", kind="paraphrase", dataset=dataset, target_version="adm-a")
    session = services.start_session(user=attackers[0], campaign=manual)
    submission = services.submit_attack(user=attackers[0], session_id=session.pk, prompt="the dog ran home .",
                                        completion="it hurt its leg .", asserted_injurious=True)
    changelist = reverse("admin:attacks_submission_changelist")
    early = pm_client.post(changelist, {"action": "paraphrase", "_selected_action": [submission.pk]}, follow=True)
    assert "None of these is confirmed injurious" in early.content.decode()
    for labeller in labellers[:2]:
        task = annotation.next_task(user=labeller, dataset=dataset)
        annotation.submit_label(user=labeller, task_id=task.task_id, label="injurious")
    monkeypatch.setattr("attacks.paraphrasing.run_paraphrasing", lambda job_id: None)  # the queue only
    chosen = pm_client.post(changelist, {"action": "paraphrase", "_selected_action": [submission.pk]})
    assert chosen.status_code == 302
    form = pm_client.get(chosen.url)
    assert "{completion}" in form.content.decode()
    paraphrase_campaign = Campaign.objects.get(kind="paraphrase")
    queued = pm_client.post(chosen.url, {"campaign": paraphrase_campaign.pk, "goal": 5, "budget": 20,
                                         "few_shot_prompt": "Say again: {prompt} / {completion} ->"})
    assert queued.status_code == 302, re.findall(r"errorlist.{0,300}", queued.content.decode())
    job = ParaphraseJob.objects.get()
    assert (job.source_snippet_id, job.goal, job.budget) == (submission.snippet_id, 5, 20)
    jobs_page = pm_client.get(reverse("admin:attacks_paraphrasejob_changelist"))
    assert "0 / 5 · 0 / 20" in jobs_page.content.decode()


def test_contractors_cannot_see_the_attack_admin(attackers):
    client = Client()
    attackers[0].is_staff = True
    attackers[0].save()
    client.force_login(attackers[0])
    assert client.get(reverse("admin:attacks_campaign_changelist")).status_code == 403
