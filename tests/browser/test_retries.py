"""A dropped response in the browser: the server labelled, the page never heard back; the
contractor presses the key again and the page sends the same Idempotency-Key, so the label is
recorded once and the page shows what the first request answered."""

from django.urls import reverse

from annotation.models import Dataset, Role, Vendor
from annotation.services import SnippetInput, import_snippets
from eventlog.models import Event
from tests.annotation.conftest import make_member
from tests.browser.conftest import htmx_settles, log_in, shoot


def test_a_label_whose_response_was_lost_is_recorded_once_when_pressed_again(page):
    contractor = make_member("retrier", Role.CONTRACTOR, Vendor.objects.create(name="Acme"))
    dataset = Dataset.objects.create(name="stories")
    import_snippets(dataset=dataset, filename="s.jsonl", rows=[
        SnippetInput(f"the knight rode out, day {i}.", f"he fell, day {i}.", "initial", "train", i) for i in range(2)])
    log_in(page, contractor)
    page.goto(reverse("annotation:task_page", args=[dataset.pk, "label"]))
    first_task = page.locator("#task .completion").inner_text()

    sent = []

    def drop_the_first_answer(route):
        sent.append(route.request.headers.get("idempotency-key"))
        if len(sent) == 1:
            page.failures_expected.add(route.request.url)
            route.fetch()  # the server does the work...
            route.abort("connectionreset")  # ...and the answer never reaches the page
        else:
            route.continue_()

    page.route("**/answer", drop_the_first_answer)
    with page.expect_event("requestfailed"):
        page.keyboard.press("1")
    assert page.locator("#task .completion").inner_text() == first_task  # nothing swapped in
    assert Event.objects.filter(type="annotation.label_submitted").count() == 1

    with htmx_settles(page), page.expect_response(lambda r: "/answer" in r.url) as retried:
        page.keyboard.press("1")
    assert retried.value.status == 200 and retried.value.headers.get("idempotent-replayed") == "true"
    assert len(sent) == 2 and sent[0] and sent[0] == sent[1]
    assert Event.objects.filter(type="annotation.label_submitted").count() == 1
    assert page.locator("#progress").inner_text() == "1"
    assert page.locator("#task .completion").inner_text() != first_task  # the next task, as first served
    shoot(page, "retry-after-a-lost-response")

    with htmx_settles(page), page.expect_response(lambda r: "/answer" in r.url) as next_answer:
        page.keyboard.press("2")  # a new answer: a new key
    assert next_answer.value.headers.get("idempotent-replayed") is None and sent[2] != sent[0]
    assert Event.objects.filter(type="annotation.label_submitted").count() == 2
