"""Folding request-log rows into the dashboard's rollup (RequestStat).

A request commits only its own log row. Every MODELHUB_LOG_ROLLUP_MS a
worker, right after writing a row, folds the rows past ``RollupMark`` into
the minute, hour and day rollups and moves the mark in the same transaction:
no row is counted twice, and none is lost if a worker dies, since the rows
themselves are the record. The dashboard and the stats API catch up before
they read, so what they show is exact.

Why not an UPSERT next to every row: without it (and its transaction) a
request costs measurably less (bench/README.md has the instruction counts).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.db.models.lookups import Exact

from . import writer_lock
from .latency import bucket_of
from .models import RequestLog, RequestStat, RollupMark

logger = logging.getLogger(__name__)

STAT_KEY = ("resolution", "start", "slug", "version", "route", "error", "bucket")
STAT_SUMS = (
    "count",
    "rows",
    "latency_sum_ms",
    "batched",
    "batch_size_sum",
    "shadow_diff",
    "served_sum",
    "served_sq_sum",
    "unjoinable",
)
# Log rows folded per transaction: a backlog (after an outage) is folded a
# batch at a time rather than in one long write.
BATCH = 5000
# Rollup rows per statement: well under SQLite's bound-parameter limit.
_CHUNK = 500
_FOLDED = (
    "pk",
    "created_at",
    "slug",
    "version",
    "status",
    "rows",
    "latency_ms",
    "error_code",
    "batch_size",
    "route",
    "shadow_diff",
    "served_sum",
    "served_sq_sum",
    "unjoinable",
)
# Requests for a slug that names no model (or a private one the caller may
# not see) are folded under this one name, which no slug can be: a flood of
# made-up slugs must not grow the rollup, the stats or the dashboard. The log
# keeps each slug as sent.
UNKNOWN_MODELS = "(unknown)"
UNKNOWN_MODEL_CODE = "unknown_model"


def logged_under(slug: str, *, slug_index: bool = True) -> Q:
    """The log rows folded under ``slug`` in the rollup, for a reader that
    must agree with it (requests for no model it knows, whatever slug they
    named, are UNKNOWN_MODELS's). ``slug_index=False`` compares the slug as
    an expression no index serves, for a query another index serves better:
    SQLite, with no ANALYZE, takes an equality on the first column of the
    (slug, version, time) index for the most selective of all, and would
    read a model's every row, of any time, there."""
    if slug == UNKNOWN_MODELS:
        return Q(error_code=UNKNOWN_MODEL_CODE)
    named = F("slug") if slug_index else Concat("slug", Value(""))
    return Q(Exact(named, slug)) & ~Q(error_code=UNKNOWN_MODEL_CODE)


def placeholders(count: int, width: int) -> str:
    """``count`` rows of ``width`` parameters, for a multi-row VALUES."""
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * count)


@functools.lru_cache(maxsize=64)
def upsert_sql(
    table_name: str,
    key_columns: tuple[str, ...],
    sum_columns: tuple[str, ...],
    count: int,
) -> str:
    """Add ``count`` rows' sums to the rows of the same key (inserting new
    keys): how every rollup-like table is written."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    table = quote(table_name)
    key = ", ".join(quote(c) for c in key_columns)
    sums = [quote(c) for c in sum_columns]
    return (
        f"INSERT INTO {table} ({key}, {', '.join(sums)}) "  # noqa: S608
        f"VALUES {placeholders(count, len(key_columns) + len(sum_columns))} "
        f"ON CONFLICT ({key}) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    )


def _upsert_sql(count: int) -> str:
    return upsert_sql(RequestStat._meta.db_table, STAT_KEY, STAT_SUMS, count)


@functools.lru_cache(maxsize=16)
def periods(minute: datetime) -> tuple[tuple[str, Any], ...]:
    """The minute, hour and day rows a minute's counts go to (adapted)."""
    # Every row of a minute shares these: adapting a datetime costs more than
    # the rest of a row's bookkeeping.
    adapt = connections[DEFAULT_DB_ALIAS].ops.adapt_datetimefield_value
    hour = minute.replace(minute=0)
    return (
        ("m", adapt(minute)),
        ("h", adapt(hour)),
        ("d", adapt(hour.replace(hour=0))),
    )


