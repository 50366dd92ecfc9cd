"""HTTP layer of the API: parse, call one function, render."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: answers while the process lives, touches nothing."""
    return JsonResponse({"status": "alive"})
