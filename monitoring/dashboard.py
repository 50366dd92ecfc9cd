"""The staff dashboard: traffic, errors and latency per model, and rollouts, as an
admin page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import rollouts_view, rollup, stats
from .exceptions import InvalidSince

TEMPLATE = "monitoring/dashboard.html"
WINDOWS = ("15m", "1h", "6h", "24h", "7d")


@staff_member_required(login_url="admin:login")
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    window = (request.GET.get("since") or stats.DEFAULT_WINDOW).strip()
    slug = (request.GET.get("model") or "").strip()
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "windows": WINDOWS,
        "window": window,
        "slug": slug,
    }
    until = timezone.now()
    try:
        since = stats.parse_since(window, until)
    except InvalidSince as exc:
        return render(request, TEMPLATE, {**context, "error": exc.message}, status=400)
    rollup.refresh()
    summary = stats.summary(since, until)
    series = stats.series(since, until)
    context |= {
        "since": since,
        "until": until,
        "totals": _with_percent(summary["totals"]),
        "models": [
            _with_percent(m, versions=[_with_percent(v) for v in m["versions"]])
            for m in summary["models"]
            if not slug or m["slug"] == slug
        ],
        "recent_errors": stats.recent_errors(since, slug=slug or None),
        **rollouts_view.panel(summary, slug=slug or None),
        "chart": _chart_data(series, slug),
    }
    return render(request, TEMPLATE, context)


def _with_percent(counts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**counts, **extra, "error_percent": counts["error_rate"] * 100}


def _chart_data(series: dict[str, Any], slug: str) -> dict[str, Any]:
    """What dashboard.js draws; times as ISO-8601 in the site's time zone."""
    step = series["step_seconds"]
    return {
        "step_seconds": step,
        "step": f"{step // 3600} h" if step % 3600 == 0 else f"{step // 60} min",
        "points": [
            {**point, "start": timezone.localtime(point["start"]).isoformat()}
            for point in series["points"]
        ],
        "highlight": {"slug": slug, "requests": series["models"][slug]}
        if slug in series["models"]
        else None,
    }
