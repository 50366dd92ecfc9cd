"""Writing the request log: one row per prediction request, never failing one.

Contract: a request's row is committed at most MODELHUB_LOG_COMMIT_MS after
its response was sent, or sooner when MODELHUB_LOG_COMMIT_ROWS rows wait
(group commit, monitoring.commit_window; 0 ms = a commit per request, in the
request's own thread, before the worker takes its next request). Every
graceful exit commits what waits (``close``). If the database is down, rows
wait in a bounded per-worker buffer and are written with the next successful
flush; what overflows is counted (metric, and a LogGap row once the database
is back). The dashboard's rollup is folded from the rows separately
(monitoring.rollup). Raw SQL, because the ORM's per-row overhead is most of
the cost.
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
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    connection,
    connections,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from registry.routing import reconnect_later

from . import drift_counts, guards, metrics, rollup, writer_lock
from .commit_window import CommitWindow, commit_at_exit
from .models import LogGap, RequestLog

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
    key_name: str = ""
    batch_size: int | None = None
    route: str = "active"
    shadow_diff: float | None = None
    served_sum: float | None = None
    served_sq_sum: float | None = None
    predictions: str | None = None
    row_ids: str | None = None
    unjoinable: int = 0


LOG_COLUMNS = (
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
    "key_name",
    "batch_size",
    "route",
    "shadow_diff",
    "served_sum",
    "served_sq_sum",
    "predictions",
    "row_ids",
    "unjoinable",
)
# Rows per statement: well under SQLite's bound-parameter limit.
_CHUNK = 500


@functools.lru_cache(maxsize=64)
def _insert_log_sql(count: int) -> str:
    quote = connection.ops.quote_name
    # Identifiers come from model metadata; values are always parameters.
    return "INSERT INTO {} ({}) VALUES {}".format(  # noqa: S608
        quote(RequestLog._meta.db_table),
        ", ".join(quote(c) for c in LOG_COLUMNS),
        rollup.placeholders(count, len(LOG_COLUMNS)),
    )


@functools.lru_cache(maxsize=128)
def _qmark(sql: str) -> str:
    """sqlite3's placeholder style (the statements hold no literal '%')."""
    return sql.replace("%s", "?")


