"""manage.py replay SLUG --version N: captured traffic, predicted again by
version N in this process, compared with what was served; printed and stored."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from monitoring.exceptions import MonitoringError
from monitoring.models import ReplayReport
from monitoring.stats import parse_since
from registry.exceptions import RegistryError

from ...dataplane.replay import replay


class Command(BaseCommand):
    help = (
        "Predict the captured request bodies of a model's recent traffic with "
        "another version, away from live traffic, and report how its answers "
        "differ from what was served: rows compared, agreement (or mean "
        "absolute difference), the requests that differ most, errors. Needs "
        "payload capture on for the model (the admin's 'Capture payloads', or "
        "MODELHUB_LOG_PAYLOADS). The report is also kept (admin: Replay reports)."
    )

    def create_parser(
        self, prog_name: str, subcommand: str, **kwargs: Any
    ) -> CommandParser:
        # Our --version (a model version) replaces Django's own --version flag.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--version", type=int, required=True, help="the version to replay against"
        )
        parser.add_argument(
            "--since",
            default="24h",
            help="traffic logged since: a window (15m, 24h, 7d) or an ISO time",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=10_000,
            help="the most recent captured requests to replay (default 10000)",
        )
        parser.add_argument("--requested-by", default="", help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        try:
            since = parse_since(options["since"], timezone.now(), name="--since")
            report = replay(
                slug=options["slug"],
                number=options["version"],
                since=since,
                limit=options["limit"],
                requested_by=options["requested_by"],
            )
        except (RegistryError, MonitoringError) as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from None
        self.stdout.write(describe(report))


def describe(report: ReplayReport) -> str:
    """The report as a person reads it."""
    lines = [
        f"Replayed {report.requests} request(s) of {report.slug} logged since "
        f"{report.since:%Y-%m-%d %H:%M} UTC against v{report.version}: "
        f"{report.rows_compared} row(s) compared with what was served."
    ]
    if report.agreement is not None:
        differing = round(report.rows_compared * (1 - report.agreement))
        lines.append(
            f"Agreement: {report.agreement:.2%} ({differing} of "
            f"{report.rows_compared} rows differ)."
        )
    if report.mae is not None:
        ratio = (
            f", {report.mae / report.served_std:.3f} of the served values' spread "
            f"({report.served_std:.6g})"
            if report.served_std
            else ""
        )
        lines.append(f"Mean absolute difference: {report.mae:.6g}{ratio}.")
    if report.skipped:
        lines.append(
            f"Skipped {report.skipped} body(ies) cut at MODELHUB_LOG_PAYLOAD_BYTES."
        )
    worst = report.details.get("worst") or []
    if worst:
        lines.append("Requests that differ most:")
        for entry in worst:
            what = (
                f"mean absolute difference {entry['mae']:.6g}"
                if "mae" in entry
                else f"{entry['differing']} of {entry['rows']} row(s) differ"
            )
            lines.append(
                f"  {entry['request_id']}  (served by v{entry['served_version']}): "
                f"{what}"
            )
    errors = report.details.get("errors") or []
    lines.append(f"Errors: {report.errors}.")
    for entry in errors:
        lines.append(f"  {entry['request_id']}  {entry['code']}: {entry['detail']}")
    lines.append(f"Report {report.pk} kept (admin: Replay reports).")
    return "\n".join(lines)
