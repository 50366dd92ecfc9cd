"""The /api/predict/ request and response shapes, its description, and the
example bodies built from a model's real features, for the OpenAPI schema."""

from __future__ import annotations

import copy
import re
from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    PolymorphicProxySerializer,
)
from rest_framework import serializers


class PredictionSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="The slug")
    version = serializers.IntegerField()
    request_id = serializers.CharField()
    predictions = serializers.ListField(child=serializers.JSONField())
    probabilities = serializers.ListField(
        child=serializers.DictField(child=serializers.FloatField(allow_null=True)),
        required=False,
        help_text="One object per row keyed by str(label); only with proba.",
    )
    ids = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        help_text="The rows' 'id' values, aligned with predictions.",
    )


class PredictRequestSerializer(serializers.Serializer):
    """One of the accepted shapes; see the examples."""

    data = serializers.JSONField(required=False)
    dataframe_split = serializers.JSONField(required=False)
    dataframe_records = serializers.ListField(
        child=serializers.DictField(), required=False
    )
    instances = serializers.ListField(child=serializers.JSONField(), required=False)
    inputs = serializers.JSONField(required=False)
    params = serializers.DictField(
        required=False, allow_null=True, help_text="null is the same as {}"
    )


# The body may also be a bare JSON array of records (payloads.decode_document).
PredictBodySerializer = PolymorphicProxySerializer(
    component_name="PredictBody",
    serializers=[
        PredictRequestSerializer,
        serializers.ListSerializer(child=serializers.DictField()),
    ],
    resource_type_field_name=None,
    many=False,
)

PREDICT_SUMMARY = "Predict with a model"
PREDICT_DESCRIPTION = """Send rows of features and get one prediction per row.

**Features by name.** A row is a JSON object whose keys are the model's
features. Each model you may call has its own operation under *served models*
with a body that works as is; `GET /api/models/{slug}/` gives its
`input_schema` and an `example_request`. Missing or unknown features are a 400
that names them.

**Formats** (one per request):

- one record: `{"data": {...}}`, or the bare record `{...}`
- many records: `{"data": [{...}, ...]}`, `{"dataframe_records": [...]}`,
  `{"instances": [{...}, ...]}`, or a bare JSON array of records
- split: `{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`
- positional: `{"inputs": [[...], ...]}` or `{"instances": [[...], ...]}`, values
  in the schema's feature order
- CSV: `Content-Type: text/csv`, the header row names the features

MLflow scoring-server bodies work unchanged (with their optional `params`).
Records carrying an `id` that is not a feature get `ids` back, aligned with
`predictions`.

**Options.** `?proba=1` (or `"params": {"proba": true}`) adds `probabilities`,
one object per row keyed by class label, when the model has `predict_proba`.
`?version=n`, or the path `/api/predict/{slug}/v{n}/`, pins a version;
otherwise the active version answers. The `X-Model-Version` header says which
did.

**Errors** are JSON `{"detail": ..., "code": ...}`: 400 when the body cannot
become model input (`malformed_json`, `invalid_shape`, `missing_features`,
`unknown_features`, `wrong_type`, ...), 401 for a wrong credential (or none
when one is required), 404 `unknown_model`, `unknown_version` or
`no_active_version` (a private model you may not call is an unknown model
too), 413 over the body or row limits, 415 for a content type other than JSON
or CSV, 422 `model_error` when the model itself rejects well-formed input, 429
when throttled, 503 when the model's file cannot be loaded, 504
`prediction_timeout`."""

# Request bodies only: without request_only they are shown as 200 responses too.
# Shapes only: served models get operations with their own features.
EXAMPLES = [
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
# api.http.query_version: 1 to 9 digits.
ALIAS = OpenApiParameter(
    "alias",
    {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$", "maxLength": 50},
    description="the version an alias points to (also POST "
    "/api/predict/{slug}@{alias}/); an unknown alias is a 404 `unknown_alias`",
)
VERSION = OpenApiParameter(
    "version",
    {"type": "integer", "minimum": 1, "maximum": 999_999_999},
    description="pin a version",
)


def example_bodies(body: dict[str, Any], *, classifier: bool) -> dict[str, Any]:
    """Every accepted shape of one working body (catalog.example_request's),
    as OpenAPI example objects: the first is what "Try it out" sends."""
    if "inputs" in body:
        row = body["inputs"][0]
        shapes = {
            "positional": ("values in feature order", body),
            "instances": (
                "the same row as a TF-serving instance",
                {"instances": [row]},
            ),
        }
    else:
        record = body["data"]
        shapes = {
            "one record": ("features by name", body),
            "records": ("a batch of records", {"dataframe_records": [record, record]}),
            "split": (
                "columns once, then rows",
                {
                    "dataframe_split": {
                        "columns": list(record),
                        "data": [list(record.values())],
                    }
                },
            ),
            "instances": ("records as instances", {"instances": [record]}),
        }
        if "id" not in record:
            with_ids = {"data": [{"id": "row-1", **record}]}
            if classifier:
                with_ids["params"] = {"proba": True}
            label = "ids and probabilities" if classifier else "ids"
            shapes[f"with {label}"] = (
                "ids come back aligned with predictions",
                with_ids,
            )
    return {
        name: {"summary": summary, "value": value}
        for name, (summary, value) in shapes.items()
    }


def model_operation(
    generic: dict[str, Any],
    *,
    slug: str,
    summary: str,
    description: str,
    examples: dict[str, Any],
    private: bool,
    operation_id: str,
) -> dict[str, Any]:
    """The generic predict operation, fixed to one model: no slug to type,
    and its own examples, so "Try it out" answers 200 as it stands."""
    operation = copy.deepcopy(generic)
    operation["operationId"] = operation_id
    operation["summary"] = summary
    operation["description"] = description
    operation["tags"] = [SERVED_MODELS_TAG]
    operation["parameters"] = [
        p for p in operation.get("parameters", []) if p.get("in") != "path"
    ]
    content = operation["requestBody"]["content"]
    content["application/json"]["examples"] = examples
    if private:
        operation["security"] = [{"tokenAuth": []}, {"apiKeyAuth": []}]
    return operation


SERVED_MODELS_TAG = "served models"
_NOT_AN_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


def operation_id(slug: str, taken: set[str]) -> str:
    """predict_<slug> as an identifier, unique among ``taken``."""
    base = "predict_" + _NOT_AN_IDENTIFIER.sub("_", slug)
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate
