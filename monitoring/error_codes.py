"""Errors broken down by code: how many in a window, and the latest one's
time, status and request id, with a link to those rows in the request-log
admin.

The log keeps no error message: a request's detail went to its client in
the response; its row has the code, the status and the request id. Both
queries read the log's partial index on errors (requestlog_errors_time),
whose condition they state in its own words (log_filters.ERRORS), so it
stays a read of the window's errors whatever the size of the log.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict
from urllib.parse import urlencode

from django.db.models import Count, Max
from django.urls import reverse

from .log_filters import ERRORS, ErrorCodeFilter, ModelFilter, VersionFilter
from .models import RequestLog
from .stats import focus


class ErrorCode(TypedDict):
    code: str  # "" for an error logged without one
    count: int
    latest_at: datetime
    status: int  # the latest one's
    request_id: str  # the latest one's


def by_code(
    since: datetime,
    until: datetime,
    *,
    slug: str | None = None,
    version: int | None = None,
) -> list[ErrorCode]:
    """The window's errors per code, most frequent first: two queries, the
    counts and then the latest row of each code."""
    errors = RequestLog.objects.filter(
        ERRORS,
        focus(slug, version, log=True, slug_index=False),
        created_at__gte=since,
        created_at__lt=until,
    )
    counted = list(
        errors.values_list("error_code")
        .annotate(n=Count("id"), latest=Max("created_at"))
        .order_by()
    )
    if not counted:
        return []
    latest: dict[tuple[str, datetime], tuple[int, int, str]] = {}
    for code, at, pk, status, request_id in errors.filter(
        created_at__in={at for _, _, at in counted}
    ).values_list("error_code", "created_at", "pk", "status", "request_id"):
        # Two errors in the same microsecond: the one logged last.
        if (code, at) not in latest or pk > latest[code, at][0]:
            latest[code, at] = (pk, status, request_id)
    found: list[ErrorCode] = []
    for code, count, at in counted:
        _, status, request_id = latest[code, at]
        found.append(
            {
                "code": code,
                "count": count,
                "latest_at": at,
                "status": status,
                "request_id": request_id,
            }
        )
    return sorted(found, key=lambda e: (-e["count"], e["code"]))


def log_url(
    code: str,
    *,
    since: str,
    until: str | None = None,
    slug: str | None = None,
    version: int | None = None,
) -> str:
    """The request-log admin's list of these errors, in the same window and
    focus: its filters' own parameters (monitoring.log_filters)."""
    params = {ErrorCodeFilter.parameter_name: code, "since": since}
    if until:
        params["until"] = until
    if slug is not None:
        params[ModelFilter.parameter_name] = slug
    if version is not None:
        params[VersionFilter.parameter_name] = str(version)
    return f"{reverse('admin:monitoring_requestlog_changelist')}?{urlencode(params)}"
