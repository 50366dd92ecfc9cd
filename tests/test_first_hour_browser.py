"""A new user's first hour, in one sitting in a real browser: from the
admin's login to a prediction of their own model, led only by the pages.

The model is what a data scientist brings: a random forest on a scikit-learn
dataset, saved with skops (the safe format, no setting changed).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from monitoring.models import RequestLog
from registry.models import MLModel
from tests.browser import ARTIFACTS, NO_PLAYWRIGHT, chromium_page

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

PASSWORD = "first-hour-123"


@pytest.fixture
def newcomer(transactional_db):
    return get_user_model().objects.create_superuser(
        "newcomer", "n@example.com", PASSWORD
    )


@pytest.fixture
def wine_forest_file(tmp_path):
    import skops.io as sio
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier

    data = load_wine(as_frame=True)
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    path = tmp_path / "wine_forest.skops"
    sio.dump(forest.fit(data.data, data.target), path)
    return path


@pytest.fixture
def page(request, live_server, transactional_db, monkeypatch, settings):
    # Playwright's sync API runs an event loop in this thread; the ORM refuses
    # to run beside one unless told it is safe (it is: nothing here awaits).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.MODELHUB_LOG_MODE = "sync"  # rows are written before the response
    with chromium_page(request.node.name, timeout_ms=60_000) as page:
        yield page


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def test_a_new_user_goes_from_login_to_a_prediction_of_their_own_model(
    page, live_server, newcomer, wine_forest_file
):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(live_server.url + "/")
    expect(page.locator("code", has_text="manage.py loadmodel")).to_be_visible()
    page.goto(live_server.url + "/admin/")
    page.get_by_label("Username").fill(newcomer.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    registry = page.get_by_role("table", name="Model registry")
    registry.get_by_role("link", name="Models", exact=True).click()
    page.get_by_role("link", name="Add model").click()
    page.get_by_label("Slug").fill("wine")
    page.get_by_role("button", name="Save", exact=True).click()

    # Saving a new model leads straight to its upload form.
    page.locator("#id_file").set_input_files(wine_forest_file)
    screenshot(page, "first-hour-upload-form.png")
    page.get_by_role("button", name="Upload and validate").click()
    expect(page.locator(".messagelist")).to_contain_text("Registered wine v1")

    # The version page says how to call it, with the model's own features.
    curl = page.locator('[data-snippet="curl"]')
    expect(curl).to_contain_text(f"{live_server.url}/api/predict/wine/v1/")
    expect(curl).to_contain_text("alcohol")
    expect(page.get_by_role("table", name="Input schema")).to_contain_text("proline")
    form = page.get_by_role("form", name="Try it")
    form.get_by_role("button", name="Send").click()
    expect(form.locator(".pages-try-status")).to_have_text(re.compile(r"^200\b"))
    expect(form.locator(".pages-try-response")).to_contain_text('"predictions"')
    screenshot(page, "first-hour-try-it.png")

    page.goto(live_server.url + "/")
    catalog = page.get_by_role("table", name="Models")
    expect(catalog.get_by_role("link", name="wine")).to_be_visible()
    screenshot(page, "first-hour-landing.png")

    assert errors == []
    assert MLModel.objects.get(slug="wine").active_version.format == "skops"
    logged = RequestLog.objects.filter(slug="wine")
    assert [(row.status, row.version) for row in logged] == [(200, 1)]
