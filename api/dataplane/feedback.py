"""POST /api/feedback/<slug>/: ground-truth labels for rows a model predicted."""

from __future__ import annotations

from django.http import HttpRequest
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from monitoring import feedback

from ..access import THROTTLE, authorize_feedback
from ..baseview import ApiView
from ..http import read_body
from ..openapi import SLUG, errors
from .payloads import parse_json

FEEDBACK_DESCRIPTION = (
    "Send the true labels of rows a model predicted, days later if need be: "
    "they are joined to what each version answered (its kept predictions) for "
    "live accuracy and macro-F1 (classifiers) or MAE and RMSE (regressors) in "
    "/api/stats/, the dashboard and /metrics. Three shapes: "
    '{"request_id", "labels": [one per row, in order]}; '
    '{"request_id", "ids": [...], "labels": [...]} for rows named by the ids '
    'the request carried; {"feedback": [{"request_id", "row" or "id", '
    '"label"}, ...]} for many requests. Sending a (request, row) again '
    "replaces its label. Request ids of this model not found are listed in "
    "'unknown'; labels that cannot be joined (a row past the request's, a "
    "label not among a classifier's classes, a regressor's label that is not "
    "a finite number) in 'rejected' with a code. Whoever may predict on the "
    "model may send its feedback."
)


class FeedbackView(ApiView):
    """Thin: who may send, the body, then monitoring.feedback."""

    throttle_classes = [THROTTLE]
    parser_classes: list = []  # the body is read bounded, as a prediction's

    @extend_schema(
        summary="Send ground-truth labels for predicted rows",
        description=FEEDBACK_DESCRIPTION,
        request={"application/json": {"type": "object"}},
        responses={
            200: {
                "type": "object",
                "properties": {
                    "accepted": {"type": "integer"},
                    "unknown": {"type": "array", "items": {"type": "string"}},
                    "rejected": {"type": "array", "items": {"type": "object"}},
                },
            },
            **errors(400, 401, 403, 404, 413, 429),
        },
        parameters=[SLUG],
        examples=[
            OpenApiExample(
                "One label per row",
                value={"request_id": "3f2b…", "labels": ["setosa"]},
                request_only=True,
            ),
            OpenApiExample(
                "Many requests",
                value={
                    "feedback": [
                        {"request_id": "3f2b…", "row": 0, "label": "setosa"},
                        {"request_id": "9a1c…", "id": "order-17", "label": 1},
                    ]
                },
                request_only=True,
            ),
        ],
    )
    def post(self, request: HttpRequest, slug: str) -> Response:
        authorize_feedback(request, slug)
        labels = feedback.read_document(parse_json(read_body(request)))
        return Response(feedback.record(slug, labels).as_dict())
