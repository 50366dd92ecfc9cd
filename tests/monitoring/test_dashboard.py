"""GET /dashboard/: the staff page of traffic, errors and latency, and its charts."""

from __future__ import annotations

import json
import random
import re
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import timezone

from monitoring.models import LogGap, RequestLog
from monitoring.requestlog import LogEntry, writer
from tests.browser import ARTIFACTS, NO_PLAYWRIGHT, chromium_page
from tests.monitoring.test_stats import OUT_OF_RANGE

ROW = [5.1, 3.5, 1.4, 0.2]
PASSWORD = "staff-pass-123"  # the staff_user fixture's


def post(client, path: str, body: Any):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data, content_type="application/json")


def send_traffic(client) -> None:
    """4 successes (5 rows), 2 bad payloads and a request for an unknown version."""
    for body in ({"inputs": [ROW]}, {"inputs": [ROW, ROW]}, {"inputs": [ROW]}):
        assert post(client, "/api/predict/iris/", body).status_code == 200
    assert post(client, "/api/predict/iris/v1/", {"inputs": [ROW]}).status_code == 200
    assert post(client, "/api/predict/iris/", {"inputs": [[1, 2]]}).status_code == 400
    assert post(client, "/api/predict/iris/", "{oops").status_code == 400
    assert post(client, "/api/predict/iris/v9/", {"inputs": [ROW]}).status_code == 404


@pytest.fixture
def iris(publish, iris_classifier):
    return publish(iris_classifier, "iris")


def test_dashboard_redirects_anonymous_user_to_admin_login(client, db):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/dashboard/"


def test_dashboard_redirects_non_staff_user_to_admin_login(client, django_user_model):
    user = django_user_model.objects.create_user("plain", password="x-pass-123")
    client.force_login(user)
    response = client.get("/dashboard/?since=1h")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/dashboard/")


def test_dashboard_shows_per_model_and_version_traffic(staff_client, iris):
    send_traffic(staff_client)
    response = staff_client.get("/dashboard/")
    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "monitoring/dashboard.html"

    [model] = response.context["models"]
    assert model["slug"] == "iris"
    assert (model["requests"], model["errors"], model["rows"]) == (7, 3, 5)
    assert model["error_percent"] == pytest.approx(300 / 7, abs=0.01)
    assert model["p50_ms"] > 0 and model["last_request_at"] is not None
    by_version = {v["version"]: v for v in model["versions"]}
    assert (by_version[1]["requests"], by_version[1]["errors"]) == (6, 2)
    assert (by_version[None]["requests"], by_version[None]["errors"]) == (1, 1)

    html = response.content.decode()
    assert 'data-slug="iris"' in html
    assert re.search(r'id="total-requests">\s*7\s*<', html)
    assert re.search(r'id="total-errors">\s*3 <small>42\.9%</small>', html)
    assert "42.9%" in html
    for code in ("invalid_shape", "malformed_json", "unknown_version"):
        assert f"<code>{code}</code>" in html
    assert 'id="traffic-chart"' in html and 'id="latency-chart"' in html
    assert "dropped" not in html


def test_dashboard_embeds_series_as_json_with_iso_times(staff_client, iris):
    send_traffic(staff_client)
    html = staff_client.get("/dashboard/?since=15m").content.decode()
    match = re.search(
        r'<script id="dashboard-series" type="application/json">(.*?)</script>',
        html,
        re.S,
    )
    chart = json.loads(match.group(1))
    assert chart["step_seconds"] == 60 and chart["step"] == "1 min"
    assert sum(p["requests"] for p in chart["points"]) == 7
    assert sum(p["errors"] for p in chart["points"]) == 3
    assert any(p["p99_ms"] for p in chart["points"])
    first = datetime.fromisoformat(chart["points"][0]["start"])
    assert first.tzinfo is not None


def test_dashboard_serves_charts_from_own_static_files(staff_client, iris):
    html = staff_client.get("/dashboard/").content.decode()
    scripts = re.findall(r'<script[^>]* src="([^"]+)"', html)
    assert "/static/monitoring/vendor/chart.umd.min.js" in scripts
    assert "/static/monitoring/dashboard.js" in scripts
    assert all(src.startswith("/static/") for src in scripts), scripts
    chart_js = finders.find("monitoring/vendor/chart.umd.min.js")
    assert chart_js and "Chart.js v4." in open(chart_js).read(200)
    assert finders.find("monitoring/vendor/chart.js.LICENSE.md")


