"""Writing the request log: one row per prediction request, never failing one.

Contract: a request's row (and its rollup) is committed before the worker
takes its next request — written right after the response is sent (or before
it, in "sync" mode). If the database is down, rows wait in a bounded
per-worker buffer and are written with the next successful flush; what
overflows is counted (metric, and a LogGap row once the database is back).
Raw SQL, because the ORM's per-row overhead is most of the cost.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from . import metrics
from .latency import bucket_of
from .models import LogGap, RequestLog, RequestStat

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LogEntry:
    created_at: datetime
    slug: str
    version: int | None
    status: int
    error_code: str
    rows: int
    latency_ms: float
    model_ms: float | None
    request_id: str
    client: str = ""
    payload: str | None = None


@functools.cache
def _sql(vendor: str) -> tuple[str, str]:
    """The two statements, built once per database vendor."""
    quote = connection.ops.quote_name
    log_columns = [
        "created_at",
        "slug",
        "version",
        "status",
        "error_code",
        "rows",
        "latency_ms",
        "model_ms",
        "request_id",
        "client",
        "payload",
    ]
    # Identifiers come from model metadata; values are always parameters.
    insert_log = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        quote(RequestLog._meta.db_table),
        ", ".join(quote(c) for c in log_columns),
        ", ".join(["%s"] * len(log_columns)),
    )
    table = quote(RequestStat._meta.db_table)
    key = ", ".join(quote(c) for c in ("minute", "slug", "version", "error", "bucket"))
    sums = [quote(c) for c in ("count", "rows", "latency_sum_ms")]
    upsert_stat = (
        f"INSERT INTO {table} ({key}, {', '.join(sums)}) "  # noqa: S608
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT ({key}) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    )
    return insert_log, upsert_stat


class RequestLogWriter:
    """Per-process writer with a bounded outage buffer."""

    def __init__(self) -> None:
        self._pending: deque[LogEntry] = deque()
        self._lock = threading.Lock()
        self._unrecorded_drops = 0
        self._drops_since: datetime | None = None
        self._last_warning = 0.0
        self.dropped_total = 0

    def submit(self, entry: LogEntry) -> None:
        if len(self._pending) >= settings.MODELHUB_LOG_BUFFER_SIZE:
            self.flush()  # the database may be back: make room first
        with self._lock:
            if len(self._pending) >= settings.MODELHUB_LOG_BUFFER_SIZE:
                self._drop()
            else:
                self._pending.append(entry)
        self.flush()

    def _drop(self) -> None:
        self.dropped_total += 1
        self._unrecorded_drops += 1
        self._drops_since = self._drops_since or timezone.now()
        metrics.LOG_ROWS_DROPPED.inc()

    def flush(self) -> int:
        """Write what is pending; on a database error keep it for next time."""
        with self._lock:
            batch = list(self._pending)
            drops = self._unrecorded_drops
            if not batch and not drops:
                return 0
            try:
                self._write(batch, drops)
            except DatabaseError as exc:
                metrics.LOG_ROWS_BUFFERED.set(len(self._pending))
                self._warn(exc)
                return 0
            for _ in batch:
                self._pending.popleft()
            self._unrecorded_drops = 0
            self._drops_since = None
        metrics.LOG_ROWS_BUFFERED.set(len(self._pending))
        return len(batch)

    def pending(self) -> int:
        return len(self._pending)

    def reset(self) -> None:
        """Forget pending rows and drops (a fresh process, for tests)."""
        with self._lock:
            self._pending.clear()
            self._unrecorded_drops = 0
            self._drops_since = None

    def _write(self, batch: list[LogEntry], drops: int) -> None:
        insert_log, upsert_stat = _sql(connection.vendor)
        adapt = connection.ops.adapt_datetimefield_value
        stats: dict[tuple[Any, ...], list[float]] = {}
        for e in batch:
            error = e.status >= 400
            key = (
                e.created_at.replace(second=0, microsecond=0),
                e.slug,
                e.version or 0,
                error,
                bucket_of(e.latency_ms),
            )
            sums = stats.setdefault(key, [0, 0, 0.0])
            sums[0] += 1
            sums[1] += e.rows
            sums[2] += e.latency_ms
        with transaction.atomic():
            with connection.cursor() as cursor:
                if batch:
                    cursor.executemany(
                        insert_log,
                        [
                            (
                                adapt(e.created_at),
                                e.slug,
                                e.version,
                                e.status,
                                e.error_code,
                                e.rows,
                                e.latency_ms,
                                e.model_ms,
                                e.request_id,
                                e.client,
                                e.payload,
                            )
                            for e in batch
                        ],
                    )
                    cursor.executemany(
                        upsert_stat,
                        [
                            (
                                adapt(k[0]),
                                k[1],
                                k[2],
                                k[3],
                                k[4],
                                int(v[0]),
                                int(v[1]),
                                v[2],
                            )
                            for k, v in stats.items()
                        ],
                    )
            if drops:
                LogGap.objects.create(dropped=drops, since=self._drops_since)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            logger.warning(
                "request log: database unavailable (%s); %d row(s) buffered",
                exc,
                len(self._pending),
            )


writer = RequestLogWriter()


def sanitize_payload(body: bytes) -> str:
    """Capped, valid text without U+0000 (PostgreSQL text cannot hold it)."""
    cap = settings.MODELHUB_LOG_PAYLOAD_BYTES
    text = body[:cap].decode("utf-8", "replace").replace("\x00", "\ufffd")
    return text + ("…" if len(body) > cap else "")
