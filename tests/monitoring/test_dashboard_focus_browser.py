"""The focusable dashboard in a real headless browser: choosing a model and a
version in the page, a custom range, and auto-refresh (no request while off,
the data fetched again while on)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser import NO_PLAYWRIGHT, chromium_page, collect_errors, screenshot
from tests.monitoring.test_stats_focus import label, log

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

PASSWORD = "staff-pass-123"  # the staff_user fixture's
CHART_TOTAL = """(id) => {
  const chart = window.Chart && Chart.getChart(document.getElementById(id));
  if (!chart) return null;
  return chart.data.datasets.reduce(
    (sum, d) => sum + d.data.reduce((a, b) => a + (b || 0), 0), 0);
}"""
QUALITY_LINES = """() => {
  const chart = window.Chart && Chart.getChart("quality-chart");
  return chart ? chart.data.datasets.map((d) => d.label) : null;
}"""


@pytest.fixture
def live(live_server, transactional_db, monkeypatch, settings):
    settings.MODELHUB_LOG_MODE = "sync"  # see test_dashboard_draws_charts_in_browser
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return live_server.url


@pytest.fixture
def traffic(iris_versions, publish, numpy_regressor):
    """iris v1: 12 requests (2 errors), v2: 6, forest: 9 (1 error), an
    unknown slug: 2, one every few minutes of the last hour; iris v1's ten
    answered requests labelled (7 right), v2's six (4 right)."""
    publish(numpy_regressor, "forest")
    for i in range(12):
        ago = timedelta(minutes=3 * i + 1)
        log("iris", 1, status=500 if i % 6 == 5 else 200, ago=ago)
        if i % 6 != 5:
            label("iris", 1, i % 4 != 0, ago=ago)
    for i in range(6):
        ago = timedelta(minutes=5 * i + 2)
        log("iris", 2, ms=30.0, ago=ago)
        label("iris", 2, i % 3 != 0, ago=ago)
    for i in range(9):
        log(
            "forest", 1, status=422 if i == 4 else 200, ago=timedelta(minutes=4 * i + 3)
        )
    for i in range(2):
        log(
            "ghost",
            None,
            status=404,
            code="unknown_model",
            ago=timedelta(minutes=i + 1),
        )
    return {"all": 29, "iris": 18, "iris v1": 12}