@pytest.mark.parametrize("since", ["yesterday", "15x", "-5m", "2026-13-45"])
def test_dashboard_shows_bad_since_as_400_page(staff_client, since):
    response = staff_client.get("/dashboard/", {"since": since})
    assert response.status_code == 400
    html = response.content.decode()
    assert "must be ISO-8601" in html
    assert 'class="errornote"' in html
    assert "dashboard-series" not in html


def test_dashboard_shows_overlong_window_as_400_page(staff_client):
    response = staff_client.get("/dashboard/", {"since": "999999d"})
    assert response.status_code == 400
    assert "window &#x27;999999d&#x27; is too long" in response.content.decode()


@pytest.mark.parametrize("since", OUT_OF_RANGE)
def test_dashboard_shows_since_out_of_range_as_400_page(staff_client, since):
    response = staff_client.get("/dashboard/", {"since": since})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="errornote"' in html
    assert "&#x27;since&#x27;" in html
    assert "dashboard-series" not in html


def test_dashboard_chart_counts_requests_of_an_unaligned_window(
    staff_client, monkeypatch
):
    """An ISO 'since' whose span is not whole minutes keeps the last minute."""
    now = timezone.now().replace(second=10, microsecond=0)
    writer.submit(
        LogEntry(
            created_at=now - timedelta(seconds=1),
            slug="iris",
            version=1,
            status=200,
            error_code="",
            rows=1,
            latency_ms=2.0,
            model_ms=1.0,
            request_id="last-minute",
        )
    )
    monkeypatch.setattr(timezone, "now", lambda: now)
    since = (now - timedelta(minutes=29, seconds=30)).isoformat()
    context = staff_client.get("/dashboard/", {"since": since}).context
    assert context["totals"]["requests"] == 1
    assert sum(p["requests"] for p in context["chart"]["points"]) == 1


def test_dashboard_window_selector_keeps_the_model_filter(staff_client, iris):
    html = staff_client.get("/dashboard/?since=6h&model=iris").content.decode()
    for window in ("15m", "1h", "24h", "7d"):
        assert f'href="?since={window}&amp;model=iris"' in html
    assert re.search(r'href="\?since=6h&amp;model=iris" class="selected"', html)


def test_dashboard_model_filter_limits_tables_to_that_slug(
    staff_client, publish, iris_classifier
):
    publish(iris_classifier, "iris")
    publish(iris_classifier, "iris-b")
    send_traffic(staff_client)
    assert (
        post(staff_client, "/api/predict/iris-b/", {"inputs": [[1]]}).status_code == 400
    )

    both = staff_client.get("/dashboard/").context
    assert [m["slug"] for m in both["models"]] == ["iris", "iris-b"]
    response = staff_client.get("/dashboard/", {"model": "iris-b"})
    assert response.status_code == 200
    assert [m["slug"] for m in response.context["models"]] == ["iris-b"]
    assert {e["slug"] for e in response.context["recent_errors"]} == {"iris-b"}
    html = response.content.decode()
    assert 'data-slug="iris"' not in html
    chart = response.context["chart"]
    assert chart["highlight"]["slug"] == "iris-b"
    assert sum(chart["highlight"]["requests"]) == 1


def test_dashboard_empty_window_says_no_requests(staff_client):
    response = staff_client.get("/dashboard/?since=15m")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No requests in this window." in html
    assert "<canvas" not in html
    assert "No errors in this window." in html


def test_dashboard_reports_dropped_log_rows(staff_client):
    LogGap.objects.create(dropped=3, since=timezone.now())
    html = staff_client.get("/dashboard/").content.decode()
    assert "3 log rows dropped in this window" in html


def test_admin_index_links_to_dashboard(staff_client):
    html = staff_client.get(reverse("admin:index")).content.decode()
    assert html.count('href="/dashboard/"') == 2  # user links and the module
    assert "app-registry module" in html  # the app list is still there


