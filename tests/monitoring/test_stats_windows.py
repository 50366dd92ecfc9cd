"""Windows with both ends: stats.summary and stats.series count exactly the
requests between 'since' and 'until', whatever offset the times carry."""

from __future__ import annotations

from datetime import timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from monitoring import rollup, stats, windows
from monitoring.exceptions import InvalidSince
from monitoring.models import RequestLog
from monitoring.requestlog import LogEntry, writer

pytestmark = pytest.mark.django_db

INDIA = dt_timezone(timedelta(hours=5, minutes=30))


@pytest.fixture
def week_of_traffic():
    """A request every 37 minutes for 7 days, every fifth an error."""
    now = timezone.now()
    for i in range(0, 7 * 24 * 60, 37):
        writer.submit(
            LogEntry(
                created_at=now - timedelta(minutes=i, seconds=i % 60),
                slug="iris",
                version=1 + i % 2,
                status=500 if i % 5 == 0 else 200,
                error_code="",
                rows=1,
                latency_ms=1.0 + i % 7,
                model_ms=None,
                request_id=f"w{i}",
            )
        )
    rollup.refresh()
    return now


def logged_between(since, until, unit=windows.MINUTE) -> int:
    """Log rows in [the minute (or hour) of since, the end of the minute (or
    hour) of until]."""
    start = windows.floor(since, unit)
    end = windows.floor(until, unit) + unit
    return RequestLog.objects.filter(created_at__gte=start, created_at__lt=end).count()


@pytest.mark.parametrize(
    ("since_ago", "until_ago"),
    [
        (timedelta(days=6, hours=5, minutes=17), timedelta(hours=7, minutes=23)),
        (timedelta(days=3), timedelta(days=1)),
        (timedelta(hours=30, minutes=5), timedelta(hours=29, minutes=50)),
        (timedelta(hours=5, minutes=41), timedelta(hours=2, minutes=3)),
        (timedelta(minutes=50), timedelta(minutes=20)),
    ],
    ids=["days", "whole-days", "across-midnight-or-hour", "hours", "minutes"],
)
def test_summary_with_until_in_the_past_counts_only_requests_inside(
    week_of_traffic, since_ago, until_ago
):
    now = week_of_traffic
    since, until = now - since_ago, now - until_ago
    summary = stats.summary(since, until)
    assert summary["totals"]["requests"] == logged_between(since, until)
    # The chart reads whole minutes under an hour's step, whole hours above.
    chart = stats.series(since, until)
    unit = windows.MINUTE if chart["step_seconds"] < 3600 else windows.HOUR
    charted = sum(p["requests"] for p in chart["points"])
    assert charted == logged_between(since, until, unit)


@pytest.mark.parametrize("hours", [3, 30, 80])
def test_an_iso_since_with_an_offset_counts_every_request_after_it(
    week_of_traffic, hours
):
    """+05:30 puts local hours and midnights between UTC's: the rollup's rows
    are UTC hours and days, so the window's edges are computed in UTC."""
    now = week_of_traffic
    raw = (now - timedelta(hours=hours, minutes=7)).astimezone(INDIA).isoformat()
    since = stats.parse_since(raw, now)
    assert since.utcoffset() == timedelta(hours=5, minutes=30)
    assert stats.summary(since, now)["totals"]["requests"] == logged_between(since, now)


def test_a_time_without_offset_is_read_in_the_zone_given(week_of_traffic):
    now = week_of_traffic
    local = (now - timedelta(hours=2)).astimezone(INDIA).replace(tzinfo=None)
    since = windows.parse_since(local.isoformat(), now, zone=INDIA)
    assert since == (now - timedelta(hours=2))
    assert windows.parse_since(local.isoformat(), now + timedelta(hours=6)) != since


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("1h", "2h", "'until' (%s) must be after 'since'"),
        ("1h", "1h", "'until' (%s) must be after 'since'"),
        ("1h", "2999-01-01T00:00", "'until' '2999-01-01T00:00' is in the future."),
        ("1h", "tomorrow", "'until' must be ISO-8601"),
    ],
)
def test_a_range_whose_until_is_not_after_since_or_is_in_the_future_is_refused(
    since, until, message
):
    now = timezone.now()
    with pytest.raises(InvalidSince) as refused:
        windows.parse_range(since, until, now)
    if "%s" in message:
        message = message % f"{windows.parse_since(until, now):%Y-%m-%d %H:%M}"
    assert message in refused.value.message
