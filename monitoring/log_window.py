"""A time window of the request log as a range of its ids.

The log has no index on time alone (each index is one more page written per
request, and the requests are the product). Its ids do follow time: a row
gets its id when it is written, and it is written after its ``created_at``
(the response's time), within the writer's commit window
(MODELHUB_LOG_COMMIT_MS). So the first id of a moment is found by a binary
search on the primary key, ~20 lookups of one row each for a million rows,
and a window becomes an id range, which the primary key serves, plus the
exact test on time for the rows near its edges.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet

from .models import RequestLog

# How late a row may be written after its time and still be found at a
# window's edge. Rows wait the commit window (10 ms by default) or a busy
# SQLite (its timeout, 20 s); one that a worker held through a database
# outage for longer may be missed by a window ending before it was written.
SLACK = timedelta(minutes=1)


def first_id_from(moment: datetime) -> int:
    """An id that splits the log at ``moment``: the rows before it were
    logged before ``moment``, the rows from it on at or after it (as far as
    ids follow time; hence SLACK). One past the last id when none is as late.
    """
    last = RequestLog.objects.order_by("-pk").values_list("pk", flat=True).first()
    if last is None:
        return 0
    low, high = 0, last + 1
    while low < high:
        middle = (low + high) // 2
        # Ids have gaps (pruned rows, rolled-back inserts): probe the first
        # row at or after the middle, there is one since middle <= last.
        found, created_at = (
            RequestLog.objects.filter(pk__gte=middle)
            .order_by("pk")
            .values_list("pk", "created_at")
            .first()
        )
        if created_at >= moment:
            high = middle
        else:
            low = found + 1
    return low


def within(
    rows: QuerySet[RequestLog],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[RequestLog]:
    """``rows`` logged at or after ``since`` and before ``until``, bounded by
    ids too (one SLACK wider than the window) so the primary key serves it."""
    if since is not None:
        rows = rows.filter(pk__gte=first_id_from(since - SLACK), created_at__gte=since)
    if until is not None:
        rows = rows.filter(pk__lt=first_id_from(until + SLACK), created_at__lt=until)
    return rows
