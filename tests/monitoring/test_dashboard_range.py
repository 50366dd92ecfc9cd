"""The dashboard's time: a window or a custom range (since and until), the
window it opens on when none is asked, and auto-refresh."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import rollup
from tests.monitoring.test_stats_focus import log

pytestmark = pytest.mark.django_db


def page(client, status: int = 200, **params):
    response = client.get("/dashboard/", params)
    assert response.status_code == status, response.content[:500]
    return response, response.content.decode()


def local_input(moment) -> str:
    """A datetime-local input's value: the site's wall clock, no offset."""
    return f"{timezone.localtime(moment):%Y-%m-%dT%H:%M}"


@pytest.fixture
def hourly():
    """A request 10, 70, 130... minutes ago, for ten hours."""
    for hour in range(10):
        log("iris", 1, ago=timedelta(minutes=10 + 60 * hour))


# --- custom range -------------------------------------------------------------------


def test_a_custom_range_shows_only_the_requests_between_since_and_until(
    staff_client, hourly
):
    now = timezone.now()
    since = local_input(now - timedelta(hours=4, minutes=30))
    until = local_input(now - timedelta(hours=1, minutes=30))
    response, html = page(staff_client, since=since, until=until)
    assert response.context["totals"]["requests"] == 3  # 250, 190, 130 min ago
    points = response.context["chart"]["points"]
    assert sum(p["requests"] for p in points) == 3
    assert (
        points[-1]["start"] <= timezone.localtime(response.context["until"]).isoformat()
    )
    assert f'name="since" step="60" required value="{since}"' in html
    assert f'name="until" step="60" value="{until}"' in html
    assert re.search(r'class="selected custom" aria-current="page">custom</a>', html)
    assert 'class="selected"' not in html.replace("selected custom", "")


def test_a_custom_range_reads_its_times_in_the_sites_time_zone(
    staff_client, hourly, settings
):
    settings.TIME_ZONE = "Asia/Kolkata"  # +05:30, between UTC's hours
    now = timezone.now()
    since = local_input(now - timedelta(hours=2, minutes=30))
    response, html = page(staff_client, since=since)
    assert response.context["since"] == (now - timedelta(hours=2, minutes=30)).replace(
        second=0, microsecond=0
    )
    assert response.context["totals"]["requests"] == 3  # 130, 70 and 10 min ago
    assert "IST" in html


def test_a_custom_range_without_until_runs_to_now(staff_client, hourly):
    since = local_input(timezone.now() - timedelta(minutes=75))
    response, html = page(staff_client, since=since)
    assert response.context["totals"]["requests"] == 2
    assert 'name="until" step="60" title="Empty: now"' in html


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("2h", "3h", "must be after &#x27;since&#x27;"),
        ("1h", "1h", "must be after &#x27;since&#x27;"),
        (
            "1h",
            "2999-01-01T00:00",
            "&#x27;until&#x27; &#x27;2999-01-01T00:00&#x27; is in the future.",
        ),
        ("1h", "soon", "&#x27;until&#x27; must be ISO-8601"),
        ("", "1h", "A custom range needs both ends"),
    ],
)
def test_a_range_that_is_not_one_is_a_400_page(staff_client, since, until, message):
    response, html = page(staff_client, 400, since=since, until=until)
    assert message in html and 'class="errornote"' in html
    assert "dashboard-series" not in html
    assert 'href="?since=15m"' in html  # the windows still lead out


def test_window_links_leave_a_custom_range_and_keep_the_focus(staff_client, hourly):
    since = local_input(timezone.now() - timedelta(hours=3))
    html = page(staff_client, since=since, until="1h", model="iris")[1]
    assert 'href="?since=24h&amp;model=iris"' in html
    form = re.search(r'<form method="get" id="dash-range".*?</form>', html, re.S)
    assert '<input type="hidden" name="model" value="iris">' in form.group(0)


# --- the window it opens on -----------------------------------------------------------


@pytest.mark.parametrize(
    ("ago", "opened_on"),
    [
        (timedelta(minutes=5), "15m"),
        (timedelta(minutes=40), "1h"),
        (timedelta(hours=3), "6h"),
        (timedelta(hours=20), "24h"),
        (timedelta(days=3), "7d"),
        (timedelta(days=12), "24h"),
    ],
)
def test_without_since_it_opens_on_the_shortest_window_holding_a_request(
    staff_client, ago, opened_on
):
    log("iris", 1, ago=ago)
    response, html = page(staff_client)
    assert response.context["window"] == opened_on
    assert re.search(rf'href="\?since={opened_on}" class="selected"', html)
    assert response.context["totals"]["requests"] == (ago < timedelta(days=7))
    assert "the shortest window with requests" in html


def test_without_any_traffic_it_opens_on_24_hours(staff_client):
    response, html = page(staff_client)
    assert response.context["window"] == "24h"
    assert response.context["until"] - response.context["since"] == timedelta(hours=24)
    assert "No requests in this window." in html


def test_the_window_it_opens_on_is_the_chosen_models(staff_client):
    log("iris", 1, ago=timedelta(hours=3))
    log("iris", 2, ago=timedelta(hours=20))
    log("forest", 1, ago=timedelta(minutes=2))
    assert page(staff_client)[0].context["window"] == "15m"
    assert page(staff_client, model="iris")[0].context["window"] == "6h"
    assert page(staff_client, model="iris", version="2")[0].context["window"] == "24h"
    # Links from such a page leave the window to the page they open.
    html = page(staff_client, model="iris")[1]
    assert 'href="?model=iris&amp;version=1">v1</a>' in html


def test_the_window_it_opens_on_costs_one_exists_per_window_tried(staff_client):
    log("iris", 1, ago=timedelta(hours=20))  # the fourth window holds it
    rollup.refresh()
    with CaptureQueriesContext(connection) as captured:
        page(staff_client)
    exists = [q for q in captured.captured_queries if "SELECT 1 AS" in q["sql"]]
    assert len([q for q in exists if '"api_requeststat"' in q["sql"]]) == 4


# --- auto-refresh ---------------------------------------------------------------------


def test_auto_refresh_is_off_unless_the_url_says_refresh_1(staff_client, hourly):
    off = page(staff_client, since="1h", model="iris")[1]
    box = re.search(r'<input type="checkbox" id="auto-refresh"[^>]*>', off).group(0)
    assert "checked" not in box
    assert 'data-href="?since=1h&amp;model=iris&amp;refresh=1"' in box
    assert 'data-seconds="10"' in box
    assert "refresh=1" not in off.replace(box, "")

    on = page(staff_client, since="1h", model="iris", refresh="1")[1]
    box = re.search(r'<input type="checkbox" id="auto-refresh"[^>]*>', on).group(0)
    assert " checked" in box
    assert 'data-href="?since=1h&amp;model=iris"' in box
    # Every link and form keeps it on.
    assert 'href="?since=15m&amp;model=iris&amp;refresh=1"' in on
    for form in ("dash-range", "dash-focus"):
        found = re.search(rf'<form method="get" id="{form}".*?</form>', on, re.S)
        assert '<input type="hidden" name="refresh" value="1">' in found.group(0)
