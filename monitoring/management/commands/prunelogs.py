"""manage.py prunelogs [--older-than 30d] [--dry-run] [--yes]: delete old
request-log rows and rollups."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Max, Min
from django.utils import timezone

from monitoring.exceptions import InvalidSince
from monitoring.models import (
    DriftCount,
    Feedback,
    FeedbackStat,
    LogGap,
    RequestLog,
    RequestStat,
)
from monitoring.stats import parse_since

_BATCH = 10_000
# A shorter window takes rows the dashboard still shows today (--older-than
# 0d takes every row): it needs --yes.
SHORTEST_UNCONFIRMED = timedelta(days=1)
_STAMP = "%Y-%m-%d %H:%M:%S"


def _old_batches(cutoff: datetime) -> Iterator[list[tuple[int, datetime]]]:
    """(id, time) of the log rows older than ``cutoff``, a batch at a time.

    Rows are read in id order, the order they were written, in batches that
    keep each transaction short while workers keep logging. There is no index
    on time alone (one more page written per request), so the walk stops at
    the first batch without an old row: a prune reads the old rows and one
    batch more. A row written more than a batch after newer ones (held in a
    worker's buffer through an outage) goes with a later prune.
    """
    after = 0
    while True:
        batch = list(
            RequestLog.objects.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", "created_at")[:_BATCH]
        )
        old = [(pk, created_at) for pk, created_at in batch if created_at < cutoff]
        if old:
            yield old
        if not old or len(batch) < _BATCH:
            return
        after = batch[-1][0]


def prune_log(cutoff: datetime) -> int:
    """Delete log rows older than ``cutoff``; how many."""
    deleted = 0
    for old in _old_batches(cutoff):
        deleted += RequestLog.objects.filter(pk__in=[pk for pk, _ in old]).delete()[0]
    return deleted


def _span(count: int, first: datetime | None, last: datetime | None) -> str:
    if not count:
        return "0"
    return f"{count} (from {first:{_STAMP}} to {last:{_STAMP}} UTC)"


def describe(cutoff: datetime) -> list[str]:
    """What a prune at ``cutoff`` would delete, one line per table."""
    rows, first, last = 0, None, None
    for old in _old_batches(cutoff):
        times = [created_at for _, created_at in old]
        rows += len(times)
        first = min(times) if first is None else min(first, *times)
        last = max(times) if last is None else max(last, *times)
    stats = RequestStat.objects.filter(start__lt=cutoff).aggregate(
        n=Count("pk"), first=Min("start"), last=Max("start")
    )
    gaps = LogGap.objects.filter(created_at__lt=cutoff).aggregate(
        n=Count("pk"), first=Min("created_at"), last=Max("created_at")
    )
    counts = DriftCount.objects.filter(start__lt=cutoff).aggregate(
        n=Count("pk"), first=Min("start"), last=Max("start")
    )
    labels = Feedback.objects.filter(predicted_at__lt=cutoff).aggregate(
        n=Count("pk"), first=Min("predicted_at"), last=Max("predicted_at")
    )
    found = [
        f"request-log rows: {_span(rows, first, last)}",
        f"rollup rows: {_span(stats['n'], stats['first'], stats['last'])}",
        f"log-gap notes: {_span(gaps['n'], gaps['first'], gaps['last'])}",
    ]
    # Drift counts and labels exist only where they are used: named when
    # there are some to delete.
    if counts["n"]:
        found.append(
            f"drift counts: {_span(counts['n'], counts['first'], counts['last'])}"
        )
    if labels["n"]:
        found.append(
            "feedback labels (by when predicted): "
            + _span(labels["n"], labels["first"], labels["last"])
        )
    return found


class Command(BaseCommand):
    help = (
        "Delete request-log rows, their rollups, drift counts, feedback labels "
        "and log-gap notes older than a "
        "window (default: MODELHUB_LOG_RETENTION_DAYS days). A window shorter "
        "than a day (--older-than 0d deletes every row) needs --yes; "
        "--dry-run only says what would go."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            help="e.g. 30d, 12h or an ISO-8601 date "
            "(default: MODELHUB_LOG_RETENTION_DAYS days)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print what would be deleted, per table, and delete nothing",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help="confirm a window shorter than a day, which deletes rows "
            "from the last 24 hours (--older-than 0d: all of them)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["older_than"]:
            try:
                cutoff = parse_since(options["older_than"], now, name="--older-than")
            except InvalidSince as exc:
                raise CommandError(exc.message) from None
        else:
            cutoff = now - timedelta(days=settings.MODELHUB_LOG_RETENTION_DAYS)
        recent = now - cutoff < SHORTEST_UNCONFIRMED
        if recent and not (options["yes"] or options["dry_run"]):
            raise CommandError(
                f"--older-than {options['older_than']} would delete rows from the "
                "last 24 hours: add --yes to confirm, or --dry-run to see them."
            )
        if options["dry_run"]:
            self.stdout.write(
                f"would delete, older than {cutoff:{_STAMP}} UTC (dry run, "
                "nothing deleted):"
            )
            for line in describe(cutoff):
                self.stdout.write(f"  {line}")
            return
        deleted = prune_log(cutoff)
        stats, _ = RequestStat.objects.filter(start__lt=cutoff).delete()
        gaps, _ = LogGap.objects.filter(created_at__lt=cutoff).delete()
        counts, _ = DriftCount.objects.filter(start__lt=cutoff).delete()
        labels, _ = Feedback.objects.filter(predicted_at__lt=cutoff).delete()
        FeedbackStat.objects.filter(start__lt=cutoff).delete()
        self.stdout.write(
            f"deleted {deleted} request-log rows, {stats} rollup rows and {gaps} "
            f"log-gap notes older than {cutoff:{_STAMP}} UTC; {counts} drift "
            f"counts and {labels} feedback labels of requests before it"
        )
