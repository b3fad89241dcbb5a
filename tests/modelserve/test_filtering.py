"""The filtered generator: rejection sampling against the classifier's threshold, every draw an event."""

import hashlib

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotation.models import Role
from eventlog.models import Event
from modelserve import filtering, registry
from modelserve.errors import InvalidPrompt, ModelserveError
from modelserve.interface import SnippetText, inference
from modelserve.models import FilteredSample
from tests.annotation.conftest import make_member
from tests.tiny_models import CATCHES_ALL, LETS_THROUGH, WORDS

pytestmark = pytest.mark.django_db

PROMPT = "the knight walked home on the road ."


class Fake:
    """A deterministic generator: the i-th text of a call depends only on (seed, i)."""

    name = "fake"

    def __init__(self):
        self.calls = []

    def generate(self, prompt, *, n=1, max_new_tokens=96, temperature=1.0, top_p=0.95, seed=None,
                 stop=None):
        self.calls.append({"n": n, "seed": seed})
        return [self.text(seed, i) for i in range(n)]

    @staticmethod
    def text(seed, i):
        digest = hashlib.sha256(f"{seed}:{i}".encode()).digest()
        return " ".join(WORDS[b % len(WORDS)] for b in digest[:6]) + ". and then more\nnext line"


@pytest.fixture
def promoted(register):
    def make(version, **options):
        register(version, **options)
        registry.promote(version=version)
        return version

    return make


def draws(result_id):
    return list(Event.objects.filter(stream_type="filtered", stream_id=str(result_id)).order_by("version"))