class RequestLogWriter:
    """Per-process writer with a commit window and a bounded outage buffer.

    Two locks: ``_rows`` guards the pending rows for a moment (requests add
    to them while a commit runs), ``_writing`` lets one commit run at a time.
    """

    def __init__(self) -> None:
        self._pending: deque[LogEntry] = deque()
        self._rows = threading.Lock()
        self._writing = threading.Lock()
        self._window = CommitWindow(self._commit_window)
        self._failing = False  # the last write failed: rows wait for a retry
        self._unrecorded_drops = 0
        self._drops_since: datetime | None = None
        self._last_warning = 0.0
        self.dropped_total = 0
        # The leading pending rows (and drops) of a write that failed: if the
        # connection broke after the statement reached the server, it may have
        # committed them. Checked before they are written again.
        self._unconfirmed = 0
        self._unconfirmed_drops = 0
        self._shown = -1  # what LOG_ROWS_BUFFERED was last set to
        self._folded_at = float("-inf")  # when this process last ran rollup
        self._guarded_at = float("-inf")  # ... and checked the rollout guards

    def submit(self, entry: LogEntry, *, now: bool = False) -> None:
        """Queue ``entry``; committed at once with ``now`` (the "sync" log
        mode) or a zero window, else when its window closes."""
        if len(self._pending) >= settings.MODELHUB_LOG_BUFFER_SIZE:
            self.flush()  # the database may be back: make room first
        with self._rows:
            if len(self._pending) >= settings.MODELHUB_LOG_BUFFER_SIZE:
                self._drop()
            else:
                self._pending.append(entry)
            waiting = len(self._pending)
        window_ms = settings.MODELHUB_LOG_COMMIT_MS
        if now or window_ms <= 0:
            self.flush()
        else:
            self._window.row_added(
                waiting, window_ms / 1000, settings.MODELHUB_LOG_COMMIT_ROWS
            )

    def close(self) -> int:
        """The graceful exit: stop the window's thread, commit what waits
        (and the drift counts not yet added)."""
        self._window.close()
        written = self.flush()
        try:
            drift_counts.counter.fold()
        except Exception:  # an exit must not fail on a monitoring problem
            logger.exception("drift counts not added at exit")
        return written

    def _commit_window(self) -> bool:
        """The window's commit; True when it failed (rows wait for a retry).
        Drift rows still waiting for their fold (at most every
        MODELHUB_LOG_ROLLUP_MS) have the window run again, even if no
        request comes to trigger it."""
        self.flush()
        if drift_counts.counter.waiting():
            self._fold_now_and_then()
            if drift_counts.counter.waiting():
                self._window.soon(settings.MODELHUB_LOG_ROLLUP_MS / 1000)
        return self._failing

    def _drop(self) -> None:
        self.dropped_total += 1
        self._unrecorded_drops += 1
        self._drops_since = self._drops_since or timezone.now()
        metrics.LOG_ROWS_DROPPED.inc()

    def flush(self) -> int:
        """Write what is pending; on a database error keep it for next time."""
        with self._writing:
            try:
                self._settle_unconfirmed()
            except DatabaseError as exc:
                self._failing = True
                reconnect_later()
                self._show_buffered()
                self._warn(exc)
                return 0
            with self._rows:
                batch = list(self._pending)
                drops = self._unrecorded_drops
                since = self._drops_since
            if not batch and not drops:
                return 0
            try:
                self._write(batch, drops, since)
            except DatabaseError as exc:
                self._failing = True
                self._unconfirmed, self._unconfirmed_drops = len(batch), drops
                reconnect_later()
                self._show_buffered()
                self._warn(exc)
                return 0
            self._failing = False
            with self._rows:
                for _ in batch:
                    self._pending.popleft()
                self._forget_drops(drops)
            self._show_buffered()
        # The guards first: a failing candidate is rolled back before the
        # rollup and the drift counts are brought up to date.
        self._guard_now_and_then()
        self._fold_now_and_then()
        return len(batch)

    def _forget_drops(self, count: int) -> None:
        """Drops recorded in a LogGap row; more may have come meanwhile."""
        self._unrecorded_drops -= count
        if not self._unrecorded_drops:
            self._drops_since = None

    def _fold_now_and_then(self) -> None:
        """Bring the rollup up to date at most every MODELHUB_LOG_ROLLUP_MS."""
        now = time.monotonic()
        if (now - self._folded_at) * 1000 < settings.MODELHUB_LOG_ROLLUP_MS:
            return
        self._folded_at = now
        try:
            rollup.catch_up()
            drift_counts.counter.fold()
        except DatabaseError as exc:
            reconnect_later()
            self._warn(exc)
        except Exception:  # a logging problem never fails a prediction
            logger.exception("request-log rollup failed")

    def _guard_now_and_then(self) -> None:
        """Check the rollout guards at most every MODELHUB_GUARD_CHECK_MS."""
        now = time.monotonic()
        if (now - self._guarded_at) * 1000 < settings.MODELHUB_GUARD_CHECK_MS:
            return
        self._guarded_at = now
        try:
            guards.check_all()
        except DatabaseError as exc:
            reconnect_later()
            self._warn(exc)
        except Exception:  # a guard problem never fails a prediction
            logger.exception("rollout guard check failed")

    def _settle_unconfirmed(self) -> None:
        """Drop the rows of a failed write that the database committed anyway.

        A batch is one statement or one transaction: its first row says
        whether all of it landed. Without this, a connection cut between the
        commit and its acknowledgement would log those requests twice.
        """
        if not self._unconfirmed:
            return
        first = self._pending[0]
        landed = RequestLog.objects.filter(
            created_at=first.created_at, slug=first.slug, request_id=first.request_id
        ).exists()
        if landed:
            with self._rows:
                for _ in range(self._unconfirmed):
                    self._pending.popleft()
                self._forget_drops(self._unconfirmed_drops)
            self._show_buffered()
        self._unconfirmed = self._unconfirmed_drops = 0

    def _show_buffered(self) -> None:
        """The gauge, written only when it changes (each write is a locked
        write to a shared file in multiprocess mode)."""
        count = len(self._pending)
        if count != self._shown:
            metrics.LOG_ROWS_BUFFERED.set(count)
            self._shown = count

    def pending(self) -> int:
        return len(self._pending)

    def reset(self) -> None:
        """Forget pending rows and drops (a fresh process, for tests)."""
        with self._writing, self._rows:
            self._pending.clear()
            self._unrecorded_drops = 0
            self._unconfirmed = self._unconfirmed_drops = 0
            self._drops_since = None
            self._shown = -1
            self._folded_at = float("-inf")
            self._guarded_at = float("-inf")
        drift_counts.counter.reset()

    def _write(self, batch: list[LogEntry], drops: int, since: datetime | None) -> None:
        db = connections[DEFAULT_DB_ALIAS]
        adapt = db.ops.adapt_datetimefield_value
        logs = [
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
                e.key_name,
                e.batch_size,
                e.route,
                e.shadow_diff,
                e.served_sum,
                e.served_sq_sum,
                e.predictions,
                e.row_ids,
                e.unjoinable,
            )
            for e in batch
        ]
        if batch and not drops and len(batch) <= _CHUNK and not db.in_atomic_block:
            self._write_direct(db, logs)
            return
        with writer_lock.held(db), transaction.atomic(using=db.alias):
            with db.cursor() as cursor:
                for i in range(0, len(logs), _CHUNK):
                    chunk = logs[i : i + _CHUNK]
                    sql = _insert_log_sql(len(chunk))
                    cursor.execute(sql, [v for r in chunk for v in r])
            if drops:
                LogGap.objects.create(dropped=drops, since=since)

    def _write_direct(
        self, db: BaseDatabaseWrapper, logs: list[tuple[Any, ...]]
    ) -> None:
        """The per-request path: one INSERT, atomic on its own, on the DB-API
        connection itself. Django's cursor wrapper, placeholder rewriting and
        atomic() bookkeeping cost more than the insert; errors still surface
        as Django's DatabaseError."""
        sql = _insert_log_sql(len(logs))
        params = [v for row in logs for v in row]
        db.ensure_connection()
        queued = writer_lock.acquire(db)
        try:
            with db.wrap_database_errors:
                db.connection.execute(
                    _qmark(sql) if db.vendor == "sqlite" else sql, params
                )
        finally:
            writer_lock.release(queued)

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
commit_at_exit(writer.close)


def sanitize_payload(body: bytes) -> str:
    """Capped, valid text without U+0000 (PostgreSQL text cannot hold it)."""
    cap = settings.MODELHUB_LOG_PAYLOAD_BYTES
    text = body[:cap].decode("utf-8", "replace").replace("\x00", "\ufffd")
    return text + ("…" if len(body) > cap else "")
