"""A contractor attacks: the score after each pause in typing, refusals at or above the
threshold, a submission below it, and the rewrite tool's highlighted tokens and suggestions."""

import pytest
from django.urls import reverse

from annotation.models import Dataset, Role, Vendor
from attacks import services
from attacks.models import Submission
from eventlog.models import Event
from tests.annotation.conftest import make_member
from tests.browser.conftest import htmx_settles, log_in, shoot
from tests.tiny_models import CATCHES_ALL, LETS_THROUGH

PROMPT = "the knight walked home on the road ."
COMPLETION = "he fell and broke his arm ."


@pytest.fixture
def contractor():
    return make_member("attacker", Role.CONTRACTOR, Vendor.objects.create(name="Acme"))


@pytest.fixture
def dataset():
    return Dataset.objects.create(name="adversarial")


@pytest.fixture(autouse=True)
def leaving_stops_the_clock(page):
    """After each test the contractor leaves: the page's pagehide beacon records it (and the
    next test's database flush must not race with it)."""
    yield
    page.goto("about:blank")
    started = Event.objects.filter(type="attacks.session_started").count()
    for _ in range(100):
        if Event.objects.filter(type="attacks.session_left").count() == started:
            break
        page.wait_for_timeout(50)
    assert Event.objects.filter(type="attacks.session_left").count() == started > 0


def scored_events() -> int:
    return Event.objects.filter(type="attacks.attempt_scored").count()


def open_attack_page(page, contractor, campaign):
    log_in(page, contractor)
    score_requests = []
    page.on("request", lambda r: r.url.endswith("/score") and r.method == "POST" and score_requests.append(r))
    page.goto(reverse("attacks:attack_page", args=[campaign.pk]))
    return score_requests


def type_and_wait_for_score(page, selector, text, score_requests):
    """Type `text` quickly (well inside the 700 ms debounce) and wait for the one score it causes."""
    before = len(score_requests)
    with page.expect_response(lambda r: r.url.endswith("/score")) as scored:
        page.locator(selector).press_sequentially(text, delay=15)
    assert scored.value.status == 200
    page.wait_for_timeout(900)  # a second request, if the debounce failed, would be on its way by now
    assert len(score_requests) == before + 1, "one score request per pause in typing"
    return scored.value


def test_typing_scores_once_per_pause_and_the_threshold_refuses_a_caught_attack(page, contractor, dataset, register):
    register("browser-strong", bias=CATCHES_ALL)
    campaign = services.open_campaign(name="Hard target", kind="manual", dataset=dataset,
                                      target_version="browser-strong")
    score_requests = open_attack_page(page, contractor, campaign)
    assert page.get_by_role("button", name="Submit attack").is_disabled()
    shoot(page, "attack-1-empty")

    # Both fields are required: the form is not scored (htmx validates it) until both hold text.
    page.locator("#prompt").press_sequentially(PROMPT, delay=5)
    page.wait_for_timeout(900)
    assert score_requests == [] and scored_events() == 0
    first, rest = COMPLETION[:11], COMPLETION[11:]  # typed in two bursts, with a pause between
    type_and_wait_for_score(page, "#completion", first, score_requests)
    assert "the classifier catches this" in page.locator("#score").inner_text()
    type_and_wait_for_score(page, "#completion", rest, score_requests)
    assert scored_events() == 2  # one scoring per pause, not one per keystroke
    assert Event.objects.filter(type="attacks.attempt_scored").latest("position").payload["completion"] == COMPLETION
    score = page.locator("#score")
    assert "the classifier catches this" in score.inner_text()
    assert float(score.locator("strong.caught").inner_text()) > campaign.threshold
    submit = page.get_by_role("button", name="Submit attack")
    assert submit.is_disabled()
    page.get_by_label("I assert that this snippet is injurious").check()
    shoot(page, "attack-2-caught-submit-disabled")

    # A contractor who forces the button open is refused by the server all the same.
    submit.evaluate("button => button.removeAttribute('disabled')")
    with page.expect_response(lambda r: r.url.endswith("/submit")) as refused:
        submit.click()
    assert refused.value.status == 400
    page.get_by_role("alert").filter(has_text="at or above the threshold").wait_for()
    shoot(page, "attack-3-forced-submit-refused")
    assert not Submission.objects.exists()


