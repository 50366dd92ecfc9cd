"""manage.py prunelogs: what it deletes, what --dry-run says it would, and
what it refuses (its messages name its own options)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from monitoring.management.commands.prunelogs import Command
from monitoring.models import LogGap, RequestLog, RequestStat

pytestmark = pytest.mark.django_db


def aged_rows(*days: float) -> None:
    """A log row, a minute rollup row and a log-gap note per age, in days."""
    now = timezone.now()
    RequestLog.objects.bulk_create(
        RequestLog(
            created_at=now - timedelta(days=age),
            slug="iris",
            version=1,
            status=200,
            latency_ms=1.0,
            request_id=f"aged-{i}",
        )
        for i, age in enumerate(days)
    )
    RequestStat.objects.bulk_create(
        RequestStat(
            resolution=RequestStat.Resolution.MINUTE,
            start=(now - timedelta(days=age)).replace(second=0, microsecond=0),
            slug="iris",
            version=1,
            error=False,
            bucket=0,
            count=1,
            rows=1,
            latency_sum_ms=1.0,
        )
        for age in days
    )
    for age in days:
        gap = LogGap.objects.create(dropped=1, since=now - timedelta(days=age))
        LogGap.objects.filter(pk=gap.pk).update(created_at=gap.since)


def counts() -> tuple[int, int, int]:
    return (
        RequestLog.objects.count(),
        RequestStat.objects.count(),
        LogGap.objects.count(),
    )


def prunelogs(*args: str) -> str:
    out = StringIO()
    call_command("prunelogs", *args, stdout=out)
    return out.getvalue()


def test_prunelogs_deletes_every_table_older_than_the_window():
    aged_rows(40, 35, 1)

    out = prunelogs("--older-than", "30d")

    assert "deleted 2 request-log rows, 2 rollup rows and 2 log-gap notes" in out
    assert counts() == (1, 1, 1)


def test_prunelogs_dry_run_says_what_it_would_delete_and_deletes_nothing():
    aged_rows(40, 35, 1)
    forty = (timezone.now() - timedelta(days=40)).strftime("%Y-%m-%d")
    thirty_five = (timezone.now() - timedelta(days=35)).strftime("%Y-%m-%d")

    out = prunelogs("--older-than", "30d", "--dry-run")

    assert "dry run, nothing deleted" in out
    lines = [line.strip() for line in out.splitlines()[1:]]
    assert [line.split(" (")[0] for line in lines] == [
        "request-log rows: 2",
        "rollup rows: 2",
        "log-gap notes: 2",
    ]
    assert all(f"from {forty}" in line for line in lines)
    assert all(f"to {thirty_five}" in line for line in lines)
    assert counts() == (3, 3, 3)


def test_prunelogs_dry_run_with_nothing_to_delete_says_zero():
    aged_rows(1)

    out = prunelogs("--dry-run")

    assert "request-log rows: 0" in out
    assert counts() == (1, 1, 1)


@pytest.mark.parametrize("window", ["0d", "12h", "90m"])
def test_prunelogs_refuses_a_window_shorter_than_a_day_without_yes(window):
    aged_rows(40, 0.01)

    with pytest.raises(CommandError, match="add --yes to confirm"):
        prunelogs("--older-than", window)

    assert counts() == (2, 2, 2)


def test_prunelogs_refuses_a_date_within_the_last_day_without_yes():
    aged_rows(40, 0.01)
    an_hour_ago = (timezone.now() - timedelta(hours=1)).isoformat()

    with pytest.raises(CommandError, match="--yes"):
        prunelogs("--older-than", an_hour_ago)

    assert counts() == (2, 2, 2)


def test_prunelogs_older_than_0d_with_yes_deletes_every_row():
    aged_rows(40, 0.01)

    out = prunelogs("--older-than", "0d", "--yes")

    assert "deleted 2 request-log rows" in out
    assert counts() == (0, 0, 0)


def test_prunelogs_dry_run_needs_no_yes_for_a_short_window():
    aged_rows(40, 0.01)

    out = prunelogs("--older-than", "0d", "--dry-run")

    assert "request-log rows: 2" in out
    assert counts() == (2, 2, 2)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("soon", "--older-than must be ISO-8601"),
        ("2999-01-01", "--older-than '2999-01-01' is in the future"),
        ("999999d", "--older-than window '999999d' is too long"),
    ],
)
def test_prunelogs_errors_name_its_own_option(window, message):
    with pytest.raises(CommandError) as refused:
        prunelogs("--older-than", window)

    assert message in str(refused.value)
    assert "'since'" not in str(refused.value)


def test_prunelogs_help_describes_dry_run_and_yes():
    text = Command().create_parser("manage.py", "prunelogs").format_help()

    assert "--dry-run" in text
    assert "--yes" in text
    assert "0d deletes every row" in " ".join(text.split())


def test_prunelogs_deletes_drift_counts_and_labels_of_requests_before_the_window():
    from monitoring.models import DriftCount, Feedback

    now = timezone.now()
    for i, age in enumerate((40, 35, 1)):
        moment = now - timedelta(days=age)
        DriftCount.objects.create(
            resolution="m",
            start=moment.replace(second=0, microsecond=0),
            slug="iris",
            version=1,
            feature="petal width (cm)",
            bin=2,
            count=5,
        )
        Feedback.objects.create(
            log_id=i,
            row=0,
            slug="iris",
            version=1,
            route="active",
            request_id=f"r{i}",
            predicted_at=moment,
            received_at=now,
            label="setosa",
            predicted="setosa",
        )

    assert "drift counts: 2" in prunelogs("--older-than", "30d", "--dry-run")
    out = prunelogs("--older-than", "30d")

    assert "2 drift counts and 2 feedback labels" in out
    assert (DriftCount.objects.count(), Feedback.objects.count()) == (1, 1)
