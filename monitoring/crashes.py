"""A worker that died inside a prediction: its request's row and the crash.

Called by the gunicorn master's child_exit hook for every worker that exits;
a worker that left no prediction behind (registry.inflight) is no crash.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError, connections

from registry import actions, inflight

from .models import RequestLog

logger = logging.getLogger(__name__)


def settle_worker(pid: int, *, log_row: bool = True) -> tuple[int, str] | None:
    """Log the request the dead worker ``pid`` was predicting, and count it
    against the version: 504 when it was past its deadline (the watchdog or
    gunicorn's timeout ended it), 503 when the model ended the process.
    Returns that status and code, or None when it was inside no prediction.
    The shadow process logs its job's row itself (``log_row=False``)."""
    entry = inflight.take(settings.MODELHUB_INFLIGHT_DIR, pid)
    if entry is None:
        return None
    hung = inflight.overdue(entry)
    status, code = (504, "prediction_timeout") if hung else (503, "model_crashed")
    what = "hung past its time limit" if hung else "ended the worker process"
    detail = f"{entry['slug']} v{entry['number']} {what} (worker {pid})"
    logger.error("%s while predicting request %s", detail, entry["request_id"])
    try:
        if log_row and entry["request_id"]:
            RequestLog.objects.create(
                created_at=datetime.fromtimestamp(entry["started"], UTC),
                slug=entry["slug"][:100],
                version=entry["number"],
                status=status,
                error_code=code,
                rows=0,
                latency_ms=(time.time() - entry["started"]) * 1000,
                model_ms=None,
                request_id=entry["request_id"][:128],
            )
        if actions.record_crash(entry["version_id"], detail):
            logger.error("%s: marked invalid", detail)
    except DatabaseError:
        logger.exception("could not record the crash of worker %s", pid)
    finally:
        connections.close_all()  # the master forks workers: keep no connection
    return status, code