def test_only_completions_below_the_threshold_come_back_and_every_rejected_draw_is_recorded(promoted):
    version = promoted("mixed")  # random weights: scores spread around one half
    fake = Fake()
    probe = [Fake.text(seed, 0).split(".")[0] + "." for seed in range(40)]
    scores = sorted(inference().score(version, [SnippetText(PROMPT, c) for c in probe]))
    threshold = scores[len(scores) // 2]
    result = filtering.filtered_completion(PROMPT, version=version, threshold=threshold, seed=1000, batch=4,
                                           using=fake)
    assert result.accepted and result.score < threshold
    assert result.completion.endswith(".") and "\n" not in result.completion  # one sentence
    assert result.score == pytest.approx(inference().score(version, [SnippetText(PROMPT, result.completion)])[0])
    assert all(d.score >= threshold for d in result.rejected)
    events = draws(result.request_id)
    assert [e.type for e in events] == (["modelserve.filtered_requested"]
                                        + ["modelserve.filtered_draw_rejected"] * len(result.rejected)
                                        + ["modelserve.filtered_answered"])
    assert events[0].payload["seed"] == 1000 and events[0].payload["generator"] == "fake"
    assert [e.payload["score"] for e in events[1:-1]] == [d.score for d in result.rejected]
    assert events[-1].payload["attempts"] == len(result.rejected) + 1 == result.attempts
    # Rounds growing 1, 2, 4, 4, ... draws, seeded from the request's seed and the draws so far.
    sizes = [c["n"] for c in fake.calls]
    assert sizes == [min(2**k, 4) for k in range(len(sizes))]
    assert [c["seed"] for c in fake.calls] == [1000 + sum(sizes[:k]) for k in range(len(sizes))]
    assert (result.rounds, result.drawn) == (len(sizes), sum(sizes))
    again = filtering.filtered_completion(PROMPT, version=version, threshold=threshold, seed=1000, batch=4,
                                          using=Fake())
    assert (again.completion, again.attempts) == (result.completion, result.attempts)


def test_failure_is_reported_after_exactly_one_hundred_rejected_draws(promoted):
    version = promoted("strict", bias=CATCHES_ALL)
    fake = Fake()
    result = filtering.filtered_completion(PROMPT, version=version, threshold=0.5, seed=3, using=fake)
    assert not result.accepted and result.attempts == 100 and len(result.rejected) == 100
    assert [c["n"] for c in fake.calls] == [1, 2, 4] + [8] * 11 + [5]  # growing rounds, the last cut to the bound
    assert Event.objects.filter(type="modelserve.filtered_draw_rejected").count() == 100
    sample = FilteredSample.objects.get(pk=result.request_id)
    assert (sample.completion, sample.attempts, len(sample.rejected_scores)) == (None, 100, 100)


def test_the_promoted_classifier_and_its_chosen_threshold_are_the_default(promoted):
    promoted("lenient", bias=LETS_THROUGH)
    with pytest.raises(ModelserveError, match="no threshold is chosen"):
        filtering.filtered_completion(PROMPT, using=Fake())
    registry.choose_threshold(version="lenient", threshold=0.002, method="simulated rejection sampling")
    result = filtering.filtered_completion(PROMPT, using=Fake())
    assert result.accepted and result.attempts == 1 and result.threshold == 0.002
    assert FilteredSample.objects.get().version == "lenient"
    with pytest.raises(InvalidPrompt):
        filtering.filtered_completion("   ", using=Fake())


@pytest.fixture
def ready(promoted, settings):
    promoted("lenient", bias=LETS_THROUGH)
    registry.choose_threshold(version="lenient", threshold=0.01, method="test")
    settings.GENERATOR_REPLAY = True  # the stored completions of a prompt, as in the demo
    from annotation.models import Dataset
    from annotation.services import SnippetInput, import_snippets

    dataset = Dataset.objects.create(name="stories")
    import_snippets(dataset=dataset, filename="s.jsonl", rows=[
        SnippetInput(PROMPT, "he smiled and ran home.", "initial", "train"),
        SnippetInput(PROMPT, "she laughed with the dog.", "initial", "train"),
    ])


def test_the_rest_endpoint_answers_anyone_and_shows_draws_to_pms_only(ready):
    anonymous = APIClient().post(reverse("filtered_generation"), {"prompt": PROMPT}, format="json")
    body = anonymous.json()
    assert anonymous.status_code == 200 and body["accepted"] and body["replay"] is True
    assert body["completion"] in {"he smiled and ran home.", "she laughed with the dog."}
    assert "rejected_draws" not in body and "generator" not in body and "lenient" not in anonymous.content.decode()
    pm = make_member("pm", Role.PROJECT_MANAGER)
    client = APIClient()
    client.force_authenticate(pm)
    answer = client.post(reverse("filtered_generation"), {"prompt": PROMPT, "seed": 5}, format="json").json()
    assert answer["rejected_draws"] == [] and answer["generator"] == "replay" and answer["score"] < 0.01
    empty = client.post(reverse("filtered_generation"), {"prompt": ""}, format="json")
    assert empty.status_code == 400


def test_a_visitor_is_told_nothing_of_the_configuration_when_it_cannot_answer(ready):
    unknown = APIClient().post(reverse("filtered_generation"), {"prompt": "a prompt nobody stored"}, format="json")
    assert unknown.status_code == 503 and unknown.json()["detail"] == "the filtered generator is not available right now"


def test_visitors_are_throttled(ready, settings):
    from django.core.cache import cache

    cache.clear()
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "filtered_generation": "2/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    api_settings.reload()
    SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        client = APIClient()
        statuses = [client.post(reverse("filtered_generation"), {"prompt": PROMPT}, format="json").status_code
                    for _ in range(3)]
        page = Client().post(reverse("talk"), {"prompt": PROMPT}, HTTP_HX_REQUEST="true")
    finally:
        api_settings.reload()
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        cache.clear()
    assert statuses == [200, 200, 429]
    assert page.status_code == 429


def test_the_demo_page_answers_a_partial_and_labels_replay(ready):
    client = Client(enforce_csrf_checks=True)
    page = client.get(reverse("talk"))
    assert page.status_code == 200 and 'name="prompt"' in page.content.decode()
    token = client.cookies["csrftoken"].value
    answer = client.post(reverse("talk"), {"prompt": PROMPT}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    html = answer.content.decode()
    assert answer.status_code == 200 and "<html" not in html
    assert "Replay" in html and ("he smiled and ran home." in html or "she laughed with the dog." in html)
    assert "Rejected proposals" not in html  # for project managers only
    assert client.post(reverse("talk"), {"prompt": PROMPT}, HTTP_HX_REQUEST="true").status_code == 403  # CSRF
    pm = make_member("pm", Role.PROJECT_MANAGER)
    client.force_login(pm)
    client.get(reverse("talk"))
    shown = client.post(reverse("talk"), {"prompt": PROMPT}, HTTP_HX_REQUEST="true",
                        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert "Rejected proposals and scores" in shown.content.decode()
