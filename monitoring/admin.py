"""Replay reports in the admin: read-only, as the replays left them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join

from . import admin_feedback  # noqa: F401 - registers FeedbackAdmin
from .models import ReplayReport


@admin.register(ReplayReport)
class ReplayReportAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "slug",
        "version",
        "requests",
        "rows_compared",
        "agreement_shown",
        "mae",
        "errors",
        "skipped",
        "requested_by",
    ]
    list_filter = ["slug"]
    search_fields = ["slug"]
    fields = [
        "created_at",
        "slug",
        "version",
        "since",
        "limit",
        "requests",
        "rows_compared",
        "agreement_shown",
        "mae",
        "served_std",
        "skipped",
        "errors",
        "worst_requests",
        "error_samples",
        "requested_by",
    ]
    readonly_fields = fields

    @admin.display(description="agreement")
    def agreement_shown(self, obj: ReplayReport) -> str:
        return "—" if obj.agreement is None else f"{obj.agreement:.2%}"

    @admin.display(description="requests that differ most")
    def worst_requests(self, obj: ReplayReport) -> str:
        worst = obj.details.get("worst") or []
        if not worst:
            return "—"
        return format_html_join(
            "",
            "<div><code>{}</code> (served by v{}): {}</div>",
            (
                (
                    entry.get("request_id", ""),
                    entry.get("served_version", ""),
                    f"mean absolute difference {entry['mae']:.6g}"
                    if "mae" in entry
                    else f"{entry.get('differing')} of {entry.get('rows')} rows differ",
                )
                for entry in worst
            ),
        )

    @admin.display(description="errors (first 20)")
    def error_samples(self, obj: ReplayReport) -> str:
        errors = obj.details.get("errors") or []
        if not errors:
            return "—"
        return format_html_join(
            "",
            "<div><code>{}</code> {}: {}</div>",
            ((e.get("request_id"), e.get("code"), e.get("detail")) for e in errors),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
