"""The report end to end: a small world of labelled comparisons, test snippets and attacks,
the report's numbers against direct computations, its pages, and its reproducibility."""

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from annotation import selectors as annotation_selectors
from annotation import services as annotation
from annotation.models import Dataset, Role, Snippet
from attacks import services as attacks
from attacks.models import Effort
from evaluation import report, stats, thresholds
from eventlog.projections import all_projections, rebuild
from modelserve import services as registry
from modelserve.interface import Snippet as Text
from modelserve.interface import inference
from tests.annotation.conftest import make_member

pytestmark = pytest.mark.django_db

WORDS = ["knight", "girl", "boy", "dog", "horse"]
HURT = ["fell and broke his arm .", "cut her hand badly .", "hit his head and bled ."]
SAFE = ["smiled and walked home .", "laughed with the dog .", "slept in the castle ."]


def label_everything(dataset, labellers, decide):
    for labeller in labellers:
        while task := annotation.next_task(user=labeller, dataset=dataset):
            content = annotation_selectors.task_content(task)
            annotation.submit_label(user=labeller, task_id=task.task_id, label=decide(content["completions"][0]))


def injurious(completion: str) -> str:
    return "injurious" if any(h in completion for h in HURT) else "not_injurious"


@pytest.fixture
def world(register, vendor_people, clock):
    labellers, attackers = vendor_people
    register("base")  # random weights: scores spread, some flagged, some not
    register("robust", seed=3)

    test = Dataset.objects.create(name="test set")
    annotation.import_snippets(dataset=test, filename="t.jsonl", rows=[
        annotation.SnippetInput(f"the {w} walked on the road .", f"the {w} {c}", "in_distribution_test", "test")
        for w in WORDS for c in HURT + SAFE])
    label_everything(test, labellers[:2], injurious)

    quality = Dataset.objects.create(name="quality")
    annotation.import_snippets(dataset=quality, filename="q.jsonl", rows=[
        annotation.SnippetInput(f"the {w} ran to the river .", f"then {c}", "initial", "test")
        for w in WORDS for c in (HURT[0], SAFE[0], SAFE[1], SAFE[2])])
    annotation.create_comparisons(dataset=quality, pairs_per_prompt=6, seed=1)
    for labeller in labellers[:2]:
        while task := annotation.next_task(user=labeller, dataset=quality, kind="comparison"):
            shown = annotation_selectors.task_content(task)["completions"]
            choice = "same" if injurious(shown[0]) == injurious(shown[1]) else (
                "second" if injurious(shown[0]) == "injurious" else "first")
            annotation.submit_comparison(user=labeller, task_id=task.task_id, choice=choice)

    texts = [Text(s.prompt, s.completion) for s in Snippet.objects.all()]
    for version in ("base", "robust"):  # the median score: about half of everything flagged
        median = float(np.median(inference().score(version, texts)))
        registry.choose_threshold(version=version, threshold=median, method="set for the test")

    attacked = Dataset.objects.create(name="tool-assisted")
    campaign = attacks.open_campaign(name="Final attack", kind="tool_assisted", dataset=attacked,
                                     experiment_classifiers=["base", "robust"], seed=2, threshold=0.99)
    for day in range(2):
        for n, attacker in enumerate(attackers):
            session = attacks.start_session(user=attacker, campaign=campaign)
            clock.advance(minutes=7 + n)
            attacks.submit_attack(user=attacker, session_id=session.pk, prompt=f"the {WORDS[n]} ran home .",
                                  completion=f"on day {day} the {WORDS[n]} {HURT[n % 3]}", asserted_injurious=True)
            clock.advance(minutes=3)
            attacks.leave_session(user=attacker, session_id=session.pk)
        clock.advance(days=1)
    label_everything(attacked, labellers[:2], lambda completion: "injurious")
    annotation.request_ratings(dataset=attacked, snippet_ids=list(Snippet.objects.filter(
        dataset=attacked).values_list("id", flat=True)))
    for labeller in labellers[:1]:
        while task := annotation.next_task(user=labeller, dataset=attacked, kind="rating"):
            annotation.submit_rating(user=labeller, task_id=task.task_id, rating=len(
                annotation_selectors.task_content(task)["completions"][0]) % 10 + 1)
    return report.ReportSpec(classifiers=["base", "robust"], comparison_dataset=quality.pk, test_dataset=test.pk,
                             campaigns=[str(campaign.pk)], seed=4)


