"""A project manager starts a retraining job in the admin and watches its progress bar finish."""

from annotation.models import Role
from modelserve.models import ClassifierVersion, TrainingRun
from tests.annotation.conftest import make_member
from tests.browser.conftest import log_in, shoot
from tests.modelserve.test_training_jobs import labelled  # noqa: F401 - a fixture: a labelled dataset
from tests.tiny_models import save_checkpoint


def test_a_pm_starts_training_in_the_admin_and_sees_the_run_finish(page, labelled, tokenizer, settings,  # noqa: F811
                                                                   tmp_path):
    settings.MODELSERVE_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    base_model = save_checkpoint(tmp_path / "base", tokenizer)
    dataset, _ = labelled
    pm = make_member("pm", Role.PROJECT_MANAGER)
    pm.is_staff = pm.is_superuser = True
    pm.save()
    log_in(page, pm)

    page.goto("/admin/")
    page.get_by_role("link", name="Training runs").click()
    page.wait_for_url("**/admin/modelserve/trainingrun/")
    assert page.locator("link[rel=stylesheet]").count() > 0  # the admin's CSS (served from static files)
    assert page.evaluate("getComputedStyle(document.querySelector('#header')).backgroundColor") != "rgba(0, 0, 0, 0)"
    page.get_by_role("link", name="Start training").click()
    page.wait_for_url("**/admin/modelserve/trainingrun/start/")
    page.get_by_label("Version").fill("retrained-v2")
    page.get_by_label("Base model").fill(str(base_model))
    page.get_by_label("Datasets").select_option(label=dataset.name)
    page.get_by_label("Epochs").fill("2")
    page.get_by_label("Batch size").fill("2")
    page.get_by_label("Learning rate").fill("0.001")
    shoot(page, "training-1-start-form")
    # django-q2 runs synchronously in the tests: the run trains inside this POST.
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/admin/modelserve/trainingrun/", timeout=60_000)
    page.get_by_text("Training retrained-v2: 6 snippets.").wait_for()
    row = page.locator("#result_list tbody tr", has_text="retrained-v2")
    bar = row.locator("progress")
    assert bar.get_attribute("value") == "100" and bar.get_attribute("max") == "100"
    assert "100% (6 of 6 steps) finished" in row.inner_text()
    # The bar polls its own URL; a finished run answers htmx's "stop polling" (286).
    with page.expect_response(lambda r: "/progress/" in r.url, timeout=5_000) as polled:
        pass
    assert polled.value.status == 286 and "finished" in polled.value.text()
    shoot(page, "training-2-finished")
    run = TrainingRun.objects.get(version="retrained-v2")
    assert run.status == "finished" and run.step == run.steps == 6
    assert ClassifierVersion.objects.get(version="retrained-v2").status == "ready"
