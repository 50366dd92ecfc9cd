"""API middleware: request ids, and keeping web-only middleware off the
prediction path (the request log's middleware is monitoring's)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from monitoring import logcontext
from monitoring.middleware import PREDICT_PREFIX, V2_PREFIX

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
        with logcontext.request(request.request_id):
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        if not response.streaming and "Content-Length" not in response:
            # CommonMiddleware, bypassed on predictions, would set it; without
            # it gunicorn sends the body chunked: more writes per response.
            response["Content-Length"] = str(len(response.content))
        return response


def is_data_plane(path: str) -> bool:
    """Prediction and V2 protocol paths, which skip the web-only middleware."""
    return path.startswith((PREDICT_PREFIX, V2_PREFIX)) or path == "/v2"


_HOOKS = ("process_view", "process_exception", "process_template_response")


def web_only(path: str) -> type:
    """``path``'s middleware, bypassed on prediction and V2 protocol requests.

    Sessions, Django's auth, messages, the slash-appending redirect and the
    generic HTTP metrics serve the admin and the dashboard. A prediction
    never touches them (tokens are DRF's; modelhub_* metrics count every
    prediction), and running them was a large share of the API's own CPU per
    request (bench/README.md). This replaces listing Django's classes in
    MIDDLEWARE: the same classes, skipped on the data plane's paths.
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
