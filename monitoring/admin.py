"""Monitoring in the admin, read-only: replay reports as the replays left
them, and the request log, paged without counting it (monitoring.log_paging)
and filtered on its indexes (monitoring.log_filters)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import (
    admin_feedback,  # noqa: F401 - registers FeedbackAdmin
    log_filters,
)
from .log_paging import (
    ORDERING,
    UncountedChangeList,
    UncountedPaginator,
    requested_page,
)
from .models import Feedback, ReplayReport, RequestLog

# Feedback rows listed on a log row's page, by row.
FEEDBACK_SHOWN = 200


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


def _pretty(text: str) -> str:
    """JSON indented in a <pre>; anything else (a CSV body, a body cut at
    MODELHUB_LOG_PAYLOAD_BYTES) as it was kept."""
    try:
        shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        shown = text
    return format_html('<pre class="log-text">{}</pre>', shown)


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    """One row per prediction request, to read: nobody adds, edits or deletes
    the log here (prunelogs deletes old rows)."""

    list_display = [
        "time",
        "model_slug",
        "version_shown",
        "route",
        "status",
        "error_code",
        "rows",
        "latency",
        "request_id",
    ]
    list_display_links = ["time"]
    list_filter = [
        log_filters.TimeFilter,
        log_filters.ModelFilter,
        log_filters.VersionFilter,
        log_filters.StatusFilter,
        log_filters.ErrorCodeFilter,
        log_filters.RouteFilter,
    ]
    search_fields = ["request_id"]
    search_help_text = "An exact request id (the X-Request-ID header)."
    ordering = ORDERING
    sortable_by: list[str] = []
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    list_max_show_all = list_per_page  # "show all" is never more than a page
    actions = None
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "logged_at",
                    "slug",
                    "version",
                    "route",
                    "status",
                    "error_code",
                    "request_id",
                    "key_name",
                    "client",
                ]
            },
        ),
        (
            "Work",
            {"fields": ["rows", "batch_size", "latency_ms", "model_ms"]},
        ),
        (
            "Shadow comparison",
            {"fields": ["shadow_diff", "served_sum", "served_sq_sum"]},
        ),
        (
            "Captured",
            {"fields": ["payload_shown", "predictions_shown", "row_ids_shown"]},
        ),
        ("Feedback", {"fields": ["feedback_shown"]}),
    ]

    class Media:
        css = {"all": ["monitoring/log_admin.css"]}

    def get_changelist(
        self, request: HttpRequest, **kwargs: Any
    ) -> type[UncountedChangeList]:
        return UncountedChangeList

    def get_paginator(
        self, request: HttpRequest, queryset: QuerySet, per_page: int, *args: Any
    ) -> UncountedPaginator:
        return UncountedPaginator(queryset, per_page, number=requested_page(request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """An exact request id, on its index (a substring search reads every
        row)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(request_id=term), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="time")
    def time(self, obj: RequestLog) -> str:
        return f"{timezone.localtime(obj.created_at):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="time")
    def logged_at(self, obj: RequestLog) -> str:
        return f"{timezone.localtime(obj.created_at):%Y-%m-%d %H:%M:%S.%f %Z}"

    @admin.display(description="model")
    def model_slug(self, obj: RequestLog) -> str:
        return obj.slug

    @admin.display(description="version")
    def version_shown(self, obj: RequestLog) -> str:
        return "—" if obj.version is None else f"v{obj.version}"

    @admin.display(description="latency")
    def latency(self, obj: RequestLog) -> str:
        return f"{obj.latency_ms:.1f} ms"

    @admin.display(description="payload")
    def payload_shown(self, obj: RequestLog) -> str:
        if obj.payload is None:
            return "— (not captured)"
        return _pretty(obj.payload)

    @admin.display(description="predictions")
    def predictions_shown(self, obj: RequestLog) -> str:
        kept = "— (not kept)" if obj.predictions is None else _pretty(obj.predictions)
        if not obj.unjoinable:
            return kept
        return format_html(
            "{}<p>predictions past the cap: {} (no feedback can reach them)</p>",
            kept,
            obj.unjoinable,
        )

    @admin.display(description="row ids")
    def row_ids_shown(self, obj: RequestLog) -> str:
        return "—" if obj.row_ids is None else _pretty(obj.row_ids)

    @admin.display(description="feedback")
    def feedback_shown(self, obj: RequestLog) -> str:
        rows = list(
            Feedback.objects.filter(log_id=obj.pk).order_by("row")[: FEEDBACK_SHOWN + 1]
        )
        if not rows:
            return "— (no label received)"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f.row,
                    f.label,
                    f.predicted,
                    _verdict(f),
                    f"{timezone.localtime(f.received_at):%Y-%m-%d %H:%M:%S}",
                )
                for f in rows[:FEEDBACK_SHOWN]
            ),
        )
        more = (
            format_html("<p>first {} rows shown</p>", FEEDBACK_SHOWN)
            if len(rows) > FEEDBACK_SHOWN
            else ""
        )
        return format_html(
            '<table class="log-feedback"><thead><tr><th>row</th><th>label</th>'
            "<th>predicted</th><th>correct / error</th><th>received</th></tr>"
            "</thead><tbody>{}</tbody></table>{}",
            body,
            more,
        )


def _verdict(feedback: Feedback) -> str:
    if feedback.error is not None:
        return f"error {feedback.error:+.6g}"
    return "correct" if feedback.correct else "wrong"
