"""GET /metrics: the Prometheus exposition, behind MODELHUB_METRICS_TOKEN when set."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_prometheus.exports import ExportToDjangoView

from . import model_gauges


def metrics(request: HttpRequest) -> HttpResponse:
    """A scrape sends the token as ``Authorization: Bearer <token>``."""
    token = settings.MODELHUB_METRICS_TOKEN
    if token:
        scheme, _, sent = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            sent.strip().encode(), token.encode()
        ):
            response = JsonResponse(
                {
                    "detail": "The metrics need a bearer token "
                    "(MODELHUB_METRICS_TOKEN).",
                    "code": "not_authenticated",
                },
                status=401,
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    response = ExportToDjangoView(request)
    response.content += model_gauges.exposition()
    return response
