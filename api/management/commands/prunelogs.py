"""manage.py prunelogs [--older-than 30d]: delete old request-log rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from api.exceptions import PayloadError
from api.models import LogGap, RequestLog, RequestStat
from api.stats import parse_since

_BATCH = 10_000


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
            except PayloadError as exc:
                raise CommandError(exc.message) from None
        else:
            cutoff = now - timedelta(days=settings.MODELHUB_LOG_RETENTION_DAYS)
        deleted = 0
        # Batches keep each transaction short: workers keep logging meanwhile.
        while True:
            ids = list(
                RequestLog.objects.filter(created_at__lt=cutoff).values_list(
                    "pk", flat=True
                )[:_BATCH]
            )
            if not ids:
                break
            deleted += RequestLog.objects.filter(pk__in=ids).delete()[0]
        stats, _ = RequestStat.objects.filter(start__lt=cutoff).delete()
        LogGap.objects.filter(created_at__lt=cutoff).delete()
        self.stdout.write(
            f"deleted {deleted} request-log rows and {stats} rollup rows older than "
            f"{cutoff:%Y-%m-%d %H:%M:%S} UTC"
        )
