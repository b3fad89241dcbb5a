"""A project manager computes the evaluation report, watches it being computed, and opens its
figures; a report without attacks says what is missing instead of drawing empty axes."""

from dataclasses import asdict

from django.urls import reverse
from uuid_utils.compat import uuid7

from annotation.models import Dataset, Role
from attacks import services as attacks
from evaluation import jobs, report
from evaluation.models import Computation
from eventlog.reading import head_position
from tests.annotation.conftest import make_member
from tests.browser.conftest import log_in, shoot
from tests.evaluation.test_report import vendor_people, world  # noqa: F401 - fixtures: the report's small world


def test_a_pm_computes_the_report_and_its_figures_load(page, world):  # noqa: F811
    pm = make_member("pm", Role.PROJECT_MANAGER)
    log_in(page, pm)
    query = (f"classifiers=base&classifiers=robust&comparison_dataset={world.comparison_dataset}"
             f"&test_dataset={world.test_dataset}&campaigns={world.campaigns[0]}&seed=4")
    figures = []
    page.on("response", lambda r: "/evaluation/figure" in r.url and figures.append(r))
    page.goto(f"{reverse('evaluation:report')}?{query}")
    page.get_by_text("This report is not computed yet").wait_for()
    page.get_by_role("button", name="Compute the report").click()
    page.get_by_role("heading", name="Table 2").wait_for()
    page.wait_for_function("() => Array.from(document.images).every(image => image.complete)")

    images = page.locator("main img")
    assert images.count() == 2
    widths = images.evaluate_all("images => images.map(image => [image.naturalWidth, image.getBoundingClientRect().width])")
    for natural, shown in widths:
        assert natural > 0 and 0 < shown <= page.viewport_size["width"]  # loaded, and fits the page
    assert sorted(r.status for r in figures) == [200, 200]
    assert all(r.headers["content-type"] == "image/png" for r in figures)
    rows = page.locator("main table").first.locator("tr")
    assert rows.count() == 3 and "base" in rows.nth(1).inner_text() and "robust" in rows.nth(2).inner_text()
    shoot(page, "evaluation-report")


def test_the_page_shows_progress_then_the_report(page, world):  # noqa: F811
    """A job still running: the page says so and what it is doing, then shows the report by itself."""
    pm = make_member("pm", Role.PROJECT_MANAGER)
    log_in(page, pm)
    spec = report.ReportSpec(classifiers=["base"], test_dataset=world.test_dataset)
    params = asdict(spec)
    row = Computation.objects.create(id=uuid7(), kind="report", params=params,
                                     params_key=jobs.params_key("report", params), log_position=head_position(),
                                     stage="Table 2: scoring the test set")
    page.goto(f"{reverse('evaluation:report')}?classifiers=base&test_dataset={world.test_dataset}")
    page.get_by_text("Computing at log position").wait_for()
    assert "Table 2: scoring the test set" in page.locator("#computation").inner_text()
    shoot(page, "evaluation-report-computing")
    Computation.objects.filter(pk=row.pk).update(status="finished", result=report.build(spec))
    page.get_by_role("heading", name="Table 2").wait_for(timeout=10_000)  # the page polled and swapped
    assert page.locator("text=Computing at log position").count() == 0


def test_a_report_without_successful_attacks_says_what_is_missing(page, register):
    register("lonely")
    dataset = Dataset.objects.create(name="nothing attacked yet")
    campaign = attacks.open_campaign(name="Quiet", kind="tool_assisted", dataset=dataset, target_version="lonely")
    pm = make_member("pm", Role.PROJECT_MANAGER)
    log_in(page, pm)
    page.goto(f"{reverse('evaluation:report')}?classifiers=lonely&campaigns={campaign.pk}")
    page.get_by_role("button", name="Compute the report").click()
    page.get_by_role("heading", name="Figure 3").wait_for()
    text = page.locator("#computation").inner_text()
    assert "No successful tool-assisted attacks yet" in text
    assert "No successful tool-assisted attacks against the chosen classifiers yet" in text
    assert "Test set: no test dataset chosen" in text and "Threshold: no threshold chosen for lonely" in text
    assert page.locator("main img").count() == 0  # no empty axes
    shoot(page, "evaluation-report-missing")
