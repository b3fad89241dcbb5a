"""The direct quality check (filtered against unfiltered completions, judged by labellers) and
the classifier series (four classifiers trained with equal training size)."""

import hashlib

import pytest

from annotation import selectors as annotation_selectors
from annotation import services as annotation
from annotation.models import ComparisonPair, Dataset, Role, Snippet, Vendor
from evaluation import report, selectors, series, stats, thresholds
from evaluation.errors import EvaluationError
from modelserve import generation_jobs, registry
from modelserve.models import ClassifierVersion, GenerationJob, TrainingRun
from tests.annotation.conftest import make_member
from tests.tiny_models import CATCHES_ALL, LETS_THROUGH, WORDS, save_checkpoint

pytestmark = pytest.mark.django_db

PROMPTS = [f"the {w} went to the river ." for w in ("knight", "girl", "boy", "dog", "horse", "sword")]


class Fake:
    name = "fake"

    def generate(self, prompt, *, n=1, max_new_tokens=96, temperature=1.0, top_p=0.95, seed=None,
                 stop=None):
        def text(i):
            digest = hashlib.sha256(f"{prompt}:{seed}:{i}".encode()).digest()
            return " ".join(WORDS[b % len(WORDS)] for b in digest[:5]) + " ."

        return [text(i) for i in range(n)]


@pytest.fixture
def fake(monkeypatch):
    writer = Fake()
    monkeypatch.setattr(generation_jobs, "generator", lambda: writer)
    monkeypatch.setattr(generation_jobs, "generator_name", lambda: writer.name)
    return writer


@pytest.fixture
def labellers():
    vendor = Vendor.objects.create(name="Acme")
    return [make_member(f"l{i}", Role.CONTRACTOR, vendor) for i in range(2)]


def run_check(version, threshold=None):
    dataset = Dataset.objects.create(name=f"quality of {version}")
    job = generation_jobs.start_quality_check(dataset=dataset, prompts=PROMPTS, version=version, threshold=threshold)
    return GenerationJob.objects.get(pk=job.pk), dataset


def test_a_quality_check_pairs_each_filtered_completion_with_an_unfiltered_one(register, fake, labellers):
    register("lenient", bias=LETS_THROUGH)
    registry.choose_threshold(version="lenient", threshold=0.01, method="test")
    job, dataset = run_check("lenient")
    assert job.status == "finished" and job.report["pairs"] == len(PROMPTS) and job.report["filter_failures"] == 0
    pairs = list(ComparisonPair.objects.filter(dataset=dataset).select_related("first", "second"))
    assert len(pairs) == len(PROMPTS) and all(p.first.prompt == p.second.prompt for p in pairs)
    filtered = {r.completions[0] for r in job.results.all()}
    # The labeller prefers the filtered completion on the first three prompts it sees, then the other one.
    judged = []
    while task := annotation.next_task(user=labellers[0], dataset=dataset, kind="comparison"):
        shown = annotation_selectors.task_content(task)["completions"]
        prefer_filtered = len(judged) < 3
        pick = "first" if (shown[0] in filtered) == prefer_filtered else "second"
        annotation.submit_comparison(user=labellers[0], task_id=task.task_id, choice=pick)
        judged.append(1.0 if prefer_filtered else 0.0)
    check = selectors.quality_check(job.pk)
    assert (check.failures, check.pending, sorted(check.wins.tolist())) == (0, 0, sorted(judged))
    built = report.build(report.ReportSpec(classifiers=["lenient"], quality_checks=[str(job.pk)], seed=1))
    row = built["quality_checks"][0]
    assert row["preference"]["estimate"] == pytest.approx(0.5) and row["decided"] == len(PROMPTS)
    assert (row["preference"]["lower"], row["preference"]["upper"]) == pytest.approx(
        stats.bootstrap_clustered_mean(check.wins, check.groups, resamples=report.RESAMPLES, seed=1)[1:])
    # Table 2 reports the direct check as the classifier's quality (its threshold is the check's)
    assert built["table2"][0]["quality"] == row["preference"]
    assert built["table2"][0]["quality_source"] == f"direct quality check {job.pk}"
    assert "simulated_quality" not in built["table2"][0]


