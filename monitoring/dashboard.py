"""The staff dashboard: traffic, errors, latency and quality per model and
version, and rollouts, as an admin page; focused on one model (and version)
it shows only that one's, everywhere."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import (
    dashboard_query,
    drift_stats,
    error_codes,
    rollouts_view,
    rollup,
    stats,
    version_table,
)
from .dashboard_query import REFRESH_SECONDS, WINDOWS, DashboardQuery
from .exceptions import InvalidFilter, InvalidSince
from .quality import QualitySeries, quality_series

TEMPLATE = "monitoring/dashboard.html"


@staff_member_required(login_url="admin:login")
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "windows": WINDOWS,
        "refresh_seconds": REFRESH_SECONDS,
        "baseline_rows": settings.MODELHUB_DRIFT_BASELINE_ROWS,
    }
    now = timezone.now()
    # Before reading the query: the window it opens on depends on the rows
    # just logged.
    rollup.refresh()
    try:
        query = dashboard_query.read(request.GET, now)
    except (InvalidSince, InvalidFilter) as exc:
        blank = dashboard_query.blank(now)
        refused = {"query": blank, "window": "", "slug": "", "error": exc.message}
        return render(request, TEMPLATE, context | refused, status=400)
    return render(request, TEMPLATE, context | _focused(query))


def _focused(query: DashboardQuery) -> dict[str, Any]:
    """Every panel's data for the query's window, model and version."""
    window = {"slug": query.slug, "version": query.version}
    since, until = query.since, query.until
    summary = stats.summary(since, until, **window)
    models = summary["models"]
    chosen = models[0] if query.slug is not None and models else None
    labels = quality_series(since, until, **window) if query.slug else None
    moved = drift_stats.series(since, until, **window) if query.slug else None
    return {
        "query": query,
        "window": query.window,
        "slug": query.slug or "",
        "picker": dashboard_query.choices(query),
        "since": since,
        "until": until,
        "totals": _with_percent(summary["totals"]),
        "models": [
            _with_percent(m, versions=[_with_percent(v) for v in m["versions"]])
            for m in models
        ],
        "versions": version_table.table(chosen["versions"]) if chosen else None,
        "error_codes": [
            {
                **found,
                "log_url": error_codes.log_url(
                    found["code"], **query.log_window(), **window
                ),
            }
            for found in error_codes.by_code(since, until, **window)
        ],
        "recent_errors": stats.recent_errors(since, until=until, **window),
        **rollouts_view.panel(summary, slug=query.slug),
        "chart": _chart_data(stats.series(since, until, **window), labels, query),
        "drift": _drift_panel(chosen, moved),
    }


def _drift_panel(
    chosen: dict[str, Any] | None, moved: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The chosen model's drift: each version's features worst first with
    the reference it is read against, and the worst ones hour by hour."""
    if chosen is None:
        return None
    versions = [
        {"version": v["version"], **v["drift"]}
        for v in chosen["versions"]
        if v.get("drift")
    ]
    return {
        "versions": versions,
        "chart": {
            "starts": [
                timezone.localtime(start).isoformat() for start in moved["starts"]
            ],
            "versions": moved["versions"],
        }
        if moved and moved["versions"]
        else None,
    }


def _with_percent(counts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**counts, **extra, "error_percent": counts["error_rate"] * 100}


def _chart_data(
    series: dict[str, Any], labels: QualitySeries | None, query: DashboardQuery
) -> dict[str, Any]:
    """What dashboard.js draws; times as ISO-8601 in the site's time zone."""
    step = series["step_seconds"]
    slug = query.slug or ""
    return {
        "step_seconds": step,
        "step": f"{step // 3600} h" if step % 3600 == 0 else f"{step // 60} min",
        "points": [
            {**point, "start": timezone.localtime(point["start"]).isoformat()}
            for point in series["points"]
        ],
        "focus": _focus_label(query),
        # The chosen model's requests per step: the series is that model's
        # already, so these are the bars' heights (kept for what reads them).
        "highlight": {"slug": slug, "requests": series["models"][slug]}
        if slug in series["models"]
        else None,
        # Same steps as the points: one line per version with labels.
        "quality": [
            {
                "version": found["version"],
                "metric": found["metric"],
                "values": [p["value"] for p in found["points"]],
                "labelled": [p["labelled"] for p in found["points"]],
            }
            for found in labels["versions"]
        ]
        if labels
        else None,
    }


def _focus_label(query: DashboardQuery) -> str:
    if query.slug is None:
        return "all models"
    return query.slug if query.version is None else f"{query.slug} v{query.version}"
