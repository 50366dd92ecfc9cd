"""The labels' rollup (FeedbackStat): counts per period, version, route and
(label, predicted) pair, written in the transaction that stores the labels,
so quality over any window is read from a few thousand rows. A label sent
again takes its old pair's count back before adding the new one's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from .models import Feedback, FeedbackStat
from .rollup import periods, upsert_sql

KEY = ("resolution", "start", "slug", "version", "route", "label", "predicted")
SUMS = ("count", "regressed", "abs_error", "sq_error")
# Pairs are compared whole in Feedback; the rollup's key keeps their start,
# so an index entry stays well within PostgreSQL's limit.
KEY_CHARS = 500
_CHUNK = 500


def add(rows: Iterable[Feedback], replaced: Iterable[Feedback] = ()) -> None:
    """Count ``rows`` in, ``replaced`` out (inside the caller's transaction)."""
    totals: dict[tuple[Any, ...], list[float]] = {}
    for sign, group in ((1, rows), (-1, replaced)):
        for row in group:
            for key in keys(row):
                total = totals.setdefault(key, [0, 0, 0.0, 0.0])
                total[0] += sign
                if row.error is not None:
                    total[1] += sign
                    total[2] += sign * abs(row.error)
                    total[3] += sign * row.error * row.error
    changed = [(*key, *sums) for key, sums in totals.items() if any(sums)]
    db = connections[DEFAULT_DB_ALIAS]
    table = FeedbackStat._meta.db_table
    with db.cursor() as cursor:
        for i in range(0, len(changed), _CHUNK):
            chunk = changed[i : i + _CHUNK]
            cursor.execute(
                upsert_sql(table, KEY, SUMS, len(chunk)),
                [v for row in chunk for v in row],
            )


def keys(row: Feedback) -> list[tuple[Any, ...]]:
    """The row's key at each resolution; a regressor's pair is blank."""
    if row.error is not None:
        label = predicted = ""
    else:
        label, predicted = row.label[:KEY_CHARS], row.predicted[:KEY_CHARS]
    minute = row.predicted_at.replace(second=0, microsecond=0)
    return [
        (resolution, start, row.slug, row.version, row.route, label, predicted)
        for resolution, start in periods(minute)
    ]
