"""Refusals and slow answers in the browser: each refusal shows its message in the region that
asked, with the page, its shortcuts and the text being written left as they were, with
DJANGO_DEBUG on and off; a request that takes a while shows that it is under way."""

import time

import pytest
from django.urls import reverse

from annotation.models import Dataset, Role, Vendor
from annotation.services import SnippetInput, import_snippets
from attacks import services
from eventlog.models import Event
from modelserve.errors import ModelserveError
from tests.annotation.conftest import make_member
from tests.browser.conftest import htmx_settles, log_in, shoot
from tests.tiny_models import CATCHES_ALL, LETS_THROUGH

PROMPT = "Sir Aldric didn't walk home on the road."
COMPLETION = "He fell and broke his arm."

pytestmark = pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])


@pytest.fixture
def contractor():
    return make_member("attacker", Role.CONTRACTOR, Vendor.objects.create(name="Acme"))


@pytest.fixture(autouse=True)
def debug_setting(settings, debug):
    settings.DEBUG = debug


def the_page_is_whole(page):
    assert page.locator("header h1").inner_text() == "Adversarial training"
    assert page.locator("main h2").count() == 1


def open_attack_page(page, contractor, campaign):
    log_in(page, contractor)
    page.goto(reverse("attacks:attack_page", args=[campaign.pk]))
    page.locator("#prompt").fill(PROMPT)
    with page.expect_response(lambda r: r.url.endswith("/score")):
        page.locator("#completion").fill(COMPLETION)
    page.locator("#score strong").wait_for()


class Unavailable:
    """An inference service that has failed."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ModelserveError("the model server is down")

        return fail


def leave(page):
    """The pagehide beacon records the end of the session before the next test's flush."""
    started = Event.objects.filter(type="attacks.session_started").count()
    page.goto("about:blank")
    for _ in range(100):
        if Event.objects.filter(type="attacks.session_left").count() == started:
            return
        page.wait_for_timeout(50)


def test_a_missing_tick_and_a_refused_submission_are_messages_beside_the_button(page, contractor, register, debug):
    register("errors-strong", bias=CATCHES_ALL)
    campaign = services.open_campaign(name="Hard", kind="tool_assisted", dataset=Dataset.objects.create(name="adv"),
                                      target_version="errors-strong")
    open_attack_page(page, contractor, campaign)
    submit = page.get_by_role("button", name="Submit attack")
    submit.evaluate("button => button.removeAttribute('disabled')")  # forced open: the server decides
    with page.expect_response(lambda r: r.url.endswith("/submit")) as refused:
        submit.click()
    assert refused.value.status == 400
    page.get_by_role("alert").filter(has_text="tick that the snippet is injurious").wait_for()
    the_page_is_whole(page)
    assert page.locator("#prompt").input_value() == PROMPT and page.locator("#completion").input_value() == COMPLETION
    assert page.locator("#score .words button.word").count() > 0  # the score and the tools stay
    shoot(page, f"errors-1-missing-tick-{debug}")

    page.get_by_label("I assert that this snippet is injurious").check()
    with page.expect_response(lambda r: r.url.endswith("/submit")) as refused:
        submit.click()
    assert refused.value.status == 400
    page.get_by_role("alert").filter(has_text="at or above the threshold").wait_for()
    assert page.get_by_label("I assert that this snippet is injurious").is_checked()
    assert page.locator("#completion").input_value() == COMPLETION
    shoot(page, f"errors-2-refused-{debug}")

    # The page still works: an edit is scored, and the message makes way for the new score.
    with htmx_settles(page), page.expect_response(lambda r: r.url.endswith("/score")) as scored:
        page.locator("#completion").press_sequentially(" Badly.", delay=10)
    assert scored.value.status == 200
    assert page.get_by_role("alert").count() == 0 and "catches this" in page.locator("#score").inner_text()

    with pytest.MonkeyPatch.context() as patch:  # the classifier fails: 503, said in the score's place
        patch.setattr(services, "inference", lambda: Unavailable())
        with page.expect_response(lambda r: r.url.endswith("/score")) as busy:
            page.locator("#completion").press_sequentially(" Sadly.", delay=10)
        assert busy.value.status == 503
        page.get_by_role("alert").filter(has_text="the classifier is not available right now").wait_for()
    the_page_is_whole(page)
    assert page.get_by_role("button", name="Submit attack").is_disabled()
    shoot(page, f"errors-3-busy-{debug}")

    services.close_campaign(campaign=campaign)  # closed meanwhile: 409, said in place
    with page.expect_response(lambda r: r.url.endswith("/score")) as closed:
        page.locator("#completion").press_sequentially(" Again.", delay=10)
    assert closed.value.status == 409
    page.get_by_role("alert").filter(has_text="this campaign is closed").wait_for()
    the_page_is_whole(page)
    assert page.locator("#completion").input_value() == COMPLETION + " Badly. Sadly. Again."
    shoot(page, f"errors-4-closed-{debug}")
    leave(page)


