"""The management API's rollout endpoints: aliases, the traffic policy and
promote. Parse, call one function (api.control.rollouts), render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from registry.exceptions import UnknownAlias

from ..access import require_token
from ..openapi import SLUG, TOKEN, errors
from ..parsers import JSONParser
from . import catalog, rollouts
from .serializers import (
    AliasSerializer,
    AliasSetSerializer,
    PolicyDetailSerializer,
    PolicySerializer,
    VersionDetailSerializer,
)
from .views import ManagementView

ALIAS = OpenApiParameter(
    "name",
    str,
    OpenApiParameter.PATH,
    required=True,
    pattern=r"^[-a-zA-Z0-9_]+$",
    description="the alias: letters, digits, '-' or '_'; not v<digits> or latest",
)
CHANGE = "registry.change_mlmodel"


class AliasView(ManagementView):
    parser_classes = [JSONParser]
    write_permissions = {"PUT": CHANGE, "DELETE": CHANGE}

    @extend_schema(
        summary="Read an alias",
        description="The version the alias points to.",
        parameters=[SLUG, ALIAS],
        responses={200: AliasSerializer, **errors(401, 404)},
    )
    def get(self, request: Request, slug: str, name: str) -> Response:
        require_token(request)
        model = catalog.get_visible_model(slug, request)
        alias = model.aliases.filter(name=name).select_related("version").first()
        if alias is None:
            raise UnknownAlias(f"Model '{slug}' has no alias '{name[:60]}'.")
        return Response(rollouts.alias_detail(model, name, alias.version.number))

    @extend_schema(
        summary="Point an alias at a version",
        description="Creates or moves the alias, recorded in the model's "
        "history; `POST /api/predict/{slug}@{name}/` serves that version from "
        "every worker's next request. Needs *Can change model*.",
        parameters=[SLUG, ALIAS],
        request=AliasSetSerializer,
        examples=[OpenApiExample("champion is v2", {"version": 2}, request_only=True)],
        responses={200: AliasSerializer, **errors(400, 401, 403, 404, 415)},
        auth=TOKEN,
    )
    def put(self, request: Request, slug: str, name: str) -> Response:
        return Response(
            rollouts.set_alias(
                slug=slug, name=name, data=request.data, user=request.user
            )
        )

    @extend_schema(
        summary="Delete an alias",
        description="Recorded in the model's history. Needs *Can change model*.",
        parameters=[SLUG, ALIAS],
        responses={204: None, **errors(401, 403, 404)},
        auth=TOKEN,
    )
    def delete(self, request: Request, slug: str, name: str) -> Response:
        rollouts.delete_alias(slug=slug, name=name, user=request.user)
        return Response(status=204)


class PolicyView(ManagementView):
    parser_classes = [JSONParser]
    write_permissions = {"PUT": CHANGE, "DELETE": CHANGE}

    @extend_schema(
        summary="Read the traffic policy",
        description="How the unpinned URL splits its traffic: the active "
        "version, and the candidate, its weight, stickiness, shadow and guards "
        "(`policy` null: the active version takes everything).",
        parameters=[SLUG],
        responses={200: PolicyDetailSerializer, **errors(401, 404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        require_token(request)
        model = catalog.get_visible_model(slug, request)
        return Response(rollouts.policy_detail(model))

    @extend_schema(
        summary="Set the traffic policy",
        description="Replaces the whole policy (what is left out is not kept): "
        "the candidate answers `weight` of the unpinned requests, decided per "
        "request or, with `sticky`, by a hash of that header's value. A guard "
        "sets the weight to 0 when the candidate fails or slows (channel "
        "`auto` in the history). Every worker serves it from its next request. "
        "Needs *Can change model*.",
        parameters=[SLUG],
        request=PolicySerializer,
        examples=[
            OpenApiExample(
                "10% canary, sticky per caller",
                {"candidate": 2, "weight": 0.1, "sticky": "X-Route-Key"},
                request_only=True,
            ),
            OpenApiExample("shadow only", {"shadow": 2}, request_only=True),
            OpenApiExample(
                "canary with guards",
                {
                    "candidate": 2,
                    "weight": 0.2,
                    "guards": {"error_rate": 0.05, "last_requests": 100},
                },
                request_only=True,
            ),
        ],
        responses={200: PolicyDetailSerializer, **errors(400, 401, 403, 404, 415)},
        auth=TOKEN,
    )
    def put(self, request: Request, slug: str) -> Response:
        return Response(
            rollouts.set_policy(slug=slug, data=request.data, user=request.user)
        )

    @extend_schema(
        summary="End the traffic policy",
        description="The active version takes all traffic again, with no "
        "shadow; recorded in the history. Needs *Can change model*.",
        parameters=[SLUG],
        responses={204: None, **errors(401, 403, 404)},
        auth=TOKEN,
    )
    def delete(self, request: Request, slug: str) -> Response:
        rollouts.end_policy(slug=slug, user=request.user)
        return Response(status=204)


class PromoteView(ManagementView):
    parser_classes = [JSONParser]
    write_permissions = {"POST": CHANGE}

    @extend_schema(
        summary="Promote the candidate",
        description="The candidate becomes the active version in one recorded "
        "step; the policy keeps its shadow and loses its candidate. 409 "
        "`no_candidate` when there is none. Needs *Can change model*.",
        parameters=[SLUG],
        request=None,
        responses={200: VersionDetailSerializer, **errors(401, 403, 404, 409)},
        auth=TOKEN,
    )
    def post(self, request: Request, slug: str) -> Response:
        version = rollouts.promote(slug=slug, user=request.user)
        return Response(catalog.version_detail(version))


class AbortView(ManagementView):
    parser_classes = [JSONParser]
    write_permissions = {"POST": CHANGE}

    @extend_schema(
        summary="Abort the candidate",
        description="The candidate's weight goes to 0 (the rest of the policy "
        "stays), recorded as an abort; the active version takes every unpinned "
        "request from the next one. 409 `no_candidate` when no candidate takes "
        "traffic. Needs *Can change model*.",
        parameters=[SLUG],
        request=None,
        responses={200: PolicyDetailSerializer, **errors(401, 403, 404, 409)},
        auth=TOKEN,
    )
    def post(self, request: Request, slug: str) -> Response:
        return Response(rollouts.abort(slug=slug, user=request.user))
