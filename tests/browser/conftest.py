"""Browser tests: real Chromium (Debian's package, driven by Playwright) against `live_server`.

Chromium is never downloaded: the tests use `/usr/bin/chromium` (`apt-get install chromium`;
`.ci/run` installs it) and skip, saying so, where it is missing. Every test saves screenshots
under `var/test-artifacts/browser/` at a 1280x800 viewport.
"""

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts" / "browser"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000


@pytest.fixture(scope="package")
def browser():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` to run the browser tests "
                    "(CI installs it; Playwright's own browser downloads are not used)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Playwright's sync API keeps an asyncio loop running on this thread, which Django's
    # async-safety check would take for an async context: the test code's ORM calls are
    # synchronous, so allow them, only while the browser is up.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--disable-dev-shm-usage"])
            yield browser
            browser.close()


class Problems:
    """What went wrong in the page that no assertion asked about: script errors, static files
    that did not load."""

    def __init__(self):
        self.items: list[str] = []

    def watch(self, page):
        page.on("pageerror", lambda error: self.items.append(f"script error: {error}"))
        page.on("requestfailed", lambda request: request.url not in page.failures_expected
                and self.items.append(f"failed: {request.url} {request.failure}"))
        page.on("response", lambda response: response.status >= 400 and "/static/" in response.url
                and self.items.append(f"{response.status}: {response.url}"))


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.failures_expected = set()  # URLs a test makes fail on purpose
    problems = Problems()
    problems.watch(page)
    page.live_url = live_server.url
    pending = set()
    page.on("request", lambda r: pending.add(r))
    page.on("requestfinished", lambda r: pending.discard(r))
    page.on("requestfailed", lambda r: pending.discard(r))
    yield page
    found = list(problems.items)  # what happened during the test, not while leaving below
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        shoot(page, f"{request.node.name}-FAILED")
    # Leave the page and let the server answer everything before the database is flushed for
    # the next test (a page's pagehide beacons are not seen here: tests wait for their effect).
    page.goto("about:blank")
    for _ in range(100):
        if not pending:
            break
        page.wait_for_timeout(50)
    context.close()
    assert not found, found


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


def shoot(page, name: str) -> Path:
    """A full-page screenshot at the 1280-pixel viewport, kept as a test artefact."""
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page, user) -> None:
    """Give the browser a session of `user` (the login form itself has its own tests)."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": page.live_url}])


@contextmanager
def htmx_settles(page):
    """Wait, after the block, until htmx has swapped a response in and settled it: only then
    are the new elements' hx-* attributes live (htmx processes them in the settle step, about
    20 ms after the swap; a click before that would be a plain form submission)."""
    page.evaluate("""() => {
        window.htmxSettled = false;
        document.body.addEventListener("htmx:afterSettle", () => { window.htmxSettled = true; }, {once: true});
    }""")
    yield
    page.wait_for_function("() => window.htmxSettled === true")
