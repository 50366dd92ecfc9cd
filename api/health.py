"""Liveness and readiness: should a load balancer send this instance traffic?"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from monitoring.requestlog import writer
from registry.warmup import load_active


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
    ready = database_ok and not buffered and serving
    return ready, {
        "status": "ready" if ready else "not ready",
        "database": "ok" if database_ok else "unavailable",
        "request_log": "ok" if not buffered else f"{buffered} row(s) buffered",
        "models": states,
    }


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: answers while the process lives, touches nothing."""
    return JsonResponse({"status": "alive"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503)
