"""OpenAPI pieces every room's views share: the error body and path parameters."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """How the schema documents api.access.ApiKeyAuthentication."""

    target_class = "api.access.ApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "An API key: `Api-Key <key>` (or `Bearer <key>`).",
        }


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable machine code, e.g. missing_features")
    column = serializers.CharField(required=False)
    features = serializers.ListField(child=serializers.CharField(), required=False)
    field = serializers.CharField(
        required=False, help_text="The request field at fault (management API)"
    )
    reason = serializers.CharField(
        required=False, help_text="A refused upload's kind, e.g. not_a_pickle"
    )
    technical = serializers.CharField(
        required=False, help_text="The exception behind a refused upload"
    )


def errors(*codes: int) -> dict[int, type[ErrorSerializer]]:
    return {code: ErrorSerializer for code in codes}


# What Django's <slug:…> converter matches; anything else is a 404 before the view.
SLUG = OpenApiParameter(
    "slug", str, OpenApiParameter.PATH, required=True, pattern=r"^[-a-zA-Z0-9_]+$"
)
PATH_VERSION = OpenApiParameter(
    "version",
    {"type": "integer", "minimum": 1, "maximum": 999_999_999},
    OpenApiParameter.PATH,
    required=True,
)
TOKEN = [{"tokenAuth": []}, {"apiKeyAuth": []}]
