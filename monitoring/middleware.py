"""The request-log middleware: every prediction request is logged and counted."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from . import drift_counts, logcontext, metrics
from .drift_counts import Observed
from .kept import keep
from .record import REFUSAL_CODES, PredictionRecord, attach
from .requestlog import LogEntry, sanitize_payload, writer

PREDICT_PREFIX = "/api/predict/"
V2_PREFIX = "/v2/"
# Open Inference Protocol infer paths (a slug has no '/'; the version is
# captured whatever it is, so an unroutable one is logged too).
_V2_INFER = re.compile(r"^/v2/models/([^/]+)/(?:versions/[^/]+/)?infer$")


def prediction_slug(path: str) -> str | None:
    """The slug of a prediction request (/api/predict/… or a V2 infer), else None."""
    if path.startswith(PREDICT_PREFIX):
        # /api/predict/<slug>@<alias>/ is the slug's too
        return path[len(PREDICT_PREFIX) :].split("/", 1)[0].split("@", 1)[0]
    if path.startswith(V2_PREFIX):
        match = _V2_INFER.match(path)
        return match.group(1) if match else None
    return None


class RequestLogMiddleware:
    """Logs and counts every request to a prediction endpoint (/api/predict/…
    and V2 infer), whatever its fate, from the request's PredictionRecord
    (monitoring.record), which the data plane and the error handlers fill in.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        slug = prediction_slug(request.path)
        if slug is None:
            return self.get_response(request)
        record = attach(request, slug)
        logcontext.note_prediction(record)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        entry = _entry(request, record, response.status_code, elapsed)
        metrics.observe_request(
            slug=entry.slug,
            version=entry.version,
            status=entry.status,
            seconds=elapsed,
            rows=entry.rows,
            private=record.private,
            route=record.route,
        )
        if entry.error_code in REFUSAL_CODES:
            metrics.observe_refusal(entry.error_code)
        mode = settings.MODELHUB_LOG_MODE
        if mode == "after_response":
            after_response(response, partial(writer.submit, entry))
        elif mode == "sync":
            writer.submit(entry, now=True)
        if record.after is not None:
            after_response(response, record.after)
        return response


def after_response(response: HttpResponse, work: Callable[[], None]) -> None:
    """Run ``work`` when the server closes ``response``: after the client has
    its bytes, before this worker reads its next request.

    Django's own list of closers (HttpResponse._resource_closers, private):
    the request_finished signal would be public, but it runs for every request
    of the process and would have to find this request's entry in a
    thread-local. Writing the row after the response instead of before it is
    what MODELHUB_LOG_MODE=after_response measures in bench/logging_cost.py.
    """
    response._resource_closers.append(work)


def _entry(
    request: HttpRequest, record: PredictionRecord, status: int, elapsed: float
) -> LogEntry:
    code = record.error_code or (f"http_{status}" if status >= 400 else "")
    body = record.body
    entry = LogEntry(
        created_at=timezone.now(),
        slug=record.slug[:100],
        version=record.version,
        status=status,
        error_code=code[:50],
        rows=record.rows,
        latency_ms=elapsed * 1000,
        model_ms=record.model_ms,
        request_id=getattr(request, "request_id", ""),
        client=request.META.get("REMOTE_ADDR", "")[:64]
        if settings.MODELHUB_LOG_CLIENT
        else "",
        payload=sanitize_payload(body)
        if body is not None and (settings.MODELHUB_LOG_PAYLOADS or record.capture)
        else None,
        key_name=record.key_name,
        batch_size=record.batch_size,
        route=record.route,
    )
    if record.predictions is not None and status < 400:
        kept = keep(record.predictions, record.ids, record.rows)
        entry.predictions, entry.row_ids = kept.predictions, kept.row_ids
        entry.unjoinable = kept.unjoinable
    if record.observed is not None and status < 400:
        version_id, names, data, predictions = record.observed
        drift_counts.counter.note(
            Observed(
                entry.created_at,
                version_id,
                entry.slug,
                entry.version or 0,
                names,
                data,
                predictions,
                entry.rows,
            )
        )
    return entry
