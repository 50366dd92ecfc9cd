"""Liveness and readiness: should a load balancer send this instance traffic?"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from monitoring.requestlog import writer
from registry.warmup import load_active

from . import access


def readiness() -> tuple[bool, dict[str, Any]]:
    """Ready when the database answers, the request log is written and at
    least one active model serves (a fallback version counts).

    During a database outage warm workers keep serving from memory, but the
    instance reports not ready so a balancer prefers healthy ones.
    """
    states, database_ok = load_active()
    writer.flush()  # a recovered database takes the buffered rows now
    buffered = writer.pending()
    serving = any(state["status"] in {"ok", "fallback"} for state in states.values())
    draining = draining_now()
    ready = database_ok and not buffered and serving and not draining
    serving_count = sum(s["status"] in {"ok", "fallback"} for s in states.values())
    status = "draining" if draining else "ready" if ready else "not ready"
    return ready, {
        "status": status,
        "database": "ok" if database_ok else "unavailable",
        "request_log": "ok" if not buffered else f"{buffered} row(s) buffered",
        "counts": {
            "models": len(states),
            "serving": serving_count,
            "failing": len(states) - serving_count,
        },
        "models": states,
    }


def draining_now() -> bool:
    """An operator taking this host out of a balancer (a rolling release):
    while MODELHUB_DRAIN_FILE exists, readiness says 503 and every request is
    still served, until the balancer has moved traffic away and the host is
    stopped (docs/operations.md, "Several hosts")."""
    path = settings.MODELHUB_DRAIN_FILE
    return bool(path) and os.path.exists(path)


def readiness_for(request: HttpRequest) -> tuple[bool, dict[str, Any]]:
    """Which models (and which failed to load) only for staff or a key that
    may read the management API: to anyone else, private slugs stay unknown."""
    ready, body = readiness()
    if not access.sees_registry_detail(request):
        del body["models"]
    return ready, body


def get_only(view: Callable[[HttpRequest], JsonResponse]) -> Callable[..., Any]:
    """GET (and HEAD); any other method is the API's JSON 405, not Django's
    empty HTML one."""

    @csrf_exempt  # a POST is a 405 here, not a CSRF refusal
    @functools.wraps(view)
    def wrapped(request: HttpRequest) -> JsonResponse:
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse(
                {
                    "detail": f'Method "{request.method}" not allowed.',
                    "code": "method_not_allowed",
                },
                status=405,
            )
            response["Allow"] = "GET, HEAD"
            return response
        return view(request)

    return wrapped


@get_only
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: answers while the process lives, touches nothing."""
    return JsonResponse({"status": "alive"})


@get_only
def readyz(request: HttpRequest) -> JsonResponse:
    ready, body = readiness_for(request)
    return JsonResponse(body, status=200 if ready else 503)