def test_a_task_answered_in_another_tab_is_said_in_place_and_the_keys_go_on_working(page, contractor, debug):
    dataset = Dataset.objects.create(name="stories")
    import_snippets(dataset=dataset, filename="s.jsonl", rows=[
        SnippetInput(f"the knight rode out, day {i}.", f"he fell, day {i}.", "initial", "train", i) for i in range(3)])
    log_in(page, contractor)
    address = reverse("annotation:task_page", args=[dataset.pk, "label"])
    page.goto(address)
    other = page.context.new_page()
    other.goto(address)
    assert other.locator("#task .completion").inner_text() == page.locator("#task .completion").inner_text()
    with other.expect_response(lambda r: "/answer" in r.url):
        other.keyboard.press("1")
    other.close()

    with htmx_settles(page), page.expect_response(lambda r: "/answer" in r.url) as answered:
        page.keyboard.press("2")  # the same task, answered differently in the other tab
    assert answered.value.status == 400
    page.get_by_role("alert").filter(has_text="already answered").wait_for()
    the_page_is_whole(page)
    shoot(page, f"errors-5-answered-elsewhere-{debug}")
    with htmx_settles(page), page.expect_response(lambda r: "/answer" in r.url) as next_answer:
        page.keyboard.press("2")  # the next task, from the keyboard as before
    assert next_answer.value.status == 200
    labels = list(Event.objects.filter(type="annotation.label_submitted").values_list("payload__label", flat=True))
    assert sorted(labels) == ["injurious", "not_injurious"]


def test_slow_requests_show_that_they_are_under_way(page, contractor, register, settings, debug):
    settings.MODELSERVE_MIN_SIMILARITY = 0.5
    register("errors-slow", bias=LETS_THROUGH)
    campaign = services.open_campaign(name="Slow", kind="tool_assisted", dataset=Dataset.objects.create(name="adv"),
                                      target_version="errors-slow")
    log_in(page, contractor)
    page.goto(reverse("attacks:attack_page", args=[campaign.pk]))

    def slowly(route):
        time.sleep(0.8)
        route.continue_()

    page.route("**/attack/session/*/*", slowly)
    busy_score, busy_suggest = page.locator("#busy-score"), page.locator("#busy-suggest")
    assert not busy_score.is_visible() and not busy_suggest.is_visible()
    page.locator("#prompt").fill(PROMPT)
    page.locator("#completion").fill(COMPLETION)
    busy_score.wait_for(state="visible")
    shoot(page, f"busy-1-scoring-{debug}")
    busy_score.wait_for(state="hidden")
    page.locator("#score strong").wait_for()

    page.locator("#score button.word", has_text="broke").click()
    busy_suggest.wait_for(state="visible")
    busy_suggest.wait_for(state="hidden")
    page.locator("#suggestions li, #suggestions p.muted").first.wait_for()

    with page.expect_response(lambda r: r.url.endswith("/score")):  # the tick is an input of the form too
        page.get_by_label("I assert that this snippet is injurious").check()
    submit = page.get_by_role("button", name="Submit attack")
    submit.click()
    page.get_by_text("submitting…").wait_for(state="visible")
    assert submit.is_disabled()  # no second click while it runs
    page.get_by_role("status").filter(has_text="Submitted").wait_for()
    page.unroute("**/attack/session/*/*")
    leave(page)


@pytest.fixture
def fresh_rate_limits():
    """The visitors' rate limit counts in the cache: other tests' requests do not count here, nor
    these in later tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def test_the_filtered_generator_unavailable_is_said_under_the_prompt(page, debug, fresh_rate_limits):
    """No promoted classifier: 503, shown in the answer's place; the prompt stays."""
    page.goto(reverse("talk"))
    page.locator("#prompt").fill("The knight rode out at dawn.")
    with page.expect_response(lambda r: r.url.endswith("/talk/")) as answered:
        page.get_by_role("button", name="Continue the story").click()
    assert answered.value.status == 503
    page.locator("#answer").get_by_role("alert").filter(has_text="not available right now").wait_for()
    the_page_is_whole(page)
    assert page.locator("#prompt").input_value() == "The knight rode out at dawn."
