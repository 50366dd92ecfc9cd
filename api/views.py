"""HTTP layer of the API: parse, call one function, render."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import catalog, services, stats
from .health import readiness
from .http import query_flag, query_version, read_body
from .renderers import ORJSONRenderer
from .serializers import (
    ErrorSerializer,
    ModelDetailSerializer,
    ModelHealthSerializer,
    ModelSummarySerializer,
    PredictBodySerializer,
    PredictionSerializer,
    StatsSerializer,
)
from .throttling import PredictRateThrottle

_ERRORS = {
    code: ErrorSerializer for code in (400, 401, 404, 413, 415, 422, 429, 503, 504)
}
# Request bodies only: without request_only they are shown as 200 responses too.
_EXAMPLES = [
    OpenApiExample("one record", {"data": {"x_1": 1.0, "x_2": 3}}, request_only=True),
    OpenApiExample("bare record", {"x_1": 1.0, "x_2": 3}, request_only=True),
    OpenApiExample(
        "records", {"dataframe_records": [{"x_1": 1.0, "x_2": 3}]}, request_only=True
    ),
    OpenApiExample(
        "split",
        {"dataframe_split": {"columns": ["x_1", "x_2"], "data": [[1.0, 3]]}},
        request_only=True,
    ),
    OpenApiExample("positional", {"inputs": [[1.0, 3]]}, request_only=True),
    OpenApiExample(
        "with ids and proba",
        {"data": [{"id": "a", "x_1": 1.0, "x_2": 3}], "params": {"proba": True}},
        request_only=True,
    ),
]
# What Django's <slug:…> converter matches; anything else is a 404 before the view.
_SLUG = OpenApiParameter(
    "slug", str, OpenApiParameter.PATH, required=True, pattern=r"^[-a-zA-Z0-9_]+$"
)
# api.http.query_version: 1 to 9 digits.
_VERSION = OpenApiParameter(
    "version",
    {"type": "integer", "minimum": 1, "maximum": 999_999_999},
    description="pin a version",
)


def is_authenticated(request: Request) -> bool:
    return request.user is not None and request.user.is_authenticated


def require_token(request: Request, *, private: bool = False) -> None:
    """Private models, or every request under MODELHUB_REQUIRE_TOKEN, need a token."""
    if (private or settings.MODELHUB_REQUIRE_TOKEN) and not is_authenticated(request):
        raise NotAuthenticated("An API token is required (Authorization: Token …).")


class ApiView(APIView):
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [AllowAny]
    renderer_classes = [ORJSONRenderer]

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[ORJSONRenderer, str]:
        """JSON whatever the Accept header says: with one renderer, DRF's
        negotiation only parses Accept (a tenth of a millisecond) to agree."""
        renderer = ORJSONRenderer()
        return renderer, renderer.media_type


class PredictView(ApiView):
    authentication_classes = [TokenAuthentication]
    parser_classes: list[Any] = []
    throttle_classes = [PredictRateThrottle]

    @extend_schema(
        request={
            "application/json": PredictBodySerializer,
            "text/csv": {"type": "string"},
        },
        responses={200: PredictionSerializer, **_ERRORS},
        examples=_EXAMPLES,
        parameters=[
            _SLUG,
            OpenApiParameter("proba", bool, description="add class probabilities"),
            _VERSION,
        ],
    )
    def post(self, request: Request, slug: str, version: int | None = None) -> Response:
        number = version if version is not None else query_version(request)
        ref = services.resolve(slug, number)
        django_request = request._request
        django_request.log_version = ref.number
        require_token(request, private=ref.private)
        started = time.perf_counter()
        loaded = services.load(ref, pinned=number is not None)
        ref = loaded.ref  # the last good version when the active one fails
        django_request.log_version = ref.number
        result = services.predict(
            loaded=loaded,
            body=read_body(request),
            content_type=request.content_type or "",
            proba=query_flag(request, "proba"),
            load_ms=(time.perf_counter() - started) * 1000,
        )
        body: dict[str, Any] = {
            "model": ref.slug,
            "version": ref.number,
            "request_id": django_request.request_id,
            "predictions": result.predictions,
        }
        django_request.log_rows = result.rows
        django_request.log_model_ms = result.timings["predict"]
        if result.probabilities is not None:
            body["probabilities"] = result.probabilities
        if result.ids is not None:
            body["ids"] = result.ids
        timing = ", ".join(f"{k};dur={v:.3f}" for k, v in result.timings.items())
        return Response(
            body, headers={"X-Model-Version": str(ref.number), "Server-Timing": timing}
        )


class ModelListView(ApiView):
    @extend_schema(responses={200: ModelSummarySerializer(many=True)})
    def get(self, request: Request) -> Response:
        require_token(request)
        models = catalog.visible_models(authenticated=is_authenticated(request))
        return Response([catalog.model_summary(m) for m in models])


class ModelDetailView(ApiView):
    @extend_schema(
        parameters=[_SLUG],
        responses={200: ModelDetailSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        require_token(request)
        model = catalog.get_visible_model(slug, authenticated=is_authenticated(request))
        return Response(catalog.model_detail(model))


class ModelHealthView(ApiView):
    @extend_schema(
        parameters=[_SLUG],
        responses={
            200: ModelHealthSerializer,
            404: ErrorSerializer,
            503: ErrorSerializer,
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        ref = services.resolve(slug, None)
        require_token(request, private=ref.private)
        ref = services.load(ref).ref
        return Response(
            {"model": ref.slug, "version": ref.number, "status": "ok", "kind": ref.kind}
        )


class StatsView(ApiView):
    """Traffic per model and version (staff session or staff token)."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "since", str, description="ISO-8601 or 15m, 24h, 7d (default 24h)"
            )
        ],
        responses={200: StatsSerializer, 400: ErrorSerializer, 401: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        until = timezone.now()
        since = stats.parse_since(request.query_params.get("since"), until)
        return Response(stats.summary(since, until))


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: answers while the process lives, touches nothing."""
    return JsonResponse({"status": "alive"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503)
