"""The request-log middleware: every prediction request is logged and counted."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from . import metrics
from .requestlog import LogEntry, sanitize_payload, writer

PREDICT_PREFIX = "/api/predict/"
V2_PREFIX = "/v2/"
# Open Inference Protocol infer paths (a slug has no '/'; the version is
# captured whatever it is, so an unroutable one is logged too).
_V2_INFER = re.compile(r"^/v2/models/([^/]+)/(?:versions/[^/]+/)?infer$")


def prediction_slug(path: str) -> str | None:
    """The slug of a prediction request (/api/predict/… or a V2 infer), else None."""
    if path.startswith(PREDICT_PREFIX):
        return path[len(PREDICT_PREFIX) :].split("/", 1)[0]
    if path.startswith(V2_PREFIX):
        match = _V2_INFER.match(path)
        return match.group(1) if match else None
    return None


class RequestLogMiddleware:
    """Logs and counts every request to a prediction endpoint (/api/predict/…
    and V2 infer), whatever its fate.

    Views note what they learned on the request (log_version, log_rows,
    log_model_ms, log_body); errors carry their code on the response.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        slug = prediction_slug(request.path)
        if slug is None:
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        entry = _entry(request, response, elapsed, slug)
        metrics.observe_request(
            slug=entry.slug,
            version=entry.version,
            status=entry.status,
            seconds=elapsed,
            rows=entry.rows,
        )
        mode = settings.MODELHUB_LOG_MODE
        if mode == "after_response":
            # Runs when the server closes the response: after the client has
            # its bytes, before this worker reads its next request.
            response._resource_closers.append(partial(writer.submit, entry))
        elif mode == "sync":
            writer.submit(entry)
        return response


def _entry(
    request: HttpRequest, response: HttpResponse, elapsed: float, slug: str
) -> LogEntry:
    status = response.status_code
    code = getattr(response, "error_code", "") or (
        f"http_{status}" if status >= 400 else ""
    )
    body = getattr(request, "log_body", None)
    return LogEntry(
        created_at=timezone.now(),
        slug=slug[:100],
        version=getattr(request, "log_version", None),
        status=status,
        error_code=code[:50],
        rows=getattr(request, "log_rows", 0),
        latency_ms=elapsed * 1000,
        model_ms=getattr(request, "log_model_ms", None),
        request_id=getattr(request, "request_id", ""),
        client=request.META.get("REMOTE_ADDR", "")[:64]
        if settings.MODELHUB_LOG_CLIENT
        else "",
        payload=sanitize_payload(body)
        if body is not None and settings.MODELHUB_LOG_PAYLOADS
        else None,
    )
