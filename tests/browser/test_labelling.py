"""A contractor labels three snippets with the keyboard alone; HTMX swaps each next task in."""

from django.urls import reverse

from annotation.models import Dataset, Role, Vendor
from annotation.services import SnippetInput, import_snippets
from eventlog.models import Event
from tests.annotation.conftest import make_member
from tests.browser.conftest import htmx_settles, log_in, shoot

COMPLETIONS = ["he fell and broke his arm.", "she smiled and walked home.", "the dog slept in the castle."]


def test_a_contractor_labels_three_snippets_with_keys_1_2_3(page):
    contractor = make_member("keyboard", Role.CONTRACTOR, Vendor.objects.create(name="Acme"))
    dataset = Dataset.objects.create(name="stories")
    import_snippets(dataset=dataset, filename="s.jsonl", rows=[
        SnippetInput(f"the knight rode out, day {i}.", text, "initial", "train", i) for i, text in enumerate(COMPLETIONS)])
    log_in(page, contractor)
    documents = []
    page.on("request", lambda r: r.resource_type == "document" and documents.append(r.url))
    page.goto(reverse("annotation:task_page", args=[dataset.pk, "label"]))
    assert page.locator("#progress").inner_text() == "0"
    shoot(page, "labelling-1-first-task")

    seen = []
    for answered, key in enumerate("123", start=1):
        seen.append(page.locator("#task .completion").inner_text())
        with htmx_settles(page), page.expect_response(lambda r: "/answer" in r.url) as answer:
            page.keyboard.press(key)
        assert answer.value.status == 200 and answer.value.request.headers.get("hx-request") == "true"
        assert page.locator("#progress").inner_text() == str(answered)
        if answered == 2:
            shoot(page, "labelling-2-after-two-answers")

    assert page.get_by_text("Nothing is waiting for you here right now.").is_visible()
    shoot(page, "labelling-3-done")
    assert sorted(seen) == sorted(COMPLETIONS)  # each snippet once
    assert len(documents) == 1  # one page load: every next task came in by HTMX
    labels = Event.objects.filter(type="annotation.label_submitted").order_by("position")
    assert [e.payload["label"] for e in labels] == ["injurious", "not_injurious", "unsure"]