def test_model_admin_page_links_to_its_dashboard(staff_client, iris):
    url = reverse("admin:registry_mlmodel_change", args=[iris.model.pk])
    html = staff_client.get(url).content.decode()
    assert 'href="/dashboard/?model=iris"' in html
    assert "Upload new version" in html


# --- in a real browser --------------------------------------------------------


def http_post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def backfill_history(minutes: int) -> int:
    """Earlier minutes of traffic, written as the middleware would write them."""
    rng = random.Random(3)
    now = timezone.now()
    written = 0
    for minute in range(2, minutes):
        for i in range(rng.randint(4, 14)):
            failed = rng.random() < 0.12
            writer.submit(
                LogEntry(
                    created_at=now - timedelta(minutes=minute, seconds=i),
                    slug="iris",
                    version=1,
                    status=400 if failed else 200,
                    error_code="missing_features" if failed else "",
                    rows=0 if failed else 1,
                    latency_ms=rng.lognormvariate(0.8, 0.5),
                    model_ms=0.3,
                    request_id=f"history-{minute}-{i}",
                )
            )
            written += 1
    return written


CHARTS_DRAWN = """() => ["traffic-chart", "latency-chart"].every((id) => {
  const chart = window.Chart && Chart.getChart(document.getElementById(id));
  return chart && chart.data.datasets.every(
    (d) => d.data.filter((v) => v > 0).length > 0);
})"""

PAINTED_PIXELS = """(id) => {
  const canvas = document.getElementById(id);
  const pixels = canvas.getContext("2d")
    .getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
  return painted;
}"""


@pytest.mark.browser
def test_dashboard_draws_charts_in_browser(
    request, live_server, transactional_db, monkeypatch, settings, staff_user, iris
):
    expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect
    # The live server's in-memory SQLite locks whole tables and fails at once
    # instead of waiting: a row written after its response could collide with
    # the next request or with this test's reads. In "sync" mode every row is
    # committed before its response leaves.
    settings.MODELHUB_LOG_MODE = "sync"
    # Playwright's sync API runs an event loop in this thread; the ORM refuses
    # to run beside one unless told it is safe (it is: nothing here awaits).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = live_server.url
    with chromium_page(request.node.name) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: (
                errors.append(msg.text)
                if msg.type == "error" and "Failed to load resource" not in msg.text
                else None
            ),
        )
        page.on(
            "response",
            lambda r: (
                errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        outside: list[str] = []
        page.on(
            "request",
            lambda r: None if r.url.startswith(base) else outside.append(r.url),
        )

        page.goto(f"{base}/dashboard/?since=1h")
        assert "/admin/login/" in page.url
        page.get_by_label("Username").fill(staff_user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#dashboard-empty")).to_have_text(
            "No requests in this window."
        )
        assert errors == []

        expected = backfill_history(45)
        good = json.dumps({"inputs": [ROW, ROW]}).encode()
        statuses = [http_post(f"{base}/api/predict/iris/", good) for _ in range(10)]
        statuses += [
            http_post(f"{base}/api/predict/iris/", b'{"inputs": [[1, 2]]}'),
            http_post(f"{base}/api/predict/iris/", b"{oops"),
            http_post(f"{base}/api/predict/iris/v9/", good),
            http_post(f"{base}/api/predict/ghost/", good),
        ]
        assert statuses == [200] * 10 + [400, 400, 404, 404]
        assert RequestLog.objects.count() == expected + len(statuses)

        page.reload()
        page.wait_for_function(CHARTS_DRAWN)
        for canvas in ("traffic-chart", "latency-chart"):
            assert page.evaluate(PAINTED_PIXELS, canvas) > 2_000
        models = page.locator("#models-table")
        expect(models.locator("tr.model-row", has_text="iris")).to_be_visible()
        expect(models.locator("tr.model-row", has_text="(unknown)")).to_be_visible()
        expect(models).to_contain_text("v1")
        recent = page.locator("#errors-table")
        for code in ("invalid_shape", "malformed_json", "unknown_version"):
            expect(recent).to_contain_text(code)
        expect(recent).to_contain_text("unknown_model")
        assert errors == []
        assert outside == []

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        shot.unlink(missing_ok=True)
        page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 40_000
