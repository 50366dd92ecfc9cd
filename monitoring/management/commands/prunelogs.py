"""manage.py prunelogs [--older-than 30d]: delete old request-log rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from monitoring.exceptions import InvalidSince
from monitoring.models import LogGap, RequestLog, RequestStat
from monitoring.stats import parse_since

_BATCH = 10_000


def prune_log(cutoff: datetime) -> int:
    """Delete log rows older than ``cutoff``; how many.

    Rows are read in id order, the order they were written, in batches that
    keep each transaction short while workers keep logging. There is no index
    on time alone (one more page written per request), so the walk stops at
    the first batch without an old row: a prune reads the old rows and one
    batch more. A row written more than a batch after newer ones (held in a
    worker's buffer through an outage) goes with a later prune.
    """
    deleted = after = 0
    while True:
        batch = list(
            RequestLog.objects.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", "created_at")[:_BATCH]
        )
        old = [pk for pk, created_at in batch if created_at < cutoff]
        if old:
            deleted += RequestLog.objects.filter(pk__in=old).delete()[0]
        if not old or len(batch) < _BATCH:
            return deleted
        after = batch[-1][0]


class Command(BaseCommand):
    help = (
        "Delete request-log rows and rollups older than a window (default: retention)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            help="e.g. 30d, 12h or an ISO-8601 date "
            "(default: MODELHUB_LOG_RETENTION_DAYS days)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["older_than"]:
            try:
                cutoff = parse_since(options["older_than"], now)
            except InvalidSince as exc:
                raise CommandError(exc.message) from None
        else:
            cutoff = now - timedelta(days=settings.MODELHUB_LOG_RETENTION_DAYS)
        deleted = prune_log(cutoff)
        stats, _ = RequestStat.objects.filter(start__lt=cutoff).delete()
        LogGap.objects.filter(created_at__lt=cutoff).delete()
        self.stdout.write(
            f"deleted {deleted} request-log rows and {stats} rollup rows older than "
            f"{cutoff:%Y-%m-%d %H:%M:%S} UTC"
        )