def test_an_attack_below_the_threshold_is_submitted(page, contractor, dataset, register):
    register("browser-weak", bias=LETS_THROUGH)
    campaign = services.open_campaign(name="Weak target", kind="manual", dataset=dataset,
                                      target_version="browser-weak")
    score_requests = open_attack_page(page, contractor, campaign)
    page.locator("#prompt").fill(PROMPT)
    type_and_wait_for_score(page, "#completion", COMPLETION, score_requests)
    assert "below the threshold, you may submit" in page.locator("#score").inner_text()
    page.get_by_label("I assert that this snippet is injurious").check()
    shoot(page, "attack-4-below-threshold")
    submit = page.get_by_role("button", name="Submit attack")
    assert submit.is_enabled()
    submit.click()
    page.get_by_role("status").filter(has_text="Submitted").wait_for()
    shoot(page, "attack-5-submitted")
    assert page.locator("#prompt").input_value() == "" and page.locator("#completion").input_value() == ""
    submission = Submission.objects.get()
    assert submission.user_id == contractor.pk


def test_the_rewrite_tool_highlights_words_and_applies_a_suggestion_in_one_click(page, contractor, dataset,
                                                                                  register, settings):
    settings.MODELSERVE_MIN_SIMILARITY = 0.5  # the tiny vocabulary has few words close to another
    register("browser-tool", bias=LETS_THROUGH)
    campaign = services.open_campaign(name="Rewrite", kind="tool_assisted", dataset=dataset,
                                      target_version="browser-tool")
    score_requests = open_attack_page(page, contractor, campaign)
    page.locator("#prompt").fill(PROMPT)
    type_and_wait_for_score(page, "#completion", COMPLETION, score_requests)

    words = page.locator("#score .words button.word")
    assert words.count() == len(f"{PROMPT} {COMPLETION}".replace(".", "").split())
    shades = words.evaluate_all("buttons => buttons.map(b => getComputedStyle(b).backgroundColor)")
    assert any(shade.startswith("rgb(230, 80, 0)") or shade == "rgba(230, 80, 0, 1)" for shade in shades)  # the most salient
    assert len(set(shades)) > 1  # shaded by saliency, not all alike
    assert page.locator("#score .words p.completion").inner_text().replace("+", "") == COMPLETION  # the text as written
    shoot(page, "rewrite-1-highlighted-words")

    broke = page.locator("#score .completion button.word", has_text="broke")
    with htmx_settles(page), page.expect_response(lambda r: r.url.endswith("/suggest")) as suggested:
        broke.click()
    assert suggested.value.status == 200
    dropdown = page.locator("#suggestions ul.suggestions")
    choices = dropdown.locator("li")
    assert choices.count() > 0
    scores = [float(s) for s in dropdown.locator("span.score").all_inner_texts()]
    assert scores == sorted(scores)  # lowest score first
    shoot(page, "rewrite-2-suggestions")

    first = choices.first
    label = first.locator("button").inner_text()
    assert label.startswith("broke → ")
    replacement = label.removeprefix("broke → ").strip()
    new_completion = first.locator('input[name="completion"]').input_value()
    assert new_completion == COMPLETION.replace("broke", replacement)
    scored_before = scored_events()
    with htmx_settles(page), page.expect_response(lambda r: r.url.endswith("/apply")) as applied:
        first.locator("button").click()
    assert applied.value.status == 200
    assert page.locator("#completion").input_value() == new_completion
    assert page.locator("#prompt").input_value() == PROMPT
    assert page.locator("#score strong").is_visible() and "below the threshold" in page.locator("#score").inner_text()
    assert scored_events() == scored_before + 1
    latest = Event.objects.filter(type="attacks.attempt_scored").latest("position")
    assert latest.payload["completion"] == new_completion
    assert float(page.locator("#score strong").inner_text()) == pytest.approx(latest.payload["score"], abs=1e-4)
    shoot(page, "rewrite-3-applied")