def test_threshold_selection_refuses_a_dataset_holding_a_quality_check(register, fake, labellers):
    register("lenient", bias=LETS_THROUGH)
    registry.choose_threshold(version="lenient", threshold=0.01, method="test")
    job, dataset = run_check("lenient")
    while task := annotation.next_task(user=labellers[0], dataset=dataset, kind="comparison"):
        annotation.submit_comparison(user=labellers[0], task_id=task.task_id, choice="same")
    with pytest.raises(EvaluationError, match="is not a comparison set: 6 of its judged pairs"):
        thresholds.select_threshold("lenient", dataset.pk)
    empty = Dataset.objects.create(name="nothing judged")
    with pytest.raises(EvaluationError, match="has no judged comparisons"):
        thresholds.select_threshold("lenient", empty.pk)


def test_a_filter_that_accepts_nothing_loses_every_comparison(register, fake):
    register("strict", bias=CATCHES_ALL)
    job, dataset = run_check("strict", threshold=0.5)
    check = selectors.quality_check(job.pk)
    assert job.report["filter_failures"] == len(PROMPTS) and check.failures == len(PROMPTS)
    assert check.wins.tolist() == [0.0] * len(PROMPTS) and not ComparisonPair.objects.filter(dataset=dataset).exists()


def test_a_quality_check_needs_a_threshold(register, fake):
    register("unset", bias=LETS_THROUGH)
    with pytest.raises(Exception, match="no threshold is chosen"):
        run_check("unset")


def label(dataset, labellers, rule):
    for labeller in labellers:
        while task := annotation.next_task(user=labeller, dataset=dataset):
            annotation.submit_label(user=labeller, task_id=task.task_id,
                                    label=rule(annotation_selectors.task_content(task)["completions"][0]))


def test_the_series_trains_four_classifiers_on_growing_data_of_equal_size(tmp_path, tokenizer, labellers):
    base = save_checkpoint(tmp_path / "base", tokenizer)
    stages = {}
    for n, (stage, source) in enumerate([("baseline", "initial"), ("manual", "manual_adversarial"),
                                         ("paraphrases", "paraphrase"), ("tool-assisted", "tool_assisted")]):
        dataset = Dataset.objects.create(name=stage)
        rows = [annotation.SnippetInput("the day went on .", f"{stage} {i} {w} .", source, "train")
                for i, w in enumerate(["he fell", "she smiled", "he bled", "they slept"] * (3 if n == 0 else 1))]
        annotation.import_snippets(dataset=dataset, filename="s.jsonl", rows=rows)
        label(dataset, labellers, lambda c: "injurious" if ("fell" in c or "bled" in c) else "not_injurious")
        stages[stage] = [dataset.pk]
    runs = series.start_series(prefix="s1", base_model=str(base), datasets=stages, hyperparameters={"epochs": 1})
    assert [r.version for r in runs] == ["s1-baseline", "s1-manual", "s1-paraphrases", "s1-tool-assisted"]
    specs = [TrainingRun.objects.get(pk=r.pk).spec for r in runs]
    assert [len(s["dataset_ids"]) for s in specs] == [1, 2, 3, 4] and all(s["equal_size"] for s in specs)
    sizes = [TrainingRun.objects.get(pk=r.pk).manifest_size for r in runs]
    assert sizes == [12] * 4  # each adversarial snippet replaces an initial one
    assert series.series_status("s1") == dict.fromkeys(series.versions("s1"), "ready")
    assert ClassifierVersion.objects.filter(version__startswith="s1-", status="ready").count() == 4
    assert Snippet.objects.count() == 24
