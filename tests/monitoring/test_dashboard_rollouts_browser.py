"""The dashboard's rollouts in a real headless browser: a candidate and a
shadow taking live traffic through the live server, then a guard trip."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from sklearn.tree import DecisionTreeClassifier

from monitoring.models import RequestLog
from registry import rollouts
from registry.models import MLModel
from registry.rollouts import Guards, PolicySpec
from tests.browser import ARTIFACTS, NO_PLAYWRIGHT, chromium_page

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason=NO_PLAYWRIGHT).expect

ROW = [5.1, 3.5, 1.4, 0.2]
PASSWORD = "staff-pass-123"  # the staff_user fixture's
REASON = (
    "v2's p95 latency was 312.4 ms over its last 50 requests, above the guard "
    "of 250 ms; weight set to 0."
)


def http_post(url: str, body: bytes, user: str) -> int:
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "X-User": user},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_for_shadow_rows(count: int, timeout: float = 10.0) -> None:
    """Shadows predict after the response: their rows land a moment later."""
    deadline = time.monotonic() + timeout
    while RequestLog.objects.filter(route="shadow").count() < count:
        assert time.monotonic() < deadline, "the shadow rows never arrived"
        time.sleep(0.05)


def test_dashboard_shows_rollout_shadow_and_trip_in_browser(
    request,
    live_server,
    transactional_db,
    monkeypatch,
    settings,
    staff_user,
    iris_versions,
    publish,
    iris_frame,
):
    settings.MODELHUB_LOG_MODE = "sync"  # see test_dashboard_draws_charts_in_browser
    settings.MODELHUB_SHADOW_MAX_SHARE = 1.0  # no shadow skipped: counts are exact
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    x, y = iris_frame
    shadow = publish(
        DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y),
        "iris",
        activate=False,
    )
    model = MLModel.objects.get(slug="iris")
    candidate = iris_versions[1]
    rollouts.set_policy(
        model,
        PolicySpec(
            candidate=candidate,
            weight=0.5,
            sticky_header="X-User",
            shadow=shadow,
            guards=Guards(p95_ms=250, min_requests=50),
        ),
    )
    base = live_server.url
    good = json.dumps({"inputs": [ROW, ROW]}).encode()
    statuses = [
        http_post(f"{base}/api/predict/iris/", good, f"user-{i}") for i in range(24)
    ]
    statuses.append(http_post(f"{base}/api/predict/iris/", b"{oops", "user-1"))
    assert statuses == [200] * 24 + [400]
    wait_for_shadow_rows(24)
    served = {
        route: RequestLog.objects.filter(slug="iris", route=route).count()
        for route in ("active", "candidate")
    }
    assert served["active"] and served["candidate"], served
    assert rollouts.trip(model, candidate_id=candidate.pk, reason=REASON)

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
        outside: list[str] = []
        page.on(
            "request",
            lambda r: None if r.url.startswith(base) else outside.append(r.url),
        )
        page.goto(f"{base}/dashboard/?since=1h")
        page.get_by_label("Username").fill(staff_user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()

        trips = page.locator("#guard-trips")
        expect(trips).to_be_visible()
        expect(trips).to_contain_text("1 automatic rollback in this window")
        trip = trips.locator("tr.trip")
        expect(trip).to_contain_text("iris")
        expect(trip).to_contain_text("v2 was at 50%")
        expect(trip.locator("td.reason")).to_have_text(REASON)
        box = trips.bounding_box()
        assert box and box["y"] < 400, "the rollback shows above the fold"
        background = trips.evaluate("(e) => getComputedStyle(e).backgroundColor")
        assert background not in ("rgba(0, 0, 0, 0)", "transparent")

        panel = page.locator("#rollouts .rollout[data-slug='iris']")
        expect(panel).to_be_visible()
        expect(panel.locator(".active-version")).to_have_text("v1")
        expect(panel.locator(".candidate-version")).to_have_text("v2 at 0%")
        expect(panel.locator(".shadow-version")).to_have_text(f"v{shadow.number}")
        expect(panel.locator(".sticky")).to_have_text("header X-User")
        rows = panel.locator("tbody tr.route-row")
        expect(rows.nth(0)).to_have_attribute("data-route", "active")
        expect(rows.nth(1)).to_have_attribute("data-route", "candidate")
        for index, route in enumerate(("active", "candidate")):
            expect(rows.nth(index).locator("td.requests")).to_have_text(
                str(served[route])
            )

        pair = page.locator(
            f"#shadow-pairs tr.shadow-pair[data-version='{shadow.number}']"
        )
        expect(pair).to_be_visible()
        expect(pair.locator("td.compared")).to_have_text("48")
        expect(pair.locator("td.agreement")).to_contain_text("%")
        expect(page.locator("#shadow-skipped-note")).to_contain_text(
            "modelhub_shadow_skipped_total"
        )
        assert errors == []
        assert outside == []

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard-rollouts.png"
        shot.unlink(missing_ok=True)
        page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