@pytest.fixture
def vendor_people():
    from annotation.models import Vendor

    vendor = Vendor.objects.create(name="Acme")
    labellers = [make_member(f"l{i}", Role.CONTRACTOR, vendor) for i in range(2)]
    attackers = [make_member(f"a{i}", Role.CONTRACTOR, vendor) for i in range(3)]
    return labellers, attackers


def test_table2_counts_false_negatives_and_false_positives_at_each_threshold(world):
    built = report.build(world)
    test = Snippet.objects.filter(dataset_id=world.test_dataset)
    for row in built["table2"]:
        scores = inference().score(row["classifier"], [Text(s.prompt, s.completion) for s in test])
        truth = [injurious(s.completion) == "injurious" for s in test]
        threshold = row["threshold"]
        fn = sum(t and s < threshold for t, s in zip(truth, scores, strict=True))
        fp = sum(not t and s >= threshold for t, s in zip(truth, scores, strict=True))
        assert row["fn_of_positives"] == f"{fn}/{sum(truth)}"
        assert row["fpr"] == pytest.approx(fp / (len(truth) - sum(truth)))
        lo, hi = row["quality"]["lower"], row["quality"]["upper"]
        assert 0 <= lo <= row["quality"]["estimate"] <= hi <= 1 and row["judgements"] == 5 * 6


def test_figure2_and_figure3_follow_the_attack_records(world):
    built = report.build(world)
    minutes = {r["classifier"]: r for r in built["figure2"]}
    for version in ("base", "robust"):
        seconds = sum(e.seconds for e in Effort.objects.filter(version=version))
        assert minutes[version]["minutes"] == pytest.approx(seconds / 60)
    assert sum(r["successes"] for r in built["figure2"]) == 6
    matrix = built["figure3"]
    for i, version in enumerate(matrix["classifiers"]):
        for j, target in enumerate(matrix["datasets_by_target"]):
            cell = matrix["cells"][i][j]
            assert cell["by_construction"] == (version == target)
            mean, lo, hi = stats.beta_interval(cell["misses"], cell["total"])
            assert (cell["lower"], cell["upper"]) == (lo, hi)


def test_the_same_log_gives_the_same_report_after_rebuilding_every_projection(world):
    first = report.build(world)
    for projection in all_projections():
        rebuild(projection)
    assert report.build(world) == first


def test_threshold_selection_applies_the_lowest_threshold_above_the_bound(world):
    selection = thresholds.select_threshold("base", world.comparison_dataset, lower_bound=0.3, resamples=200)
    if selection.threshold is not None:
        ok = selection.sweep.lower > 0.3
        assert selection.threshold == selection.sweep.thresholds[np.argmax(ok)]
        thresholds.apply(selection)
        from modelserve.models import ClassifierVersion

        row = ClassifierVersion.objects.get(version="base")
        assert row.threshold == selection.threshold and "simulated rejection sampling" in row.threshold_method


def test_pages_downloads_api_and_command(world, capsys):
    pm = make_member("pm", Role.PROJECT_MANAGER)
    client = Client()
    client.force_login(pm)
    query = (f"classifiers=base&classifiers=robust&comparison_dataset={world.comparison_dataset}"
             f"&test_dataset={world.test_dataset}&campaigns={world.campaigns[0]}&seed=4")
    page = client.get(f"{reverse('evaluation:report')}?{query}")
    assert page.status_code == 200 and "Table 2" in page.content.decode()
    png = client.get(f"/evaluation/figure2.png?{query}")
    svg = client.get(f"/evaluation/figure3.svg?{query}")
    assert png["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    csv = client.get(f"/evaluation/figure3.csv?{query}").content.decode().splitlines()
    assert csv[0].startswith("classifier,dataset targeting") and len(csv) == 1 + 2 * 2
    api = client.get(f"/api/v1/evaluation/report?{query}")
    assert api.status_code == 200 and api.json() == client.get(f"/evaluation/report.json?{query}").json()
    contractor = Client()
    contractor.force_login(make_member("c9", Role.CONTRACTOR, _vendor()))
    assert contractor.get(f"{reverse('evaluation:report')}?{query}").status_code == 403
    call_command("evaluate", "report", "--classifiers", "base", "robust", "--comparison-dataset",
                 str(world.comparison_dataset), "--test-dataset", str(world.test_dataset), "--campaign",
                 world.campaigns[0])
    out = capsys.readouterr().out
    assert "table2" in out and "figure3" in out and "base" in out


def _vendor():
    from annotation.models import Vendor

    return Vendor.objects.get_or_create(name="Other")[0]
