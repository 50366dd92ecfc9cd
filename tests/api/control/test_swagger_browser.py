"""Swagger UI at /api/docs/ in a real headless browser: a served model's own
operation, "Try it out", "Execute" as it stands, and the answer is 200."""

from __future__ import annotations

import pytest

from tests.browser import ARTIFACTS, NO_PLAYWRIGHT, chromium_page

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect


@pytest.fixture
def page(request, live_server, transactional_db, monkeypatch):
    # Playwright's sync API runs an event loop in this thread (tests/browser.py).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium_page(request.node.name) as page:
        yield page


def test_try_it_out_on_a_served_model_answers_200_in_swagger_ui(
    page, live_server, transactional_db, publish, iris_classifier
):
    publish(
        iris_classifier,
        "iris",
        metadata={
            "input_example": {
                "sepal length (cm)": 5.9,
                "sepal width (cm)": 3.0,
                "petal length (cm)": 5.1,
                "petal width (cm)": 1.8,
            }
        },
    )
    page.goto(live_server.url + "/api/docs/")
    operation = page.locator("#operations-served_models-predict_iris")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    expect(operation.locator("textarea.body-param__text")).to_contain_text(
        "petal width (cm)"
    )
    operation.get_by_role("button", name="Execute").click()
    live = operation.locator(
        ".live-responses-table td.response-col_status:not(.col_header)"
    )
    expect(live).to_have_text("200")
    expect(
        operation.locator(".live-responses-table .microlight").first
    ).to_contain_text('"predictions"')
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "swagger-try-it-out-iris.png", full_page=True)
