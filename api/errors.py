"""JSON instead of Django's HTML error pages on API paths.

Django answers some failures before DRF sees the request (unknown URL,
oversized or undecodable bodies, CSRF, crashes): on API paths those become
the same {"detail", "code"} body as every other API error, and on the Open
Inference Protocol's paths that protocol's {"error": ...}.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt

from .exceptions import error_body
from .middleware import API_PREFIXES

logger = logging.getLogger(__name__)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES) or request.path in (
        "/healthz",
        "/readyz",
        "/metrics",
    )


def _json(request: HttpRequest, detail: str, code: str, status: int) -> JsonResponse:
    v2 = request.path == "/v2" or request.path.startswith("/v2/")
    body = {"error": detail} if v2 else error_body(detail, code)
    response = JsonResponse(body, status=status)
    response.error_code = code
    return response


def not_found(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if _is_api(request):
        hint = "" if request.path.endswith("/") else " (API paths end with '/')"
        return _json(
            request, f"No such endpoint: {request.path}{hint}", "not_found", 404
        )
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if _is_api(request):
        return _json(request, "Bad request.", "bad_request", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Any = None) -> HttpResponse:
    if _is_api(request):
        return _json(request, "Permission denied.", "permission_denied", 403)
    return defaults.permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _json(request, "Internal server error.", "server_error", 500)
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_api(request):
        return _json(request, f"CSRF check failed: {reason}", "csrf_failed", 403)
    return django_csrf_failure(request, reason)


@csrf_exempt  # a POST to an unknown path is a 404, not a CSRF refusal
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Catch-all under /api/ so CommonMiddleware never redirects a POST."""
    return not_found(request)
