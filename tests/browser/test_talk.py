"""A visitor talks to the filtered generator: a replayed completion below the promoted
classifier's chosen threshold, labelled as a replay."""

from annotation.models import Dataset
from annotation.services import SnippetInput, import_snippets
from modelserve import registry
from modelserve.interface import SnippetText, inference
from modelserve.models import FilteredSample
from tests.browser.conftest import shoot

PROMPT = "the knight walked home on the road ."
STORED = ["he smiled and ran home.", "she laughed with the dog.", "he fell and broke his arm.",
          "the horse hit his head.", "they slept in the castle.", "she cut her hand badly."]


def test_a_visitor_gets_a_replayed_completion_below_the_threshold(page, register, settings):
    register("talk-v1", seed=5)  # random weights: the stored completions score apart
    registry.promote(version="talk-v1")
    scores = dict(zip(STORED, inference().score("talk-v1", [SnippetText(PROMPT, c) for c in STORED]), strict=True))
    ranked = sorted(scores.values())
    threshold = (ranked[2] + ranked[3]) / 2  # half of the stored completions pass, half are caught
    registry.choose_threshold(version="talk-v1", threshold=threshold, method="chosen for the test")
    settings.GENERATOR_REPLAY = True
    import_snippets(dataset=Dataset.objects.create(name="stories"), filename="s.jsonl",
                    rows=[SnippetInput(PROMPT, c, "initial", "train") for c in STORED])

    page.goto("/talk/")
    shoot(page, "talk-1-empty")
    page.get_by_label("Story so far").press_sequentially(PROMPT, delay=5)
    with page.expect_response(lambda r: r.url.endswith("/talk/") and r.request.method == "POST") as answered:
        page.get_by_role("button", name="Continue the story").click()
    assert answered.value.status == 200 and answered.value.request.headers.get("hx-request") == "true"
    answer = page.locator("#answer")
    answer.locator(".completion").wait_for()
    shoot(page, "talk-2-answer")

    completion = answer.locator(".completion").inner_text()
    assert completion in STORED and scores[completion] < threshold
    assert "Replay: completions are drawn from those stored for this prompt" in answer.inner_text()
    assert "rejected before this one" in answer.inner_text()
    assert "talk-v1" not in page.content() and "Rejected proposals" not in page.content()  # visitors see no model
    sample = FilteredSample.objects.get()
    assert (sample.version, sample.threshold, sample.generator) == ("talk-v1", threshold, "replay")
    assert sample.completion == completion and sample.score < threshold
    assert all(score >= threshold for score in sample.rejected_scores)
    assert f"{len(sample.rejected_scores)} proposal" in answer.inner_text()
