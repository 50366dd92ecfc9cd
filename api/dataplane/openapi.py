"""The /api/predict/ request and response shapes, for the OpenAPI schema."""

from __future__ import annotations

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

# Request bodies only: without request_only they are shown as 200 responses too.
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
VERSION = OpenApiParameter(
    "version",
    {"type": "integer", "minimum": 1, "maximum": 999_999_999},
    description="pin a version",
)
