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


# --- the document as a whole: drf-spectacular's POSTPROCESSING_HOOKS ------------

OIP_SPEC = "https://github.com/kserve/open-inference-protocol"
OIP_REST = (
    "https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol"
)
DESCRIPTION = f"""Versioned scikit-learn models behind REST endpoints.

**Start here.** Every model you may call has its own operation under
*served models*, with request bodies built from its real features: open one,
press *Try it out*, then *Execute*. Private models need a credential: press
*Authorize* and give `Token <token>` (tokenAuth) or an API key (apiKeyAuth).
`GET /api/models/` lists the catalog; the management operations (create,
upload, activate, edit, delete, history) take a staff token or an API key
whose management scope allows them.

**Open Inference Protocol (V2).** The same models also answer the KServe V2
REST protocol, outside this document (its bodies are the protocol's own, see
the [protocol specification]({OIP_SPEC}) and
[KServe's description of it]({OIP_REST})):

- `GET /v2` server metadata, `GET /v2/health/live`, `GET /v2/health/ready`
- `GET /v2/models/{{slug}}` model metadata (inputs, outputs, versions),
  `GET /v2/models/{{slug}}/ready`
- `POST /v2/models/{{slug}}/infer` and
  `POST /v2/models/{{slug}}/versions/{{n}}/infer`: one named input per feature,
  e.g. `{{"inputs": [{{"name": "age", "shape": [1], "datatype": "FP64",
  "data": [42]}}]}}`

Errors there are the protocol's `{{"error": "..."}}`; everywhere else they are
`{{"detail": "...", "code": "..."}}` with a stable `code`."""


def postprocess_schema(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """The document's description, the health endpoints and, for whoever
    asks, an operation per model they may call, with bodies that work."""
    from .control.model_operations import add_model_operations

    result["info"]["description"] = DESCRIPTION
    # The alias path is the same operation as ?alias= on the generic one,
    # which documents it; a path per alias would list what exists.
    result["paths"].pop("/api/predict/{slug}@{alias}/", None)
    pinned = result["paths"].get("/api/predict/{slug}/v{version}/", {}).get("post")
    if pinned is not None:
        pinned["summary"] = "Predict with a pinned version"
        # The path's version wins there: ?version= and ?alias= are not read.
        pinned["parameters"] = [
            p
            for p in pinned.get("parameters", [])
            if (p.get("in"), p.get("name"))
            not in {("query", "version"), ("query", "alias")}
        ]
    result["paths"].update(HEALTH_PATHS)
    result["tags"] = TAGS
    if request is not None:
        add_model_operations(result, request)
    return result


# In this order on the docs page: what a newcomer wants first, first.
TAGS = [
    {
        "name": "served models",
        "description": "One operation per model you may call, with request "
        "bodies built from its own features: Try it out, Execute.",
    },
    {
        "name": "predict",
        "description": "Any model by slug, every accepted body format.",
    },
    {
        "name": "models",
        "description": "The catalog, and the management API for automation "
        "(staff tokens or API keys with a management scope).",
    },
    {"name": "stats", "description": "Traffic, errors and latency."},
    {"name": "health", "description": "For orchestrators and load balancers."},
]

_READINESS = {
    "type": "object",
    "required": ["status", "database", "request_log", "counts"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "database": {"type": "string", "enum": ["ok", "unavailable"]},
        "request_log": {
            "type": "string",
            "description": "ok, or how many log rows wait for the database",
        },
        "counts": {
            "type": "object",
            "required": ["models", "serving", "failing"],
            "properties": {
                name: {"type": "integer"} for name in ("models", "serving", "failing")
            },
        },
        "models": {
            "type": "object",
            "description": "Per slug, what this instance serves or why not; "
            "only for staff and API keys that may read the management API.",
            "additionalProperties": {"type": "object"},
        },
    },
}
HEALTH_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Is the process alive?",
            "description": "Liveness for an orchestrator: answers 200 while the "
            "process runs and touches nothing else (no database, no model). "
            "Restart the instance when it stops answering.",
            "tags": ["health"],
            "security": [{}],
            "responses": {
                "200": {
                    "description": "The process is alive.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["status"],
                                "properties": {
                                    "status": {"type": "string", "enum": ["alive"]}
                                },
                            }
                        }
                    },
                }
            },
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "summary": "Can this instance serve predictions?",
            "description": "Readiness for a load balancer: 200 when the "
            "database answers, no request-log rows wait for it and at least one "
            "active model is loaded; 503 otherwise, with the reason in the same "
            "body. During a database outage a warm instance keeps serving the "
            "models it holds but reports not ready, so healthy ones are "
            "preferred. Which models are loaded is shown only to staff and to "
            "API keys that may read the management API; everyone else sees "
            "counts.",
            "tags": ["health"],
            "security": [{}],
            "responses": {
                "200": {
                    "description": "Ready.",
                    "content": {"application/json": {"schema": _READINESS}},
                },
                "503": {
                    "description": "Not ready: see database, request_log, counts.",
                    "content": {"application/json": {"schema": _READINESS}},
                },
            },
        }
    },
}
