"""Request ids for the API: reuse a sane incoming X-Request-ID, else make one."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from . import metrics
from .requestlog import LogEntry, sanitize_payload, writer

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
API_PREFIXES = ("/api/", "/v2/", "/v2")


def request_id_for(request: HttpRequest) -> str:
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    return incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex


class RequestIDMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIXES):
            return self.get_response(request)
        request.request_id = request_id_for(request)
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


PREDICT_PREFIX = "/api/predict/"


class RequestLogMiddleware:
    """Logs and counts every request to a prediction endpoint, whatever its fate.

    Views note what they learned on the request (log_version, log_rows,
    log_model_ms, log_body); errors carry their code on the response.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(PREDICT_PREFIX):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        entry = _entry(request, response, elapsed)
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


def _entry(request: HttpRequest, response: HttpResponse, elapsed: float) -> LogEntry:
    status = response.status_code
    code = getattr(response, "error_code", "") or (
        f"http_{status}" if status >= 400 else ""
    )
    body = getattr(request, "log_body", None)
    return LogEntry(
        created_at=timezone.now(),
        slug=request.path[len(PREDICT_PREFIX) :].split("/", 1)[0][:100],
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
