"""POST /api/predict/<slug>/: parse, call infer(), render."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema

from monitoring.record import of as record_of

from ..access import (
    AUTHENTICATION,
    THROTTLE,
    authenticate,
    authorize,
    throttle,
)
from ..access.sessions import authenticate_session
from ..baseview import ApiView
from ..errors import InvalidParams
from ..http import query_alias, query_version
from ..openapi import SLUG, errors
from ..renderers import dumps
from .infer import infer
from .openapi import (
    ALIAS,
    EXAMPLES,
    PREDICT_DESCRIPTION,
    PREDICT_SUMMARY,
    VERSION,
    PredictBodySerializer,
    PredictionSerializer,
)
from .rest import RestDecoder, response_body


def _pinned_by(request: HttpRequest, version: int | None, alias: str) -> dict[str, Any]:
    """The path's version or alias wins; else ?version= or ?alias=, not both."""
    if version is not None or alias:
        return {"version": version, "alias": alias}
    version, alias = query_version(request), query_alias(request)
    if version is not None and alias:
        raise InvalidParams("Give 'version' or 'alias', not both.")
    return {"version": version, "alias": alias}


class PredictView(ApiView):
    """DRF documents this endpoint and answers its errors and other methods;
    a POST that succeeds skips DRF's dispatch, about a tenth of its CPU."""

    # The POST path authenticates and throttles with the classes declared
    # here (api.access); its OpenAPI text is in .openapi.
    authentication_classes = AUTHENTICATION
    parser_classes: list[Any] = []
    throttle_classes = [THROTTLE]

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
        summary=PREDICT_SUMMARY,
        description=PREDICT_DESCRIPTION,
        request={
            "application/json": PredictBodySerializer,
            "text/csv": {"type": "string"},
        },
        responses={
            200: PredictionSerializer,
            **errors(400, 401, 404, 413, 415, 422, 429, 503, 504),
        },
        examples=EXAMPLES,
        parameters=[
            SLUG,
            OpenApiParameter("proba", bool, description="add class probabilities"),
            VERSION,
            ALIAS,
        ],
    )
    def post(
        self,
        request: HttpRequest,
        slug: str,
        version: int | None = None,
        alias: str = "",
    ) -> HttpResponse:
        authenticate(request)  # a wrong token: 401, even if public
        authenticate_session(request)  # no credential: the admin's, for Try it
        throttle(request)
        record = record_of(request)
        inference = infer(
            slug=slug,
            **_pinned_by(request, version, alias),
            decoder=RestDecoder(request, record),
            authorize=lambda ref: authorize(request, ref),
            record=record,
            meta=request.META,
        )
        encoding = time.perf_counter()
        content = dumps(response_body(inference, request_id=request.request_id))
        encode_ms = (time.perf_counter() - encoding) * 1000
        return HttpResponse(
            content,
            content_type="application/json",
            headers={
                "X-Model-Version": str(inference.ref.number),
                "X-Model-Route": inference.route,
                "Server-Timing": inference.server_timing(encode_ms),
            },
        )
