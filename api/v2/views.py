"""Open Inference Protocol (KServe V2) endpoints: parse, call one function, render.

Plain Django views, not DRF's: the protocol has its own error body
(``{"error": "..."}``), and DRF's dispatch would cost every infer request
more than decoding it. Token auth, the throttle and the body limit are the
same as on /api/predict/.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import APIException, Throttled

from monitoring.record import note_error
from monitoring.record import of as record_of
from registry.loading import LoadedModel

from .. import access
from ..dataplane import infer as dataplane
from ..dataplane.infer import serve_model
from ..errors import DOMAIN_ERRORS, status_for
from ..health import readiness_for
from ..http import ascii_digits
from . import protocol
from .codec import V2Decoder, encode_response

View = Callable[..., HttpResponse]


def error_response(
    request: HttpRequest, message: str, status: int, code: str
) -> JsonResponse:
    """The protocol's error body; the code is noted for the request log."""
    note_error(request, code)
    return JsonResponse({"error": message}, status=status)


def v2_endpoint(*methods: str) -> Callable[[View], View]:
    """Allowed methods, and every domain error as ``{"error": ...}``."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error_response(
                    request,
                    f"Method {request.method} not allowed.",
                    405,
                    "method_not_allowed",
                )
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except DOMAIN_ERRORS as exc:
                return error_response(request, exc.message, status_for(exc), exc.code)
            except APIException as exc:  # DRF's auth and throttle refusals
                response = error_response(
                    request, str(exc.detail), exc.status_code, str(exc.get_codes())
                )
                if isinstance(exc, Throttled) and exc.wait is not None:
                    response["Retry-After"] = str(math.ceil(exc.wait))
                if exc.status_code == 401:
                    response["WWW-Authenticate"] = access.authenticate_header(request)
                return response

        return wrapped

    return decorate


def _served_model(request: HttpRequest, slug: str, version: str | None) -> LoadedModel:
    access.authenticate(request)
    number, alias = version_or_alias(version)
    return serve_model(
        slug=slug,
        version=number,
        alias=alias,
        authorize=lambda ref: access.authorize(request, ref),
    )


def version_or_alias(version: str | None) -> tuple[int | None, str]:
    """A V2 version string: digits are a version number, else an alias."""
    if version is None:
        return None, ""
    if ascii_digits(version):
        return int(version), ""
    return None, version


@v2_endpoint("GET")
def server_metadata(request: HttpRequest) -> JsonResponse:
    return JsonResponse(protocol.server_metadata())


@v2_endpoint("GET")
def server_live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"live": True})


@v2_endpoint("GET")
def server_ready(request: HttpRequest) -> JsonResponse:
    """/readyz's answer: 503 while this instance can serve no model."""
    ready, detail = readiness_for(request)
    return JsonResponse({"ready": ready, **detail}, status=200 if ready else 503)


@v2_endpoint("GET")
def model_metadata(
    request: HttpRequest, slug: str, version: str | None = None
) -> JsonResponse:
    loaded = _served_model(request, slug, version)
    versions = protocol.ready_versions(slug)
    return JsonResponse(protocol.model_metadata(loaded, versions=versions))


@v2_endpoint("GET")
def model_ready(
    request: HttpRequest, slug: str, version: str | None = None
) -> JsonResponse:
    """Ready when infer would be served: a pinned version must load; the
    active one may be stood in for by the last good version, as on infer."""
    loaded = _served_model(request, slug, version)
    return JsonResponse({"name": loaded.ref.slug, "ready": True})


@v2_endpoint("POST")
def infer(request: HttpRequest, slug: str, version: str | None = None) -> HttpResponse:
    access.authenticate(request)
    access.throttle(request)
    record = record_of(request)
    number, alias = version_or_alias(version)
    inference = dataplane.infer(
        slug=slug,
        version=number,
        alias=alias,
        decoder=V2Decoder(request, record),
        authorize=lambda ref: access.authorize(request, ref),
        record=record,
        meta=request.META,
    )
    encoding = time.perf_counter()
    body, header_length = encode_response(
        inference, request_id=getattr(request, "request_id", "")
    )
    encode_ms = (time.perf_counter() - encoding) * 1000
    binary = header_length is not None
    response = HttpResponse(
        body, content_type="application/octet-stream" if binary else "application/json"
    )
    if binary:
        response["Inference-Header-Content-Length"] = str(header_length)
    response["X-Model-Version"] = str(inference.ref.number)
    response["X-Model-Route"] = inference.route
    response["Server-Timing"] = inference.server_timing(encode_ms)
    return response


@v2_endpoint("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any other /v2 path, in the protocol's error shape."""
    return error_response(
        request, f"No such endpoint: {request.path[:200]}", 404, "not_found"
    )