LoggedRow = tuple[
    datetime,
    str,
    int | None,
    int,
    int,
    float,
    int | None,
    str,
    tuple[float | None, float | None, float | None],
    int,
]


def sums(rows: Iterable[LoggedRow]) -> list:
    """Rollup rows for log rows given as (created_at, slug, version, status,
    rows, latency_ms, batch_size, route, shadow comparison, unjoinable rows):
    key columns, then count, rows, latency sum, requests batched, the sum of
    their batch sizes, the shadow comparison's three sums and the rows whose
    predictions were not kept."""
    totals: dict[tuple[Any, ...], list[float]] = {}
    for (
        created_at,
        slug,
        version,
        status,
        count,
        latency_ms,
        batch,
        route,
        shadow,
        unjoinable,
    ) in rows:
        error = status >= 400
        bucket = bucket_of(latency_ms)
        for resolution, start in periods(created_at.replace(second=0, microsecond=0)):
            key = (resolution, start, slug, version or 0, route, error, bucket)
            total = totals.setdefault(key, [0, 0, 0.0, 0, 0, 0.0, 0.0, 0.0, 0])
            total[0] += 1
            total[1] += count
            total[2] += latency_ms
            if batch is not None:
                total[3] += 1
                total[4] += batch
            for offset, value in enumerate(shadow):
                if value is not None:
                    total[5 + offset] += value
            total[8] += unjoinable
    return [
        (*k, int(v[0]), int(v[1]), v[2], int(v[3]), int(v[4]), v[5], v[6], v[7])
        + (int(v[8]),)
        for k, v in totals.items()
    ]


def _bucketed(row: tuple[Any, ...]) -> LoggedRow:
    _, created_at, slug, version, status, count, latency_ms, code, batch, route = row[
        :10
    ]
    if code == UNKNOWN_MODEL_CODE:
        slug = UNKNOWN_MODELS
    shadow = (row[10], row[11], row[12])
    unjoinable = row[13] or 0
    return (
        created_at,
        slug,
        version,
        status,
        count,
        latency_ms,
        batch,
        route,
        shadow,
        unjoinable,
    )


def catch_up(limit: int = BATCH) -> int:
    """Fold up to ``limit`` log rows past the mark; how many were folded."""
    db = connections[DEFAULT_DB_ALIAS]
    with writer_lock.held(db), transaction.atomic(using=db.alias):
        mark, _ = RollupMark.objects.select_for_update().get_or_create(pk=1)
        if db.vendor == "postgresql":
            # Wait for inserts in flight and hold new ones until commit: ids
            # are handed out before commit, so without this a row could commit
            # behind a mark that has already passed it. (SQLite's write lock,
            # taken by the IMMEDIATE transaction, already does this.)
            table = db.ops.quote_name(RequestLog._meta.db_table)
            with db.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {table} IN SHARE MODE")
        rows = list(
            RequestLog.objects.filter(pk__gt=mark.last_id)
            .order_by("pk")
            .values_list(*_FOLDED)[:limit]
        )
        if not rows:
            return 0
        totals = sums(_bucketed(row) for row in rows)
        with db.cursor() as cursor:
            for i in range(0, len(totals), _CHUNK):
                chunk = totals[i : i + _CHUNK]
                cursor.execute(_upsert_sql(len(chunk)), [v for r in chunk for v in r])
        RollupMark.objects.filter(pk=1).update(last_id=rows[-1][0])
    return len(rows)


def catch_up_all() -> int:
    """Fold every row logged so far (prunelogs, before it deletes rows)."""
    folded = 0
    while count := catch_up():
        folded += count
    return folded


def refresh() -> None:
    """Make the rollup current for a reader; on a database error (read-only,
    down) the reader shows what is there."""
    try:
        catch_up_all()
    except DatabaseError as exc:
        logger.warning("request-log rollup not brought up to date: %s", exc)
