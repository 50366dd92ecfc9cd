"""The control plane's HTTP layer: the management API, the catalog and the
stats API. Parse, call one function, render."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from monitoring import rollup, stats

from ..access import AUTHENTICATION, authorize, require_token
from ..baseview import ApiView
from ..dataplane.infer import serve_model
from ..http import query_flag
from ..openapi import PATH_VERSION, SLUG, TOKEN, ErrorSerializer, errors
from ..parsers import JSONParser
from . import catalog, publishing
from .history import History
from .pagination import ManagementPagination
from .permissions import StaffWithPermission
from .serializers import (
    ActivateSerializer,
    HistoryEntrySerializer,
    ModelCreateSerializer,
    ModelDetailSerializer,
    ModelEditSerializer,
    ModelHealthSerializer,
    ModelSummarySerializer,
    StatsSerializer,
    VersionDetailSerializer,
    VersionEditSerializer,
    VersionSerializer,
    VersionUploadSerializer,
)

if TYPE_CHECKING:
    from registry.models import ModelVersion


class ManagementView(ApiView):
    """Reads keep the catalog's rules; writes need a staff token.

    Writes accept no session: a token is no ambient credential, so there is
    no CSRF to check, and automation is what this API is for.
    """

    write_permissions: dict[str, str] = {}

    def get_authenticators(self) -> list[BaseAuthentication]:
        # self.request is the HttpRequest by now (View.setup), except while
        # drf-spectacular builds a mock request for the schema.
        request = getattr(self, "request", None)
        if request is None or request.method in SAFE_METHODS:
            return super().get_authenticators()
        return [auth() for auth in AUTHENTICATION]

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

    @extend_schema(
        summary="List the models you may call",
        description="Every model you may see, with the version it serves. "
        "Anonymous callers see the public ones; a private model is listed only "
        "to who may call it (and to staff).",
        responses={200: ModelSummarySerializer(many=True), **errors(401)},
    )
    def get(self, request: Request) -> Response:
        require_token(request)
        models = catalog.visible_models(request)
        return Response([catalog.model_summary(m) for m in models])

    @extend_schema(
        summary="Create a model",
        description="A route with no version yet: upload its first file to "
        "`/api/models/{slug}/versions/`. Needs *Can add model*.",
        request=ModelCreateSerializer,
        examples=[
            OpenApiExample(
                "a private model",
                {
                    "slug": "churn",
                    "name": "Churn",
                    "description": "Who leaves next month",
                    "private": True,
                },
                request_only=True,
            )
        ],
        responses={201: ModelDetailSerializer, **errors(400, 401, 403, 409, 415)},
        auth=TOKEN,
    )
    def post(self, request: Request) -> Response:
        model = publishing.create_model(publishing.read_new_model(request.data))
        url = reverse("model-detail", args=[model.slug])
        return Response(
            catalog.model_detail(model), status=201, headers={"Location": url}
        )


FORCE = OpenApiParameter(
    "force",
    str,
    enum=["1", "0", "true", "false"],
    description="1: delete even while the model serves a version.",
)


class ModelDetailView(ManagementView):
    parser_classes = [JSONParser]
    write_permissions = {
        "PATCH": "registry.change_mlmodel",
        "DELETE": "registry.delete_mlmodel",
    }

    @extend_schema(
        summary="Describe a model",
        description="The model, its versions (newest first), the schema and "
        "classes of the version it serves, and a request body that works "
        "(`example_request`). A private model is a 404 to whoever it does not "
        "answer.",
        parameters=[SLUG],
        responses={200: ModelDetailSerializer, **errors(401, 404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        require_token(request)
        model = catalog.get_visible_model(slug, request)
        return Response(catalog.model_detail(model))

    @extend_schema(
        summary="Edit a model",
        description="Change any of its slug, name, description, privacy and "
        "batching (`batch_max_rows`, `batch_max_wait_ms`); the fields left out "
        "keep their value. A new slug serves from the next request on and the "
        "old one answers 404; batching changes from every worker's next request. "
        "Needs the admin's *Can change model* permission.",
        parameters=[SLUG],
        request=ModelEditSerializer,
        examples=[
            OpenApiExample(
                "describe it",
                {"name": "Churn", "description": "Who leaves, retrained monthly"},
                request_only=True,
            ),
            OpenApiExample("make it private", {"private": True}, request_only=True),
            OpenApiExample(
                "batch concurrent requests",
                {"batch_max_rows": 32, "batch_max_wait_ms": 2},
                request_only=True,
            ),
        ],
        responses={200: ModelDetailSerializer, **errors(400, 401, 403, 404, 409, 415)},
        auth=TOKEN,
    )
    def patch(self, request: Request, slug: str) -> Response:
        change = publishing.read_model_change(request.data)
        model = publishing.edit_model(slug=slug, change=change)
        return Response(catalog.model_detail(model))

    @extend_schema(
        summary="Delete a model",
        description="Deletes the model with all its versions, their files and "
        "its history. While it serves a version the answer is 409 "
        "`model_has_active_version`, unless `?force=1`. Needs the admin's *Can "
        "delete model* permission.",
        parameters=[SLUG, FORCE],
        responses={204: None, **errors(400, 401, 403, 404, 409)},
        auth=TOKEN,
    )
    def delete(self, request: Request, slug: str) -> Response:
        force = bool(query_flag(request, "force"))
        publishing.delete_model(slug=slug, force=force)
        return Response(status=204)


class VersionListView(ManagementView):
    parser_classes = [MultiPartParser]
    pagination_class = ManagementPagination
    write_permissions = {"POST": "registry.add_modelversion"}

    @extend_schema(
        summary="List a model's versions",
        description="Newest first, a page at a time: `?page=` (from 1) and "
        "`?page_size=` (1 to 100, default 20); `next` is null on the last page. "
        "A page past the last is 404 `invalid_page`.",
        parameters=[SLUG],
        responses={200: VersionSerializer(many=True), **errors(400, 401, 404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        require_token(request)
        model = catalog.get_visible_model(slug, request)
        pages = ManagementPagination()
        versions = pages.paginate_queryset(
            model.versions.order_by("-number"), request, view=self
        )
        active = model.active_version_id
        return pages.get_paginated_response(
            [catalog.describe_version(v, active_id=active) for v in versions]
        )

    @extend_schema(
        summary="Upload a new version",
        description="A model file as the multipart field `file` (.skops, or "
        ".joblib/.pkl with *Can upload joblib/pickle files*), checked by the "
        "preflight in a separate process before it is stored, and served at "
        "once unless `activate=false`. An optional CSV `reference` (a sample "
        "of the training data) becomes the version's drift reference. Needs "
        "*Can add model version*.",
        parameters=[SLUG],
        request={"multipart/form-data": VersionUploadSerializer},
        responses={
            201: VersionDetailSerializer,
            **errors(400, 401, 403, 404, 413, 415),
        },
        auth=TOKEN,
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
        summary="Describe a version",
        description="What the preflight learned about one upload: its input "
        "schema, classes, metadata and warnings.",
        parameters=[SLUG, PATH_VERSION],
        responses={200: VersionDetailSerializer, **errors(401, 404)},
    )
    def get(self, request: Request, slug: str, version: int) -> Response:
        require_token(request)
        found = catalog.get_visible_version(slug, version, request)
        return Response(catalog.version_detail(found))

    @extend_schema(
        summary="Edit a version's schema or metadata",
        description="The stored file is reloaded in the preflight process and "
        "must predict on a row built from the new schema; every worker serves "
        "the change from its next request. Needs *Can change model version*.",
        parameters=[SLUG, PATH_VERSION],
        request=VersionEditSerializer,
        examples=[
            OpenApiExample(
                "name the features",
                {
                    "input_schema": [
                        {"name": "age", "type": "number"},
                        {"name": "city", "type": "string"},
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "replace the metadata",
                {"metadata": {"metrics": {"auc": 0.91}, "owner": "ml-team"}},
                request_only=True,
            ),
        ],
        responses={
            200: VersionDetailSerializer,
            **errors(400, 401, 403, 404, 415),
        },
        auth=TOKEN,
    )
    def patch(self, request: Request, slug: str, version: int) -> Response:
        change = publishing.read_version_change(request.data)
        edited = publishing.edit(
            slug=slug, number=version, change=change, user=request.user
        )
        return Response(catalog.version_detail(edited))

    @extend_schema(
        summary="Delete a version",
        description="The version and its file; the served version is refused "
        "with 409 `version_active`. Needs *Can delete model version*.",
        parameters=[SLUG, PATH_VERSION],
        responses={204: None, **errors(401, 403, 404, 409)},
        auth=TOKEN,
    )
    def delete(self, request: Request, slug: str, version: int) -> Response:
        publishing.delete(slug=slug, number=version)
        return Response(status=204)


class ActivateView(ManagementView):
    parser_classes = [JSONParser]
    write_permissions = {"POST": "registry.change_mlmodel"}

    @extend_schema(
        summary="Serve a version",
        description="Switch the model to version `n` in one step, recorded in "
        "its history; every worker serves it from its next request. Needs *Can "
        "change model*.",
        parameters=[SLUG],
        request=ActivateSerializer,
        examples=[OpenApiExample("serve v2", {"version": 2}, request_only=True)],
        responses={
            200: VersionDetailSerializer,
            **errors(400, 401, 403, 404, 409, 415),
        },
        auth=TOKEN,
    )
    def post(self, request: Request, slug: str) -> Response:
        number = publishing.read_version_number(request.data)
        version = publishing.activate(slug=slug, number=number, user=request.user)
        return Response(catalog.version_detail(version))


class HistoryView(ApiView):
    """Who changed what a model serves: staff, or a key that may read the
    management API (the history names people)."""

    pagination_class = ManagementPagination
    permission_classes = [StaffWithPermission]  # what the schema reads

    def get_permissions(self) -> list[BasePermission]:
        return [StaffWithPermission("registry.view_mlmodel")]

    @extend_schema(
        summary="A model's activation history",
        description="Every activation, rollback and version edit, newest "
        "first: who, when, through which channel (admin, cli, api), from which "
        "version to which. Paginated as the version list is. Staff with *Can "
        "view model*, or an API key that may read the management API.",
        parameters=[SLUG],
        responses={
            200: HistoryEntrySerializer(many=True),
            **errors(400, 401, 403, 404),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        model = catalog.get_visible_model(slug, request)
        pages = ManagementPagination()
        entries = pages.paginate_queryset(History(model), request, view=self)
        return pages.get_paginated_response(entries)


class ModelHealthView(ApiView):
    @extend_schema(
        summary="Can this model answer?",
        description="Loads the served version (if this worker has not yet) and "
        "says which one answers; 503 when its file cannot be loaded.",
        parameters=[SLUG],
        responses={
            200: ModelHealthSerializer,
            404: ErrorSerializer,
            503: ErrorSerializer,
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        ref = serve_model(
            slug=slug,
            version=None,
            authorize=lambda ref: authorize(request, ref),
        ).ref
        return Response(
            {"model": ref.slug, "version": ref.number, "status": "ok", "kind": ref.kind}
        )


class StatsView(ApiView):
    """Traffic per model and version (staff session or staff token)."""

    permission_classes = [StaffWithPermission]

    @extend_schema(
        summary="Traffic, errors and latency per model",
        description="Requests, errors, rows and latency percentiles per model "
        "and version since a time (staff, or a key that may read the "
        "management API).",
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
