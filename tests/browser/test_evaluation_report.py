"""A project manager opens the evaluation report: its tables, and its figures loaded."""

from django.urls import reverse

from annotation.models import Role
from tests.annotation.conftest import make_member
from tests.browser.conftest import log_in, shoot
from tests.evaluation.test_report import vendor_people, world  # noqa: F401 - fixtures: the report's small world


def test_a_pm_opens_the_report_and_its_figures_load(page, world):  # noqa: F811
    pm = make_member("pm", Role.PROJECT_MANAGER)
    log_in(page, pm)
    query = (f"classifiers=base&classifiers=robust&comparison_dataset={world.comparison_dataset}"
             f"&test_dataset={world.test_dataset}&campaigns={world.campaigns[0]}&seed=4")
    figures = []
    page.on("response", lambda r: "/evaluation/figure" in r.url and figures.append(r))
    page.goto(f"{reverse('evaluation:report')}?{query}")
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
