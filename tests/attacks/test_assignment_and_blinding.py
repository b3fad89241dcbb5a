"""Per-day assignment in an experiment, and contractors blinded to the classifier they attack."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from scipy.stats import chisquare

from attacks import services
from attacks.assignment import classifier_for_day
from attacks.models import DayAssignment
from eventlog.models import Event
from modelserve import registry
from tests.attacks.conftest import LETS_THROUGH

PROMPT = "the knight walked home on the road ."
COMPLETION = "he fell and broke his arm ."


def test_the_draw_is_reproducible_and_ignores_the_order_classifiers_are_listed_in():
    day = date(2026, 5, 4)
    first = classifier_for_day(["a", "b", "c"], seed=11, user_id=7, day=day)
    assert first == classifier_for_day(["c", "a", "b"], seed=11, user_id=7, day=day)
    draws = {classifier_for_day(["a", "b", "c"], seed=s, user_id=7, day=day) for s in range(30)}
    assert draws == {"a", "b", "c"}  # the seed matters


def test_the_draw_is_roughly_uniform_over_many_contractor_days():
    classifiers = ["baseline", "manual", "paraphrases", "tool-assisted"]
    counts = dict.fromkeys(classifiers, 0)
    for user_id in range(1, 201):
        for offset in range(25):
            counts[classifier_for_day(classifiers, seed=2022, user_id=user_id, day=date(2026, 1, 1) + timedelta(offset))] += 1
    assert sum(counts.values()) == 5000
    assert chisquare(list(counts.values())).pvalue > 0.01
    assert min(counts.values()) > 1150  # each within a few percent of 1250


@pytest.mark.django_db
def test_fixed_within_a_day_changing_across_days_and_recorded_once(dataset, register, attackers, clock):
    register("exp-a", bias=LETS_THROUGH)
    register("exp-b", bias=LETS_THROUGH, seed=3)
    campaign = services.open_campaign(name="Difficulty", kind="tool_assisted", dataset=dataset,
                                      experiment_classifiers=["exp-a", "exp-b"], seed=5, time_zone="Pacific/Auckland")
    me = attackers[0]
    clock.now = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)  # 09:00 in Auckland
    seen = []
    for _ in range(12):
        for _ in range(3):  # several sessions a day, hours apart: one classifier
            services.start_session(user=me, campaign=campaign)
            clock.advance(hours=2)
        clock.advance(hours=18)
        seen.append(DayAssignment.objects.order_by("-day").values_list("day", "version").first())
    assert DayAssignment.objects.filter(user_id=me.pk).count() == 12
    assert Event.objects.filter(type="attacks.day_assigned").count() == 12
    assert len({version for _, version in seen}) == 2  # it changes across days
    for day, version in seen:
        assert version == classifier_for_day(["exp-a", "exp-b"], seed=5, user_id=me.pk, day=day)
    sessions = Event.objects.filter(type="attacks.session_started").order_by("position")
    assert {(s.payload["day"], s.payload["version"]) for s in sessions} == {(d.isoformat(), v) for d, v in seen}


@pytest.mark.django_db
def test_the_working_day_is_the_experiments_time_zone(dataset, register, attackers, clock):
    register("exp-a", bias=LETS_THROUGH)
    register("exp-b", bias=LETS_THROUGH, seed=3)
    campaign = services.open_campaign(name="Difficulty", kind="manual", dataset=dataset,
                                      experiment_classifiers=["exp-a", "exp-b"], seed=5, time_zone="Pacific/Auckland")
    clock.now = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # already 3 March in Auckland
    services.start_session(user=attackers[0], campaign=campaign)
    assert DayAssignment.objects.get().day == date(2026, 3, 3)


# -- blinding --------------------------------------------------------------------------------


def _attacker_for(version, attackers, seed, day):
    for user in attackers:
        if classifier_for_day(["blind-alpha-7f3", "blind-omega-2c9"], seed=seed, user_id=user.pk, day=day) == version:
            return user
    pytest.skip("no attacker drew this classifier")  # the fixture below makes enough attackers


@pytest.fixture
def many_attackers(vendor):
    from annotation.models import Role
    from tests.annotation.conftest import make_member

    return [make_member(f"b{i}", Role.CONTRACTOR, vendor) for i in range(12)]


def _session_responses(user, campaign, completion, retire=None):
    """Every response a contractor gets in a full attack session (pages, partials, refusals)."""
    client = Client()
    client.force_login(user)
    htmx = {"HTTP_HX_REQUEST": "true"}
    responses = [client.get(reverse("home")), client.get(reverse("attacks:attack_home"))]
    page = client.get(reverse("attacks:attack_page", args=[campaign.pk]))
    responses.append(page)
    session_id = re.search(r"/attack/session/([0-9a-f-]{36})/score", page.content.decode()).group(1)

    def post(name, **data):
        response = client.post(reverse(f"attacks:{name}", args=[session_id]), data, **htmx)
        responses.append(response)
        return response

    text = {"prompt": PROMPT, "completion": completion}
    assert post("score", **text).status_code == 200
    post("score", prompt="", completion=completion)
    assert post("suggest", tool="substitutions", index=3, **text).status_code == 200
    assert post("suggest", tool="insertions", index=3, **text).status_code == 200
    assert post("suggest", tool="edit_map", **text).status_code == 200
    post("suggest", tool="substitutions", index=0, **text)  # [CLS]: refused
    post("suggest", tool="substitutions", index=999, **text)
    post("apply", prompt=PROMPT, completion="he fell and cut his arm .")
    post("submit", **text)  # not asserted injurious: refused
    assert post("submit", injurious="on", **text).status_code == 200
    post("submit", injurious="on", **text)  # a duplicate: refused
    if retire:
        registry.retire(version=retire)
        post("score", prompt=PROMPT, completion="he hit his head .")  # the classifier is gone
    assert post("leave").status_code == 204
    return responses


@pytest.mark.django_db
def test_nothing_a_contractor_receives_reveals_the_classifier(dataset, register, many_attackers, clock):
    folders = {
        "blind-alpha-7f3": register("blind-alpha-7f3", bias=LETS_THROUGH, base_model="alpha-backbone"),
        "blind-omega-2c9": register("blind-omega-2c9", bias=LETS_THROUGH, seed=3, base_model="omega-backbone"),
    }
    campaign = services.open_campaign(name="Difficulty", kind="tool_assisted", dataset=dataset,
                                      experiment_classifiers=list(folders), seed=9)
    day = clock.now.date()
    runs = {}
    for version, completion in zip(folders, [COMPLETION, "she cut her hand ."], strict=True):
        user = _attacker_for(version, many_attackers, 9, day)
        runs[version] = _session_responses(user, campaign, completion, retire=version)
        assert DayAssignment.objects.get(user_id=user.pk).version == version

    secrets = ["blind-alpha-7f3", "blind-omega-2c9", "alpha", "omega", "backbone",
               *[str(f) for f in folders.values()], *[f.name for f in folders.values()], "ckpt-"]
    for version, responses in runs.items():
        for response in responses:
            exposed = [response.content.decode(errors="replace"), *(f"{k}: {v}" for k, v in response.items()),
                       *(f"{c.key}={c.value}" for c in response.cookies.values())]
            for secret in secrets:
                assert not any(secret in part for part in exposed), (version, response.status_code, secret)
    shapes = {version: [(r.status_code, sorted(k for k, _ in r.items())) for r in rs] for version, rs in runs.items()}
    assert shapes["blind-alpha-7f3"] == shapes["blind-omega-2c9"]  # same statuses, same headers
    assert Event.objects.filter(type="attacks.attack_submitted").count() == 2
