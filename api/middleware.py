"""API middleware: request ids, the request log, and keeping web-only
middleware off the prediction path."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.module_loading import import_string

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
        if not response.streaming and "Content-Length" not in response:
            # CommonMiddleware, bypassed on predictions, would set it; without
            # it gunicorn sends the body chunked: more writes per response.
            response["Content-Length"] = str(len(response.content))
        return response


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


def is_data_plane(path: str) -> bool:
    """Prediction and V2 protocol paths, which skip the web-only middleware."""
    return path.startswith((PREDICT_PREFIX, V2_PREFIX)) or path == "/v2"


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


_HOOKS = ("process_view", "process_exception", "process_template_response")


def web_only(path: str) -> type:
    """``path``'s middleware, bypassed on prediction and V2 protocol requests.

    Sessions, Django's auth, messages, the slash-appending redirect and the
    generic HTTP metrics serve the admin and the dashboard. A prediction
    never touches them (tokens are DRF's; modelhub_* metrics count every
    prediction), and running them is a third of the API's own CPU time per
    request.
    """
    inner_class = import_string(path)

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.inner = inner_class(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_data_plane(request.path):
            return self.get_response(request)
        return self.inner(request)

    def forward(hook: str) -> Callable[..., HttpResponse | None]:
        def call(self, request: HttpRequest, *args: object) -> HttpResponse | None:
            if is_data_plane(request.path):
                return None if hook != "process_template_response" else args[0]
            return getattr(self.inner, hook)(request, *args)

        return call

    namespace: dict[str, object] = {
        "__init__": __init__,
        "__call__": __call__,
        "sync_capable": True,
        "async_capable": False,
        "__doc__": f"{path}, bypassed on prediction and V2 requests.",
        **{hook: forward(hook) for hook in _HOOKS if hasattr(inner_class, hook)},
    }
    # A subclass, so checks such as the admin's "SessionMiddleware must be in
    # MIDDLEWARE" still recognise it; the wrapped instance does the work.
    return type(f"WebOnly{inner_class.__name__}", (inner_class,), namespace)


PrometheusBeforeMiddleware = web_only(
    "django_prometheus.middleware.PrometheusBeforeMiddleware"
)
SessionMiddleware = web_only("django.contrib.sessions.middleware.SessionMiddleware")
CommonMiddleware = web_only("django.middleware.common.CommonMiddleware")
AuthenticationMiddleware = web_only(
    "django.contrib.auth.middleware.AuthenticationMiddleware"
)
MessageMiddleware = web_only("django.contrib.messages.middleware.MessageMiddleware")
PrometheusAfterMiddleware = web_only(
    "django_prometheus.middleware.PrometheusAfterMiddleware"
)
