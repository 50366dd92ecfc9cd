"""HTTP layer of the API: parse, call one function, render."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import (
    SAFE_METHODS,
    AllowAny,
    BasePermission,
    IsAdminUser,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring import rollup, stats

from . import catalog, publishing, services
from .access import authenticate, is_authenticated, require_token, throttle
from .health import readiness
from .http import query_flag, query_version, read_body
from .permissions import StaffWithPermission
from .renderers import ORJSONRenderer, dumps
from .serializers import (
    ActivateSerializer,
    ErrorSerializer,
    ModelCreateSerializer,
    ModelDetailSerializer,
    ModelHealthSerializer,
    ModelSummarySerializer,
    PredictBodySerializer,
    PredictionSerializer,
    StatsSerializer,
    VersionDetailSerializer,
    VersionEditSerializer,
    VersionUploadSerializer,
)
from .throttling import PredictRateThrottle

if TYPE_CHECKING:
    from registry.models import ModelVersion

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
_PATH_VERSION = OpenApiParameter(
    "version",
    {"type": "integer", "minimum": 1, "maximum": 999_999_999},
    OpenApiParameter.PATH,
    required=True,
)
_TOKEN = [{"tokenAuth": []}]
# api.http.query_version: 1 to 9 digits.
_VERSION = OpenApiParameter(
    "version",
    {"type": "integer", "minimum": 1, "maximum": 999_999_999},
    description="pin a version",
)


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
    """DRF documents this endpoint and answers its errors and other methods;
    a POST that succeeds skips DRF's dispatch, about a tenth of its CPU."""

    authentication_classes = [TokenAuthentication]
    parser_classes: list[Any] = []
    throttle_classes = [PredictRateThrottle]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)
        try:
            return self.post(request, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - DRF's own handling, as in dispatch
            drf_request = self.initialize_request(request, *args, **kwargs)
            self.request = drf_request
            self.headers = self.default_response_headers
            response = self.handle_exception(exc)
            return self.finalize_response(drf_request, response, *args, **kwargs)

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
    def post(
        self, request: HttpRequest, slug: str, version: int | None = None
    ) -> HttpResponse:
        authenticate(request)  # a wrong token: 401, even if public
        throttle(request)
        number = version if version is not None else query_version(request)
        ref = services.resolve(slug, number)
        request.log_version = ref.number
        require_token(request, private=ref.private)
        started = time.perf_counter()
        loaded = services.load(ref, pinned=number is not None)
        ref = loaded.ref  # the last good version when the active one fails
        request.log_version = ref.number
        result = services.predict(
            loaded=loaded,
            body=read_body(request),
            content_type=request.META.get("CONTENT_TYPE", ""),
            proba=query_flag(request, "proba"),
            load_ms=(time.perf_counter() - started) * 1000,
        )
        body: dict[str, Any] = {
            "model": ref.slug,
            "version": ref.number,
            "request_id": request.request_id,
            "predictions": result.predictions,
        }
        request.log_rows = result.rows
        request.log_model_ms = result.timings["predict"]
        if result.probabilities is not None:
            body["probabilities"] = result.probabilities
        if result.ids is not None:
            body["ids"] = result.ids
        timing = ", ".join(f"{k};dur={v:.3f}" for k, v in result.timings.items())
        return HttpResponse(
            dumps(body),
            content_type="application/json",
            headers={"X-Model-Version": str(ref.number), "Server-Timing": timing},
        )


def _errors(*codes: int) -> dict[int, type[ErrorSerializer]]:
    return {code: ErrorSerializer for code in codes}


class ManagementView(ApiView):
    """Reads keep the catalog's rules; writes need a staff token.

    Writes accept no session: a token is no ambient credential, so there is
    no CSRF to check, and automation is what this API is for.
    """

    write_permissions: dict[str, str] = {}

    def get_authenticators(self) -> list[TokenAuthentication]:
        # self.request is the HttpRequest by now (View.setup), except while
        # drf-spectacular builds a mock request for the schema.
        request = getattr(self, "request", None)
        if request is None or request.method in SAFE_METHODS:
            return super().get_authenticators()
        return [TokenAuthentication()]

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method in SAFE_METHODS:
            return super().get_permissions()
        return [StaffWithPermission(self.write_permissions.get(self.request.method))]


def _created(version: ModelVersion) -> Response:
    url = reverse("model-version", args=[version.model.slug, version.number])
    return Response(
        catalog.version_detail(version), status=201, headers={"Location": url}
    )


class ModelListView(ManagementView):
    parser_classes = [JSONParser]
    write_permissions = {"POST": "registry.add_mlmodel"}

    @extend_schema(responses={200: ModelSummarySerializer(many=True)})
    def get(self, request: Request) -> Response:
        require_token(request)
        models = catalog.visible_models(authenticated=is_authenticated(request))
        return Response([catalog.model_summary(m) for m in models])

    @extend_schema(
        request=ModelCreateSerializer,
        responses={201: ModelDetailSerializer, **_errors(400, 401, 403, 409, 415)},
        auth=_TOKEN,
    )
    def post(self, request: Request) -> Response:
        model = publishing.create_model(publishing.read_new_model(request.data))
        url = reverse("model-detail", args=[model.slug])
        return Response(
            catalog.model_detail(model), status=201, headers={"Location": url}
        )


class ModelDetailView(ApiView):
    @extend_schema(
        parameters=[_SLUG],
        responses={200: ModelDetailSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, slug: str) -> Response:
        require_token(request)
        model = catalog.get_visible_model(slug, authenticated=is_authenticated(request))
        return Response(catalog.model_detail(model))


class VersionListView(ManagementView):
    parser_classes = [MultiPartParser]
    write_permissions = {"POST": "registry.add_modelversion"}

    @extend_schema(
        parameters=[_SLUG],
        request={"multipart/form-data": VersionUploadSerializer},
        responses={
            201: VersionDetailSerializer,
            **_errors(400, 401, 403, 404, 413, 415),
        },
        auth=_TOKEN,
    )
    def post(self, request: Request, slug: str) -> Response:
        model = publishing.get_model(slug)  # a 404 before reading the file
        upload = publishing.read_upload(request)
        return _created(
            publishing.publish(model=model, upload=upload, user=request.user)
        )


class VersionDetailView(ManagementView):
    parser_classes = [JSONParser]
    write_permissions = {
        "DELETE": "registry.delete_modelversion",
        "PATCH": "registry.change_modelversion",
    }

    @extend_schema(
        parameters=[_SLUG, _PATH_VERSION],
        responses={200: VersionDetailSerializer, **_errors(401, 404)},
    )
    def get(self, request: Request, slug: str, version: int) -> Response:
        require_token(request)
        found = catalog.get_visible_version(
            slug, version, authenticated=is_authenticated(request)
        )
        return Response(catalog.version_detail(found))

    @extend_schema(
        parameters=[_SLUG, _PATH_VERSION],
        request=VersionEditSerializer,
        responses={
            200: VersionDetailSerializer,
            **_errors(400, 401, 403, 404, 415),
        },
        auth=_TOKEN,
    )
    def patch(self, request: Request, slug: str, version: int) -> Response:
        change = publishing.read_version_change(request.data)
        edited = publishing.edit(
            slug=slug, number=version, change=change, user=request.user
        )
        return Response(catalog.version_detail(edited))

    @extend_schema(
        parameters=[_SLUG, _PATH_VERSION],
        responses={204: None, **_errors(401, 403, 404, 409)},
        auth=_TOKEN,
    )
    def delete(self, request: Request, slug: str, version: int) -> Response:
        publishing.delete(slug=slug, number=version)
        return Response(status=204)


class ActivateView(ManagementView):
    parser_classes = [JSONParser]
    write_permissions = {"POST": "registry.change_mlmodel"}

    @extend_schema(
        parameters=[_SLUG],
        request=ActivateSerializer,
        responses={
            200: VersionDetailSerializer,
            **_errors(400, 401, 403, 404, 409, 415),
        },
        auth=_TOKEN,
    )
    def post(self, request: Request, slug: str) -> Response:
        number = publishing.read_version_number(request.data)
        version = publishing.activate(slug=slug, number=number, user=request.user)
        return Response(catalog.version_detail(version))


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
        rollup.refresh()
        return Response(stats.summary(since, until))


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: answers while the process lives, touches nothing."""
    return JsonResponse({"status": "alive"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    ready, body = readiness()
    return JsonResponse(body, status=200 if ready else 503)
