"""The pages in a real headless browser: a staff member finds a private model
on the landing page, reads how to call it, and calls it with Try it, on its
page and in the admin."""

from __future__ import annotations

import re

import pytest

from monitoring.models import RequestLog
from tests.browser import ARTIFACTS, NO_PLAYWRIGHT, chromium_page
from tests.servers import IRIS_ROW

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

STAFF_PASSWORD = "staff-pass-123"  # tests/conftest.py's staff_user


@pytest.fixture
def page(request, live_server, transactional_db, monkeypatch, settings):
    # Playwright's sync API runs an event loop in this thread; the ORM refuses
    # to run beside one unless told it is safe (it is: nothing here awaits).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.MODELHUB_LOG_MODE = "sync"  # rows are written before the response
    with chromium_page(request.node.name) as page:
        yield page


@pytest.fixture
def vault(publish, iris_classifier):
    """The iris classifier as a private model with an input example."""
    return publish(
        iris_classifier,
        "vault",
        metadata={"input_example": IRIS_ROW},
        private=True,
    )


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def try_it(page) -> None:
    """Send the prefilled example and wait for the answer shown on the page."""
    form = page.get_by_role("form", name="Try it")
    expect(form.get_by_label("Request body (JSON)")).to_have_value(
        re.compile(re.escape('"sepal length (cm)": 6.7'))
    )
    form.get_by_role("button", name="Send").click()
    expect(form.locator(".pages-try-status")).to_have_text(re.compile(r"^200\b"))
    expect(form.locator(".pages-try-response")).to_contain_text('"virginica"')
    headers = form.locator(".pages-try-headers")
    expect(headers).to_contain_text("x-model-version: 1")
    expect(headers).to_contain_text("x-request-id: ")


def test_staff_finds_calls_and_tries_a_private_model_in_the_browser(
    page, live_server, staff_user, vault, publish, numpy_regressor
):
    publish(numpy_regressor, "diabetes")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server.url + "/admin/")
    page.get_by_label("Username").fill(staff_user.username)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.get_by_role("link", name="View site").click()

    catalog = page.get_by_role("table", name="Models")
    expect(catalog.get_by_role("link", name="vault")).to_be_visible()
    expect(catalog.get_by_role("link", name="diabetes")).to_be_visible()
    expect(catalog).to_contain_text("classifier")
    expect(catalog).to_contain_text("regressor")
    screenshot(page, "pages-landing.png")

    catalog.get_by_role("link", name="vault").click()
    curl = page.locator('[data-snippet="curl"]')
    expect(curl).to_contain_text(f"{live_server.url}/api/predict/vault/")
    expect(curl).to_contain_text("Authorization: Api-Key <your key>")
    expect(page.get_by_role("table", name="Input schema")).to_contain_text(
        "petal width (cm)"
    )
    try_it(page)
    screenshot(page, "pages-model-try-it.png")

    page.get_by_role("link", name="Edit in the admin").click()
    expect(page.get_by_role("heading", name="How to call vault")).to_be_visible()
    expect(page.locator('[data-snippet="requests"]')).to_contain_text(
        "'sepal length (cm)': 6.7"
    )
    try_it(page)
    screenshot(page, "pages-admin-model-try-it.png")

    assert errors == []
    logged = RequestLog.objects.filter(slug="vault").order_by("id")
    assert [(row.status, row.version) for row in logged] == [(200, 1), (200, 1)]