def open_dashboard(page, base: str, staff_user, query: str) -> list[str]:
    """Log in on the way to the dashboard; the page's errors, as they come."""
    errors = collect_errors(page, base)
    page.goto(f"{base}/dashboard/{query}")
    page.get_by_label("Username").fill(staff_user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/**")
    return errors


def shown(page) -> tuple[int, int | None]:
    """The requests card and the sum of the traffic chart's bars."""
    page.wait_for_function("() => window.Chart && Chart.getChart('traffic-chart')")
    requests = int(page.locator("#total-requests").inner_text())
    return requests, page.evaluate(CHART_TOTAL, "traffic-chart")


def test_choosing_a_model_and_a_version_in_the_page_filters_cards_and_charts(
    request, live, staff_user, traffic
):
    with chromium_page(request.node.name) as page:
        errors = open_dashboard(page, live, staff_user, "?since=1h")
        assert shown(page) == (traffic["all"], traffic["all"])
        expect(page.locator("#models-table tr.model-row")).to_have_count(3)
        screenshot(page, "dashboard-all.png")

        page.locator("#dash-model").select_option("iris")
        page.wait_for_url("**model=iris**")
        assert shown(page) == (traffic["iris"], traffic["iris"])
        assert "since=1h" in page.url
        versions = page.locator("#versions-table tbody tr.version-side")
        expect(versions).to_have_count(2)
        expect(versions.nth(0).locator("td[data-column=requests]")).to_have_text("6")
        expect(versions.nth(1).locator("td[data-column=requests]")).to_have_text("12")
        v1 = versions.nth(1)
        expect(v1.locator("td[data-column=labelled]")).to_have_text("10")
        expect(v1.locator("td[data-column=coverage]")).to_have_text("100.0%")
        expect(v1.locator("td[data-column=accuracy]")).to_have_text("0.700")
        expect(versions.nth(0).locator("td[data-column=accuracy]")).to_have_text(
            "0.667"
        )
        page.wait_for_function(QUALITY_LINES)
        assert page.evaluate(QUALITY_LINES) == ["v1 accuracy", "v2 accuracy"]
        expect(page.locator("#error-codes tr.error-code")).to_have_count(1)
        screenshot(page, "dashboard-focused.png")

        page.locator("#dash-version").select_option("1")
        page.wait_for_url("**version=1**")
        assert shown(page) == (traffic["iris v1"], traffic["iris v1"])
        expect(page.locator("#versions-table tbody tr")).to_have_count(1)
        expect(page.locator(".breadcrumbs")).to_contain_text("iris › v1")

        page.locator("#dash-model").select_option("")
        page.wait_for_url(lambda url: "model=" not in url)
        assert shown(page) == (traffic["all"], traffic["all"])
        assert errors == []


def test_a_custom_range_chosen_in_the_page_shows_only_its_requests(
    request, live, staff_user, traffic
):
    now = timezone.now()
    since = (
        f"{timezone.localtime(now - timedelta(minutes=29, seconds=30)):%Y-%m-%dT%H:%M}"
    )
    until = (
        f"{timezone.localtime(now - timedelta(minutes=8, seconds=30)):%Y-%m-%dT%H:%M}"
    )
    with chromium_page(request.node.name) as page:
        errors = open_dashboard(page, live, staff_user, "?since=1h&model=iris")
        page.locator("#dash-range input[name=since]").fill(since)
        page.locator("#dash-range input[name=until]").fill(until)
        page.locator("#dash-range").get_by_role("button", name="Apply").click()
        page.wait_for_url("**until=**")
        # From 29.5-30.5 to 7.5-8.5 minutes ago, a minute's resolution at each
        # end: iris v1 at 10, 13 ... 28 minutes ago, v2 at 12, 17, 22, 27.
        assert shown(page) == (11, 11)
        expect(page.locator(".dash-windows a.custom")).to_have_text("custom")
        expect(page.locator("#dash-range input[name=since]")).to_have_value(since)
        assert "model=iris" in page.url
        screenshot(page, "dashboard-range.png")
        assert errors == []


def test_auto_refresh_sends_nothing_while_off_and_fetches_the_data_while_on(
    request, live, staff_user, traffic
):
    with chromium_page(request.node.name, timeout_ms=20_000) as page:
        errors = open_dashboard(page, live, staff_user, "?since=1h")
        expect(page.locator("#auto-refresh")).not_to_be_checked()
        sent: list[str] = []
        page.on(
            "request",
            lambda r: sent.append(r.url) if "/dashboard/" in r.url else None,
        )
        page.wait_for_timeout(12_000)
        assert sent == [], "no request at all while auto-refresh is off"

        page.locator("#auto-refresh").check()
        page.wait_for_url("**refresh=1**")
        expect(page.locator("#auto-refresh")).to_be_checked()
        before = shown(page)[0]
        log("iris", 2)  # served after the page was drawn
        with page.expect_request(
            lambda r: "/dashboard/" in r.url and r.resource_type == "fetch",
            timeout=12_000,
        ) as fetched:
            pass
        assert "refresh=1" in fetched.value.url
        # The fetched page swapped in: its card and its redrawn chart.
        expect(page.locator("#total-requests")).to_have_text(str(before + 1))
        page.wait_for_function(
            f"() => ({CHART_TOTAL})('traffic-chart') === {before + 1}"
        )
        expect(page.locator("#auto-refresh")).to_be_checked()
        assert errors == []


DRIFT_LINES = """() => {
  const chart = window.Chart && Chart.getChart("drift-chart");
  return chart ? chart.data.datasets.map((d) => d.label) : null;
}"""


def test_the_drift_panel_lists_features_worst_first_and_draws_them_per_hour(
    request, live, staff_user, iris_versions, iris_frame
):
    import numpy as np

    from monitoring.drift import Reference
    from monitoring.models import DriftCount, DriftReference

    x, _ = iris_frame
    one = iris_versions[0]
    reference = Reference.of(
        {name: x[name].to_numpy() for name in x.columns}, {}, None, "string"
    )
    DriftReference.objects.create(
        version=one, source="upload", rows=150, bins=reference.as_dict()
    )
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    shifted = "petal width (cm)"
    for bins in reference.features:
        shares = np.array(bins.expected)
        if bins.name == shifted:
            shares = np.roll(shares, 4)
        for index, share in enumerate(shares):
            for start in (hour, hour - timedelta(hours=1)):
                if round(share * 400):
                    DriftCount.objects.create(
                        resolution="h",
                        start=start,
                        slug="iris",
                        version=1,
                        feature=bins.name,
                        bin=index,
                        count=round(share * 400),
                    )
    log("iris", 1, ago=timedelta(minutes=3))
    with chromium_page(request.node.name) as page:
        errors = open_dashboard(page, live, staff_user, "?since=6h&model=iris")
        rows = page.locator("#drift-v1 tbody tr")
        expect(rows.first).to_have_attribute("data-feature", shifted)
        expect(rows.first.locator("td").nth(2)).to_have_text("alert")
        expect(page.locator("#drift-v1 caption")).to_contain_text(
            "reference given at upload"
        )
        page.wait_for_function(DRIFT_LINES)
        assert page.evaluate(DRIFT_LINES)[0] == f"v1 {shifted}"
        screenshot(page, "dashboard-drift.png")
        assert errors == []
